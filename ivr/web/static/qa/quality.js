// The quality checks' panel on /qa: the queue's progress (queued, done, flagged; the checklist's state) and the
// review list of flagged calls. A finding's time opens the call in the player above and plays from that moment
// (through the timeline's own flag pin). Imported once by qa.js; it adds its panel when the page is signed in.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';

const REFRESH_MS = 5000;
const state = { timer: null };

whenShown(document.getElementById('app'), start);

function whenShown(app, then) {
  if (!app) return;
  if (!app.hidden) { then(app); return; }
  const watch = new MutationObserver(() => {
    if (!app.hidden) { watch.disconnect(); then(app); }
  });
  watch.observe(app, { attributes: true, attributeFilter: ['hidden'] });
}

function start(app) {
  app.append(el('section', { class: 'panel qa-quality', testid: 'qa-quality', 'aria-labelledby': 'qa-quality-title' },
    el('h2', { id: 'qa-quality-title', text: 'Quality checks' }),
    el('p', { class: 'muted', testid: 'qa-quality-progress', role: 'status' }),
    el('p', { class: 'form-error', testid: 'qa-quality-checklist-error', role: 'alert', hidden: true }),
    el('h3', { text: 'Review list: flagged calls' }),
    el('table', { class: 'report-table', testid: 'qa-review' })));
  refresh();
  state.timer = setInterval(refresh, REFRESH_MS);
}

async function refresh() {
  let progress, review;
  try {
    [progress, review] = await Promise.all([api('/api/qa/quality'), api('/api/qa/quality/review?limit=50')]);
  } catch {
    return; // the banner says why; the next refresh tries again
  }
  byTestId('qa-quality-progress').textContent = `${progress.queued} queued · ${progress.running} checking · `
    + `${progress.done} checked · ${progress.flagged} flagged · ${progress.skipped} without an agent · `
    + `${progress.failed} failed · ${Math.round(progress.audio_s_done)} s of agent talk transcribed`;
  const error = byTestId('qa-quality-checklist-error');
  error.hidden = !progress.checklist_error;
  error.textContent = progress.checklist_error ? `Checks paused, the checklist has errors: ${progress.checklist_error}` : '';
  const columns = ['Started', 'Call', 'Queue', 'Agent', 'Score', 'Findings'];
  fill(byTestId('qa-review'),
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c })))),
    el('tbody', {}, review.items.map((item) => el('tr', { testid: 'qa-review-item', data: { callId: item.call_id } },
      el('td', { text: new Date(item.started_at * 1000).toLocaleString() }),
      el('td', { class: 'mono', text: item.call_id }),
      el('td', { text: item.queue || '—' }),
      el('td', { text: item.agent || '—' }),
      el('td', { text: String(item.score) }),
      el('td', {}, item.findings.map((f) => el('div', {},
        el('button', { type: 'button', class: 'qa-time mono', testid: 'qa-review-moment', text: clock(f.at_s),
          onclick: () => openAt(item.call_id, f.at_s) }), ` ${f.text}`)))))));
}

function clock(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  return `${Math.floor(total / 60)}:${String(total % 60).padStart(2, '0')}`;
}

/** Open the call in the player (the page's own search and Open) and play from the flagged moment. */
async function openAt(callId, atS) {
  byTestId('qa-call-id').value = callId;
  byTestId('qa-search-form').requestSubmit();
  const open = await until(() => document.querySelector(
    `[data-testid="qa-result"][data-call-id="${CSS.escape(callId)}"] [data-testid="qa-open"]`));
  if (!open) return;
  open.click();
  const pin = await until(() => byTestId('qa-detail-call').textContent === callId
    && document.querySelector(`[data-testid="qa-flag"][data-at="${CSS.escape(String(atS))}"]`));
  if (pin) pin.click();
}

async function until(find, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = find();
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return null;
}
