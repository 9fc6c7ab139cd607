// The trainer loop's second half on /trainer: for the selected cluster, the suggested change to the flow (a
// phrase, a dialect variant or an example, taken from what the model hears; out-of-vocabulary words named) as a
// diff, and a replay of that candidate against the recorded turns, with its progress and result. Nothing here
// publishes: the admin publishes in /admin, where the same replay result is shown and kept with the version.
//
// Follows trainer.js's 'trainer:cluster' events; draws into #trainer-loop. The flow is the cluster's own
// (clusters carry flow_id); the whole candidate text is shown too, for the admin's editor.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { showError, toast } from '../lib/notices.js';

const DEFAULT_FLOW = 'hotline';
const POLL_MS = 500;
const local = { cluster: null, suggestion: null, polling: 0 };

document.addEventListener('trainer:cluster', (event) => {
  local.cluster = event.detail;
  render();
});

function root() {
  return byTestId('trainer-loop');
}

function render() {
  const node = root();
  if (!node) return;
  const cluster = local.cluster;
  if (!cluster) {
    fill(node);
    return;
  }
  const phrase = el('input', { 'data-testid': 'suggest-phrase', maxlength: '200', placeholder: 'or your own phrase' });
  fill(node,
    el('h3', { text: 'Change the flow' }),
    el('div', { class: 'suggest-bar' },
      el('button', { type: 'button', class: 'btn btn-primary', 'data-testid': 'suggest',
        disabled: !(cluster.label || cluster.suggested) ? 'disabled' : null,
        onclick: () => suggestFor(cluster, phrase.value.trim()) }, 'Suggest'),
      phrase),
    el('div', { 'data-testid': 'suggestion' }),
    el('div', { 'data-testid': 'replay' }));
}

function flowOf(cluster) {
  return (cluster && cluster.flow_id) || DEFAULT_FLOW;
}

async function suggestFor(cluster, phrase) {
  const out = byTestId('suggestion');
  const flow = flowOf(cluster);
  fill(out, el('p', { class: 'muted', text: 'Listening to the cluster’s recordings…' }));
  try {
    const body = phrase ? { phrase, flow_id: flow } : { flow_id: flow };
    const s = await api(`/api/trainer/clusters/${cluster.id}/suggestion`, { method: 'POST', body, quiet: true });
    local.suggestion = s;
    const oov = (s.oov || []).map((o) => `${o.word} → ${o.closest || 'dropped'}`).join(', ');
    fill(out,
      el('p', { 'data-testid': 'suggestion-summary',
        text: `${s.kind} for ${s.intent}${s.dialect ? ` (${s.dialect})` : ''}: “${s.phrase}” — heard in `
          + `${Math.round(100 * s.support)}% of ${s.turns} turns (${s.source})` }),
      oov ? el('p', { class: 'notice', 'data-testid': 'suggestion-oov', text: `Not in the model’s vocabulary: ${oov}` }) : '',
      el('pre', { class: 'diff', 'data-testid': 'suggestion-diff', text: s.diff }),
      el('details', { class: 'suggestion-whole' },
        el('summary', { text: 'The whole candidate flow (paste it into /admin to publish)' }),
        el('textarea', { 'data-testid': 'suggestion-text', readonly: 'readonly', rows: '12', cols: '100',
          'aria-label': 'The candidate flow', text: s.text })),
      el('button', { type: 'button', class: 'btn btn-success', 'data-testid': 'replay-run',
        onclick: () => startReplay(flow, s.text) }, 'Replay it on the last 30 days'),
      el('button', { type: 'button', class: 'btn', 'data-testid': 'suggestion-copy',
        onclick: () => navigator.clipboard.writeText(s.text).then(() => toast('Candidate flow copied')) },
      'Copy the candidate flow'));
  } catch (error) {
    fill(out, el('p', { class: 'form-error', role: 'alert', 'data-testid': 'suggestion-error', text: error.message }));
  }
}

async function startReplay(flow, text) {
  const out = byTestId('replay');
  const path = `/api/trainer/flows/${encodeURIComponent(flow)}/replays`;
  try {
    await api(path, { method: 'POST', body: { text, since: '30d' }, quiet: true });
  } catch (error) {
    if (error.status !== 409) {
      showError(error.message);
      return;
    }
    toast(error.message); // one is running: follow it
  }
  clearInterval(local.polling);
  const bar = el('progress', { 'data-testid': 'replay-progress', max: '1', value: '0' });
  fill(out, bar);
  local.polling = setInterval(async () => {
    const job = await api(`${path}/current`, { quiet: true }).catch(() => null);
    if (!job) return;
    bar.max = String(job.total || 1);
    bar.value = String(job.done);
    bar.dataset.done = String(job.done);
    if (job.state === 'running') return;
    clearInterval(local.polling);
    if (job.state === 'failed') {
      fill(out, el('p', { class: 'form-error', role: 'alert', text: `Replay failed: ${job.error}` }));
      return;
    }
    const r = job.result;
    const pct = (x) => `${Math.round(100 * x)}%`;
    fill(out, el('table', { class: 'table', 'data-testid': 'replay-result', data: { sha256: job.sha256 } },
      el('tbody', {},
        ...[['turns', r.turns], ['fixed', r.fixed], ['broken', r.broken], ['would act instead of confirming', r.now_act],
          ['containment', `${pct(r.containment_before)} → ${pct(r.containment_after)}`],
          ['unreadable recordings', r.unreadable]]
          .map(([k, v]) => el('tr', { 'data-testid': `replay-${String(k).split(' ')[0]}` },
            el('th', { text: String(k) }), el('td', { text: String(v) }))))),
    el('p', { class: 'muted', text: r.broken > r.fixed
      ? 'It breaks more turns than it fixes: publishing it needs an override with a comment.'
      : 'An admin can publish this candidate in /admin; the replay is kept with the version.' }));
  }, POLL_MS);
}
