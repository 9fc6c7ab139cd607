// Quality (/qa): search call recordings, play one with its timeline (IVR turns, the wait, the agent, the muted card
// span, flagged moments), put it under legal hold. Audio comes through the session (lib/media.js): every play is
// logged on the server, and a recording that is missing, damaged or purged says so instead of playing.

import { api } from './lib/backend.js';
import { boot } from './lib/boot.js';
import { byTestId, el, fill } from './lib/dom.js';
import { blobUrl, showMedia } from './lib/media.js';
import { showError } from './lib/notices.js';
import { startPage } from './lib/page.js';
import './qa/quality.js'; // the quality checks' panel: progress and the review list (ivr/web/quality.py)

const SEGMENT_LABELS = { ivr: 'IVR', turn: 'Turn', queue: 'Waiting', agent: 'Agent', secure: 'Card capture (muted)' };
const LANES = ['ivr', 'turn', 'queue', 'agent', 'secure'];
const state = { current: null };

boot(() => startPage({ roles: ['qa', 'supervisor', 'admin'], onReady }));

function onReady() {
  byTestId('ws-status').hidden = true;
  byTestId('qa-search-form').addEventListener('submit', (event) => { event.preventDefault(); search(); });
  byTestId('qa-hold').addEventListener('click', () => changeHold('hold'));
  byTestId('qa-release').addEventListener('click', () => changeHold('release'));
  byTestId('qa-download').addEventListener('click', download);
  search();
}

/** 75.4 -> "1:15". */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

function query() {
  const params = new URLSearchParams();
  for (const [name, testid] of [['call_id', 'qa-call-id'], ['customer', 'qa-customer'], ['agent', 'qa-agent'],
    ['queue', 'qa-queue'], ['outcome', 'qa-outcome'], ['since', 'qa-since']]) {
    const value = byTestId(testid).value.trim();
    if (value) params.set(name, value);
  }
  if (byTestId('qa-flagged').checked) params.set('flagged', 'true');
  if (byTestId('qa-held').checked) params.set('held', 'true');
  return params.toString();
}

async function search() {
  let page;
  try {
    page = await api(`/api/qa/recordings?${query()}`);
  } catch {
    return; // the banner says why
  }
  byTestId('qa-total').textContent = `${page.total} calls`;
  const columns = ['Started', 'Call', 'Customer', 'Agent', 'Queue', 'Outcome', 'Length', 'Flags', 'Hold', ''];
  fill(byTestId('qa-results'),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', {}, page.items.map((item) => el('tr', { testid: 'qa-result', data: { callId: item.call_id } },
      el('td', { text: new Date(item.started_at * 1000).toLocaleString() }),
      el('td', { class: 'mono', text: item.call_id }),
      el('td', { text: item.customer || '—' }),
      el('td', { text: item.agent || '—' }),
      el('td', { text: item.queue || '—' }),
      el('td', { text: item.outcome || '—' }),
      el('td', { text: item.has_audio ? clock(item.duration_s) : item.state }),
      el('td', { text: item.flags ? String(item.flags) : '' }),
      el('td', { text: item.held ? 'held' : '' }),
      el('td', {}, el('button', { type: 'button', class: 'btn', testid: 'qa-open', text: 'Open',
        onclick: () => open(item.call_id) }))))));
}

async function open(callId) {
  let call;
  try {
    call = await api(`/api/qa/recordings/${encodeURIComponent(callId)}`);
  } catch {
    return;
  }
  state.current = call;
  byTestId('qa-detail').hidden = false;
  byTestId('qa-detail-call').textContent = call.call_id;
  byTestId('qa-detail-summary').textContent = [
    new Date(call.started_at * 1000).toLocaleString(), call.customer && `customer ${call.customer}`,
    call.agent && `agent ${call.agent}`, call.queue && `queue ${call.queue}`, call.outcome,
    call.channels === 2 ? 'stereo: caller left, agent/IVR right' : (call.channels ? 'mono' : ''),
    call.encrypted ? 'encrypted at rest' : '',
  ].filter(Boolean).join(' · ');
  renderTimeline(call.timeline);
  renderHold(call);
  renderAccess(call.access);
  await loadAudio(call);
}

async function loadAudio(call) {
  const audio = byTestId('qa-audio');
  const status = byTestId('qa-audio-status');
  audio.removeAttribute('src');
  if (!call.has_audio) {
    status.textContent = call.state === 'purged' ? 'Purged by retention: no audio any more.'
      : `No recording: ${call.problem || call.state}`;
    return;
  }
  status.textContent = 'Loading the recording…';
  try {
    await showMedia(audio, `/api/qa/recordings/${encodeURIComponent(call.call_id)}/audio`);
    status.textContent = '';
    if (pendingSeek !== null) seek(pendingSeek);
    const fresh = await api(`/api/qa/recordings/${encodeURIComponent(call.call_id)}`, { quiet: true });
    renderAccess(fresh.access); // this listening is in it now
  } catch (error) {
    status.textContent = error.message;
    showError(`Recording: ${error.message}`);
  }
}

// A moment clicked while the recording is still loading: sought once it has loaded, not dropped.
let pendingSeek = null;

function seek(seconds) {
  const audio = byTestId('qa-audio');
  if (!audio.src) {
    pendingSeek = seconds;
    return;
  }
  pendingSeek = null;
  audio.currentTime = seconds;
  audio.play().catch(() => {});
}

function renderTimeline(timeline) {
  const segments = timeline.segments || [];
  const total = Math.max(timeline.duration_s || 0, ...segments.map((s) => s.end_s), 1);
  const pct = (s) => `${Math.min(100, Math.max(0, (s / total) * 100)).toFixed(2)}%`;
  const lanes = LANES.filter((kind) => segments.some((s) => s.kind === kind)).map((kind) => {
    const bars = segments.filter((s) => s.kind === kind).map((s) => {
      const bar = el('button', {
        type: 'button', class: `qa-seg qa-seg-${s.kind}`, testid: 'qa-segment', data: { kind: s.kind },
        title: `${clock(s.start_s)}–${clock(s.end_s)} ${s.label}`, 'aria-label': `${s.label}, at ${clock(s.start_s)}`,
        onclick: () => seek(s.start_s),
      });
      bar.style.left = pct(s.start_s); // CSSOM, not a style attribute: allowed by the page's CSP
      bar.style.width = pct(Math.max(s.end_s - s.start_s, total / 200));
      return bar;
    });
    return el('div', { class: 'qa-lane' }, el('span', { class: 'qa-lane-name', text: SEGMENT_LABELS[kind] }),
      el('div', { class: 'qa-track' }, bars));
  });
  const flags = (timeline.flags || []).map((f) => {
    const pin = el('button', {
      type: 'button', class: 'qa-flag', testid: 'qa-flag', data: { kind: f.kind, at: String(f.at_s) },
      title: `${clock(f.at_s)} ${f.text}`, 'aria-label': `Flag at ${clock(f.at_s)}: ${f.text}`, text: '⚑',
      onclick: () => seek(f.at_s),
    });
    pin.style.left = pct(f.at_s);
    return pin;
  });
  const marks = (timeline.marks || []).map((m) => {
    const tick = el('span', { class: 'qa-mark', testid: 'qa-mark', title: `${clock(m.at_s)} ${m.label}` });
    tick.style.left = pct(m.at_s);
    return tick;
  });
  fill(byTestId('qa-timeline'), lanes,
    el('div', { class: 'qa-lane' }, el('span', { class: 'qa-lane-name', text: 'Flags' }),
      el('div', { class: 'qa-track' }, flags, marks)));
  const events = [
    ...segments.filter((s) => s.kind !== 'ivr').map((s) => ({ at: s.start_s, kind: s.kind, text: s.label })),
    ...(timeline.marks || []).map((m) => ({ at: m.at_s, kind: m.kind, text: m.label })),
    ...(timeline.flags || []).map((f) => ({ at: f.at_s, kind: 'flag', text: `⚑ ${f.kind.replaceAll('_', ' ')}: ${f.text}` })),
  ].sort((a, b) => a.at - b.at);
  fill(byTestId('qa-events'), events.map((e) => el('li', { testid: 'qa-event', data: { kind: e.kind }, class: `qa-event-${e.kind}` },
    el('button', { type: 'button', class: 'qa-time mono', text: clock(e.at), onclick: () => seek(e.at) }), ' ', e.text)));
}

function renderHold(call) {
  byTestId('qa-hold-status').textContent = call.held
    ? `On legal hold since ${new Date(call.held_at * 1000).toLocaleString()} by ${call.held_by}: ${call.hold_reason}`
    : 'Not on legal hold: purged when its retention ends.';
  byTestId('qa-hold').disabled = call.held || call.state === 'purged';
  byTestId('qa-release').disabled = !call.held;
  byTestId('qa-download').disabled = !call.has_audio;
}

function renderAccess(access) {
  fill(byTestId('qa-access'), (access || []).map((a) => el('li', {},
    `${new Date(a.at * 1000).toLocaleString()} · ${a.who} · ${a.action}`)));
}

async function changeHold(action) {
  const call = state.current;
  if (!call) return;
  const reason = byTestId('qa-hold-reason').value.trim();
  if (!reason) {
    showError('Legal hold: say why (a case number, a complaint).');
    return;
  }
  try {
    await api(`/api/qa/recordings/${encodeURIComponent(call.call_id)}/${action}`, { method: 'POST', body: { reason } });
  } catch {
    return;
  }
  byTestId('qa-hold-reason').value = '';
  await open(call.call_id);
}

async function download() {
  const call = state.current;
  if (!call) return;
  try {
    const url = await blobUrl(`/api/qa/recordings/${encodeURIComponent(call.call_id)}/audio?download=true`);
    const link = el('a', { href: url, download: `${call.call_id}.wav` });
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    showError(`Download: ${error.message}`);
  }
}
