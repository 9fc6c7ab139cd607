// Trainer (/trainer): failed turns grouped by what was heard, labeled a cluster at a time, from the keyboard.
// Everything is paged on the server (a cluster may hold 50,000 turns); audio and charts come through the
// session's token (lib/media.js). Another module may follow the selected cluster: 'trainer:cluster' events on
// document carry it ({detail: cluster}), after every selection and label.

import { api } from './lib/backend.js';
import { boot } from './lib/boot.js';
import { byTestId, el, fill } from './lib/dom.js';
import { intentLabel } from './lib/format.js';
import { showMedia } from './lib/media.js';
import { showError, toast } from './lib/notices.js';
import { startPage } from './lib/page.js';
import './trainer/replay.js'; // suggestions and replays for the selected cluster (its own module)

const PAGE = 20;
const state = {
  since: '7d', unlabeled: false, intents: [], dialects: [],
  clusters: [], total: 0, offset: 0, at: 0,
  cluster: null, turns: [], turnsTotal: 0, turnOffset: 0, turnAt: 0,
};

boot(() => startPage({ roles: ['trainer', 'admin'], onReady }));

async function onReady() {
  byTestId('ws-status').hidden = true; // no live socket here: the page asks when it needs
  const intents = await api('/api/trainer/intents');
  state.intents = intents.intents.map((i) => i.id);
  state.dialects = intents.dialects;
  fill(byTestId('label-dialect'), el('option', { value: '', text: 'none' }),
    state.dialects.map((d) => el('option', { value: d, text: d })));
  renderLabelButtons();
  byTestId('trainer-since').addEventListener('change', (e) => { state.since = e.target.value; reload(); });
  byTestId('trainer-unlabeled').addEventListener('change', (e) => { state.unlabeled = e.target.checked; reload(); });
  byTestId('clusters-prev').addEventListener('click', () => pageClusters(-1));
  byTestId('clusters-next').addEventListener('click', () => pageClusters(1));
  byTestId('turns-prev').addEventListener('click', () => pageTurns(-1));
  byTestId('turns-next').addEventListener('click', () => pageTurns(1));
  document.addEventListener('keydown', onKey);
  await reload();
}

async function reload() {
  state.offset = 0;
  state.at = 0;
  await loadClusters();
  showMedia(byTestId('trainer-navigation-chart'), `/api/reports/navigation.svg?by=node&since=${state.since}`)
    .catch((error) => showError(`Chart: ${error.message}`));
}

async function loadClusters() {
  const query = `since=${state.since}&offset=${state.offset}&limit=${PAGE}&unlabeled=${state.unlabeled}`;
  const page = await api(`/api/trainer/clusters?${query}`);
  state.clusters = page.items;
  state.total = page.total;
  state.at = Math.min(state.at, Math.max(0, state.clusters.length - 1));
  renderClusters();
  await selectCluster(state.at);
}

function renderClusters() {
  const list = byTestId('clusters');
  fill(byTestId('clusters-total'), `(${state.total})`);
  fill(byTestId('clusters-page'), state.total
    ? `${state.offset + 1}–${state.offset + state.clusters.length} of ${state.total}` : 'nothing to label');
  if (!state.clusters.length) {
    fill(list, el('li', { class: 'muted', text: 'No failed turns in this window.' }));
    return;
  }
  fill(list, state.clusters.map((c, i) => el('li', {
    class: `cluster${i === state.at ? ' is-selected' : ''}`, testid: 'cluster',
    'aria-selected': i === state.at ? 'true' : 'false', data: { cluster: String(c.id) },
    onclick: () => selectCluster(i),
  },
  el('span', { class: 'cluster-heard', text: c.heard || '(nothing heard)' }),
  el('span', { class: 'cluster-size', text: `${c.size} turns` }),
  el('span', { class: 'cluster-label', testid: 'cluster-label', text: labelText(c) }))));
}

function labelText(c) {
  if (c.labeled === c.size && c.label) return `✓ ${intentLabel(c.label)}`;
  if (c.suggested) return `${c.suggested_source === 'trainer' ? '✓' : '?'} ${intentLabel(c.suggested)} (${c.suggested_source})`;
  return 'no label';
}

async function selectCluster(i) {
  state.at = i;
  state.cluster = state.clusters[i] || null;
  state.turnOffset = 0;
  state.turnAt = 0;
  for (const [k, item] of [...byTestId('clusters').children].entries()) {
    item.classList.toggle('is-selected', k === i);
    item.setAttribute('aria-selected', k === i ? 'true' : 'false');
    if (k === i) item.scrollIntoView({ block: 'nearest' });
  }
  renderCluster();
  if (state.cluster) await loadTurns();
  else fill(byTestId('turns'));
  document.dispatchEvent(new CustomEvent('trainer:cluster', { detail: state.cluster }));
}

function renderCluster() {
  const c = state.cluster;
  fill(byTestId('cluster-heard'), c ? (c.heard || '(nothing heard)') : '—');
  fill(byTestId('cluster-summary'), c
    ? `${c.size} failed turns · at ${c.nodes.join(', ')} · ${c.labeled} labeled by a trainer · suggestion: ${c.suggested ? `${c.suggested} (${c.suggested_source})` : 'none'}`
    : '');
  for (const button of byTestId('label-buttons').querySelectorAll('button')) {
    button.classList.toggle('is-suggested', Boolean(c && c.suggested === button.dataset.intent));
    button.disabled = !c;
  }
}

function renderLabelButtons() {
  fill(byTestId('label-buttons'), state.intents.map((intent, i) => el('button', {
    type: 'button', class: 'btn label-button', testid: 'label-button', data: { intent },
    title: i < 9 ? `key ${i + 1}` : '', onclick: () => labelCluster(intent),
  }, i < 9 ? el('kbd', { text: String(i + 1) }) : null, ` ${intentLabel(intent)}`)));
}

async function loadTurns() {
  const c = state.cluster;
  const page = await api(`/api/trainer/clusters/${c.id}/turns?since=${state.since}&offset=${state.turnOffset}&limit=${PAGE}`);
  if (state.cluster !== c) return; // another cluster was selected meanwhile: its own answer draws it
  state.turns = page.items;
  state.turnsTotal = page.total;
  state.turnAt = Math.min(state.turnAt, Math.max(0, state.turns.length - 1));
  renderTurns();
}

function renderTurns() {
  fill(byTestId('turns-page'), state.turnsTotal
    ? `${state.turnOffset + 1}–${state.turnOffset + state.turns.length} of ${state.turnsTotal}` : '');
  fill(byTestId('turns'), state.turns.map((t, i) => el('li', {
    class: `turn${i === state.turnAt ? ' is-selected' : ''}`, testid: 'turn',
    data: { call: t.call_id, index: String(t.index) }, onclick: () => { state.turnAt = i; renderTurns(); },
  },
  el('button', {
    type: 'button', class: 'btn play', testid: 'turn-play', disabled: !t.has_audio,
    'aria-label': `Play turn ${t.index} of call ${t.call_id}`, onclick: () => play(i),
  }, '▶'),
  el('div', { class: 'turn-body' },
    el('p', { class: 'turn-heard' }, el('strong', { text: t.transcript || '(nothing heard)' }),
      t.alternatives.length > 1 ? el('span', { class: 'muted', text: `  n-best: ${t.alternatives.slice(1).map((a) => a.text).join(' | ')}` }) : null),
    el('p', { class: 'muted' },
      `${t.node} · ${t.live_outcome} · next: ${t.next_step} · `,
      el('span', { testid: 'turn-label', text: t.label ? `${t.label} (${t.label_source}${t.label_dialect ? `, ${t.label_dialect}` : ''})` : 'no label' }))))));
}

async function play(i) {
  state.turnAt = i;
  renderTurns();
  const t = state.turns[i];
  if (!t || !t.has_audio) {
    toast('This turn has no recording.');
    return;
  }
  const audio = byTestId('turn-audio');
  try {
    await showMedia(audio, `/api/trainer/turns/${encodeURIComponent(t.call_id)}/${t.index}/audio`);
    await audio.play();
  } catch (error) {
    if (error.name !== 'NotAllowedError') showError(`Audio: ${error.message}`);
  }
}

async function labelCluster(intent) {
  const c = state.cluster;
  if (!c) return;
  const dialect = byTestId('label-dialect').value || null;
  try {
    const result = await api(`/api/trainer/clusters/${c.id}/label`, {
      method: 'POST', body: { label: intent, revision: c.revision, dialect }, quiet: true,
    });
    toast(`${result.labeled} turns labeled ${intent}`);
    state.clusters[state.at] = { ...c, ...result.cluster, size: c.size, labeled: c.size };
    state.cluster = state.clusters[state.at];
    renderClusters();
    renderCluster();
    await loadTurns();
    document.dispatchEvent(new CustomEvent('trainer:cluster', { detail: state.cluster }));
  } catch (error) {
    showError(error.status === 409 ? `${error.message}` : `Label: ${error.message}`);
    if (error.status === 409) await loadClusters();
  }
}

async function pageClusters(step) {
  const next = state.offset + step * PAGE;
  if (next < 0 || next >= state.total) return;
  state.offset = next;
  state.at = 0;
  await loadClusters();
}

async function pageTurns(step) {
  const next = state.turnOffset + step * PAGE;
  if (!state.cluster || next < 0 || next >= state.turnsTotal) return;
  state.turnOffset = next;
  state.turnAt = 0;
  await loadTurns();
}

function onKey(event) {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target instanceof HTMLElement && target.matches('input, select, textarea')) return;
  const key = event.key;
  if (key === 'j' && state.at + 1 < state.clusters.length) selectCluster(state.at + 1);
  else if (key === 'k' && state.at > 0) selectCluster(state.at - 1);
  else if (key === 'n' && state.turnAt + 1 < state.turns.length) { state.turnAt += 1; renderTurns(); }
  else if (key === 'p' && state.turnAt > 0) { state.turnAt -= 1; renderTurns(); }
  else if (key === ' ') play(state.turnAt);
  else if (key === ']') pageClusters(1);
  else if (key === '[') pageClusters(-1);
  else if (key === 'l' && state.cluster && state.cluster.suggested) labelCluster(state.cluster.suggested);
  else if (/^[1-9]$/.test(key) && state.intents[Number(key) - 1]) labelCluster(state.intents[Number(key) - 1]);
  else return;
  event.preventDefault();
}
