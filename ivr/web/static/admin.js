// Flow editor (/admin; admin role): the flows, an editor checked as you type (problems listed with their lines,
// the gutter marks them), the flow's diagram, simulated calls, publishing with a comment, the history with diffs and
// rollback, and the audit log. The server does every check (POST .../validate parses and validates the YAML and
// returns the flow's nodes and edges); this page only lays the diagram out and draws it.
//
// Data is rendered with textContent / Text nodes only (flows carry free text), as on every page.

import { api, byTestId, connectSocket, dateTime, el, fill, hideError, startPage, toast } from './app.js';

const VALIDATE_DELAY_MS = 400;
const POLL_MS = 15000;
const LINE_PX = 20; // the editor's line height: .code textarea in style.css
const PAD_TOP = 10; // the editor's top padding: .code textarea in style.css
const NODE_W = 136;
const NODE_H = 46;
const DUMMY_H = 12;
const GAP_X = 100;
const GAP_Y = 18;
const MIN_SCALE = 0.75; // below this the diagram scrolls instead of shrinking further

const state = {
  flowId: null,
  live: null, // the live version: {number, author, at, comment, text}
  base: null, // the live version the edit started from (sent with publish: a newer live is a conflict)
  seq: 0, // validation requests sent; an answer to an older one is dropped
  checked: null, // the last validation: {text, ok, problems, graph}
  timer: 0,
  lines: 0,
  history: [],
  publishing: false,
  staleShown: 0,
  zoomed: false, // the diagram at 100% (scrolls) instead of fitted to its box
};

const enc = encodeURIComponent;
const flowPath = (suffix = '') => `/api/admin/flows/${enc(state.flowId)}${suffix}`;
const editor = () => byTestId('editor-text');
const dirty = () => Boolean(state.live) && editor().value !== state.live.text;

startPage({ roles: ['admin'], onReady });

function onReady() {
  // The socket only keeps the "Live" pill and the session honest (sign-out elsewhere ends this page too).
  connectSocket({ onMessage() {} });
  wireEditor();
  byTestId('publish-form').addEventListener('submit', publish);
  byTestId('publish-comment').addEventListener('input', updatePublish);
  byTestId('editor-revert').addEventListener('click', revert);
  byTestId('sim-form').addEventListener('submit', runSimulation);
  byTestId('history-refresh').addEventListener('click', () => loadHistory());
  byTestId('audit-refresh').addEventListener('click', loadAudit);
  byTestId('diagram-zoom').addEventListener('click', () => {
    state.zoomed = !state.zoomed;
    if (state.checked && state.checked.graph) drawDiagram(state.checked.graph);
  });
  window.addEventListener('beforeunload', (event) => {
    if (dirty()) event.preventDefault();
  });
  window.addEventListener('resize', () => state.checked && state.checked.graph && drawDiagram(state.checked.graph));
  setInterval(pollLive, POLL_MS);
  loadFlows().then((flows) => {
    loadAudit(); // after the list: listing may record a flow file's first version
    const wanted = (location.hash.match(/^#flow=([\w-]+)$/) || [])[1];
    const first = flows.find((f) => f.id === wanted) || flows[0];
    if (first) openFlow(first.id);
  });
}

// ---------------------------------------------------------------------------------------------
// Flows

async function loadFlows() {
  let flows = [];
  try {
    flows = await api('/api/admin/flows');
  } catch {
    return [];
  }
  const list = byTestId('flow-list');
  if (!flows.length) {
    fill(list, el('li', { class: 'muted', text: 'No flows yet: add a YAML file to dialplans/ or publish one with `ivr dialplan publish`.' }));
    return flows;
  }
  fill(list, flows.map((flow) => el('li', {},
    el('button', {
      type: 'button', class: 'flow-item', testid: `flow-item-${flow.id}`, data: { flow: flow.id, live: flow.live },
      'aria-current': flow.id === state.flowId ? 'true' : null,
      onclick: () => openFlow(flow.id),
    },
    el('span', { class: 'flow-item-id mono', text: flow.id }),
    el('span', { class: 'flow-item-meta', text: `live v${flow.live} · ${flow.versions} version${flow.versions === 1 ? '' : 's'}` }),
    flow.updated_at ? el('span', { class: 'flow-item-meta', text: `updated ${dateTime(flow.updated_at)}` }) : null))));
  return flows;
}

async function openFlow(flowId) {
  if (flowId !== state.flowId && dirty() && !window.confirm(`Discard your edits to ${state.flowId}?`)) return;
  let flow;
  try {
    flow = await api(`/api/admin/flows/${enc(flowId)}`);
  } catch {
    return;
  }
  Object.assign(state, { flowId, live: liveOf(flow), base: flow.version, checked: null, staleShown: 0 });
  history.replaceState(null, '', `#flow=${flowId}`);
  byTestId('flow-empty').hidden = true;
  byTestId('workspace').hidden = false;
  for (const item of document.querySelectorAll('.flow-item')) {
    if (item.dataset.flow === flowId) item.setAttribute('aria-current', 'true');
    else item.removeAttribute('aria-current');
  }
  byTestId('flow-title').textContent = flowId;
  byTestId('stale-notice').hidden = true;
  byTestId('publish-error').hidden = true;
  renderLive();
  const area = editor();
  area.value = flow.text;
  area.scrollTop = 0;
  area.setSelectionRange(0, 0);
  onEdit({ now: true });
  fill(byTestId('sim-result'));
  loadHistory();
}

function liveOf(flow) {
  return { number: flow.number ?? flow.version, author: flow.author, at: flow.at, comment: flow.comment, text: flow.text };
}

function renderLive() {
  const live = state.live;
  fill(byTestId('flow-live'),
    el('span', { class: 'badge badge-live', text: `Live · version ${live.number}` }), ' ',
    `published by ${live.author || '—'} · ${dateTime(live.at)}`,
    live.comment ? el('span', { class: 'live-comment', text: ` — “${live.comment}”` }) : null);
}

async function pollLive({ now = false } = {}) {
  if (!state.flowId || (!now && document.visibilityState !== 'visible')) return;
  let flows;
  try {
    flows = await api('/api/admin/flows', { quiet: true });
  } catch {
    return;
  }
  const flow = flows.find((f) => f.id === state.flowId);
  if (!flow || flow.live === state.base || flow.live === state.staleShown) return;
  state.staleShown = flow.live;
  const notice = byTestId('stale-notice');
  fill(notice, `Version ${flow.live} of ${state.flowId} was published since you opened it. `,
    dirty() ? 'Publishing your edits now would be refused: compare, then reload and merge. ' : '',
    el('button', { type: 'button', class: 'btn btn-sm', onclick: () => showDiff(state.base, flow.live) }, 'See its changes'),
    ' ',
    el('button', { type: 'button', class: 'btn btn-sm', onclick: () => reloadLive() }, `Load version ${flow.live}`));
  notice.hidden = false;
  loadFlows();
  loadHistory();
}

async function reloadLive() {
  if (dirty() && !window.confirm('Replace your edits with the live version?')) return;
  const keep = state.flowId;
  state.live = null; // not dirty any more: openFlow does not ask again
  await openFlow(keep);
}

// ---------------------------------------------------------------------------------------------
// The editor: a textarea, a gutter of line numbers, marks behind problem lines

function wireEditor() {
  const area = editor();
  area.addEventListener('input', () => onEdit());
  area.addEventListener('scroll', syncScroll);
  for (const type of ['keyup', 'click', 'select', 'focus']) area.addEventListener(type, updateCursor);
  area.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab' || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey) return;
    event.preventDefault(); // YAML is indented with spaces; Tab would leave the editor (Esc, then Tab, does)
    area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
    onEdit();
  });
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') area.blur();
  });
}

function onEdit({ now = false } = {}) {
  renderGutter();
  updateCursor();
  byTestId('editor-revert').disabled = !dirty();
  clearTimeout(state.timer);
  setStatus('checking', 'Checking…');
  updatePublish();
  if (now) validateNow();
  else state.timer = setTimeout(validateNow, VALIDATE_DELAY_MS);
}

function renderGutter() {
  const count = editor().value.split('\n').length;
  if (count === state.lines) return;
  state.lines = count;
  const inner = byTestId('editor-gutter').firstElementChild;
  const rows = [];
  for (let line = 1; line <= count; line += 1) rows.push(el('div', { class: 'gutter-line', data: { line }, text: String(line) }));
  fill(inner, rows);
  markLines(state.checked ? state.checked.problems : []);
}

function syncScroll() {
  const area = editor();
  const shift = `translateY(${-area.scrollTop}px)`;
  byTestId('editor-gutter').firstElementChild.style.transform = shift; // CSSOM: allowed by the CSP
  const marks = document.querySelector('.code-marks');
  marks.style.transform = shift;
}

function lineStart(text, line) {
  let offset = 0;
  for (let n = 1; n < line; n += 1) {
    const next = text.indexOf('\n', offset);
    if (next < 0) return text.length;
    offset = next + 1;
  }
  return offset;
}

function updateCursor() {
  const area = editor();
  const before = area.value.slice(0, area.selectionStart);
  const line = before.split('\n').length;
  const col = area.selectionStart - before.lastIndexOf('\n');
  const cursor = byTestId('editor-cursor');
  cursor.textContent = `Ln ${line}, Col ${col}`;
  cursor.dataset.line = String(line);
}

/** Select line `line` in the editor and scroll it into view (a third from the top). */
function gotoLine(line) {
  const area = editor();
  const text = area.value;
  const start = lineStart(text, line);
  const end = text.indexOf('\n', start);
  area.focus({ preventScroll: true });
  area.setSelectionRange(start, end < 0 ? text.length : end);
  area.scrollIntoView({ block: 'nearest' });
  area.scrollTop = Math.max(0, (line - 1) * LINE_PX - area.clientHeight / 3);
  syncScroll();
  updateCursor();
  const mark = document.querySelector(`.code-marks [data-line="${line}"]`);
  if (mark) {
    mark.classList.remove('flash');
    void mark.offsetWidth; // restart the animation
    mark.classList.add('flash');
  }
}

/** The line where node `id` is defined (under `nodes:`), or null. */
function nodeLine(id) {
  const text = editor().value;
  const nodes = text.search(/^nodes\s*:/m);
  if (nodes < 0) return null;
  const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const found = new RegExp(`^[ \\t]+["']?${escaped}["']?\\s*:`, 'm').exec(text.slice(nodes));
  return found ? text.slice(0, nodes + found.index).split('\n').length : null;
}

function markLines(problems) {
  const worst = new Map();
  for (const p of problems || []) {
    if (!p.line) continue;
    if (worst.get(p.line) !== 'error') worst.set(p.line, p.severity);
  }
  for (const row of byTestId('editor-gutter').querySelectorAll('[data-severity]')) {
    row.removeAttribute('data-severity');
    row.removeAttribute('title');
  }
  const marks = [];
  for (const [line, severity] of worst) {
    const row = byTestId('editor-gutter').querySelector(`[data-line="${line}"]`);
    if (row) {
      row.dataset.severity = severity;
      row.title = problems.filter((p) => p.line === line).map((p) => p.message).join('\n');
    }
    const mark = el('div', { class: `mark mark-${severity}`, data: { line } });
    mark.style.top = `${PAD_TOP + (line - 1) * LINE_PX}px`;
    marks.push(mark);
  }
  fill(document.querySelector('.code-marks'), marks);
  syncScroll();
}

function revert() {
  if (!state.live || !window.confirm('Discard your edits and go back to the live version?')) return;
  editor().value = state.live.text;
  onEdit({ now: true });
}

// ---------------------------------------------------------------------------------------------
// Validation (debounced while typing)

async function validateNow() {
  clearTimeout(state.timer);
  if (!state.flowId) return;
  const text = editor().value;
  const flowId = state.flowId;
  state.seq += 1;
  const seq = state.seq;
  let result;
  try {
    result = await api(`/api/admin/flows/${enc(flowId)}/validate`, { method: 'POST', body: { text }, quiet: true });
  } catch (error) {
    if (seq !== state.seq || flowId !== state.flowId) return;
    if (error.status === 413 || error.status === 422) {
      result = { ok: false, problems: [{ severity: 'error', message: error.message, line: null, path: '' }], graph: null };
    } else {
      setStatus('failed', `Not checked: ${error.message}`);
      return;
    }
  }
  if (seq !== state.seq || flowId !== state.flowId) return;
  state.checked = { text, ...result };
  renderCheck();
}

function renderCheck() {
  const { problems = [], graph } = state.checked;
  const errors = problems.filter((p) => p.severity === 'error');
  const warnings = problems.filter((p) => p.severity !== 'error');
  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;
  if (errors.length) setStatus('invalid', `✕ ${plural(errors.length, 'error')}${warnings.length ? ` · ${plural(warnings.length, 'warning')}` : ''}`);
  else if (warnings.length) setStatus('warnings', `✓ Valid · ${plural(warnings.length, 'warning')}`);
  else setStatus('valid', '✓ Valid');
  const summary = byTestId('problems-summary');
  summary.textContent = problems.length
    ? [errors.length ? plural(errors.length, 'error') : '', warnings.length ? plural(warnings.length, 'warning') : ''].filter(Boolean).join(', ')
    : 'No problems';
  summary.dataset.errors = String(errors.length);
  const sorted = [...errors, ...warnings];
  fill(byTestId('problems'), sorted.map((p) => el('li', {
    class: `problem sev-${p.severity}`, testid: 'problem',
    data: { line: p.line ?? '', severity: p.severity, path: p.path || '' },
  },
  el('button', {
    type: 'button', class: 'problem-go', disabled: p.line ? null : true,
    'aria-label': p.line ? `Go to line ${p.line}: ${p.message}` : p.message,
    onclick: () => p.line && gotoLine(p.line),
  },
  el('span', { class: 'problem-icon', 'aria-hidden': 'true', text: p.severity === 'error' ? '✕' : '!' }),
  el('span', { class: 'problem-line mono', testid: 'problem-line', text: p.line ? `Line ${p.line}` : 'File' }),
  el('span', { class: 'problem-text' },
    p.path ? el('span', { class: 'problem-path mono', text: p.path }) : null,
    el('span', { class: 'problem-message', testid: 'problem-message', text: p.message }))))));
  markLines(problems);
  if (graph) drawDiagram(graph);
  else {
    fill(byTestId('flow-diagram'));
    byTestId('diagram-summary').textContent = 'no diagram: the YAML does not parse';
  }
  updatePublish();
}

function setStatus(kind, text) {
  const pill = byTestId('editor-status');
  pill.dataset.state = kind;
  pill.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Publish

function publishBlocker() {
  if (!state.flowId || !state.live) return 'Open a flow first.';
  if (state.publishing) return 'Publishing…';
  const text = editor().value;
  if (text === state.live.text) return 'No changes to publish.';
  if (!state.checked || state.checked.text !== text) return 'Checking…';
  const errors = (state.checked.problems || []).filter((p) => p.severity === 'error').length;
  if (errors) return `Fix ${errors === 1 ? 'the error' : `the ${errors} errors`} to publish.`;
  if (!byTestId('publish-comment').value.trim()) return 'Say what changed in the comment, then publish.';
  return '';
}

function updatePublish() {
  const blocker = publishBlocker();
  const button = byTestId('publish');
  button.disabled = Boolean(blocker);
  byTestId('publish-hint').textContent = blocker
    || `Publishes version ${nextNumber()}: new calls follow it at once; calls in progress keep theirs.`;
}

async function publish(event) {
  event.preventDefault();
  if (publishBlocker()) return;
  const text = editor().value;
  const comment = byTestId('publish-comment').value.trim();
  const form = byTestId('publish-form');
  const box = byTestId('publish-error');
  box.hidden = true;
  form.dataset.state = 'publishing';
  state.publishing = true;
  updatePublish();
  try {
    const version = await api(flowPath('/publish'), { method: 'POST', body: { text, comment, base: state.base }, quiet: true });
    hideError();
    state.live = { ...version, text };
    state.base = version.number;
    state.staleShown = 0;
    byTestId('publish-comment').value = '';
    byTestId('stale-notice').hidden = true;
    form.dataset.state = 'published';
    form.dataset.version = String(version.number);
    renderLive();
    byTestId('editor-revert').disabled = !dirty();
    toast(`Published version ${version.number} of ${state.flowId}`);
    loadFlows();
    loadAudit();
    await loadHistory(version.number);
  } catch (error) {
    form.dataset.state = error.status === 409 ? 'conflict' : 'failed';
    const data = error.data || {};
    const parts = [el('p', { text: error.message })];
    if (error.status === 409) pollLive({ now: true }); // the notice, the list and the history catch up
    if (error.status === 409 && data.live) {
      parts.push(el('p', { class: 'publish-error-actions' },
        el('button', { type: 'button', class: 'btn btn-sm', onclick: () => showDiff(state.base, data.live) },
          `See what changed in version ${data.live}`),
        ' Your text stays in the editor.'));
    }
    if (error.status === 422 && Array.isArray(data.problems)) {
      state.checked = { text, ok: false, problems: data.problems, graph: state.checked && state.checked.graph };
      renderCheck();
    }
    fill(box, parts);
    box.hidden = false;
  } finally {
    state.publishing = false;
    updatePublish();
  }
}

// ---------------------------------------------------------------------------------------------
// History, diffs, rollback

async function loadHistory(select = null) {
  if (!state.flowId) return;
  try {
    state.history = await api(flowPath('/versions'), { quiet: true });
  } catch {
    return;
  }
  const list = byTestId('history');
  fill(list, state.history.map((v) => el('li', {
    class: `history-item${v.live ? ' is-live' : ''}`, testid: 'history-item',
    data: { version: v.number, live: v.live ? 'true' : 'false', author: v.author },
  },
  el('button', {
    type: 'button', class: 'history-main', testid: 'history-show', 'aria-label': `Show the changes of version ${v.number}`,
    onclick: () => showVersion(v.number),
  },
  el('span', { class: 'version-no mono', text: `v${v.number}` }),
  el('span', { class: 'history-text' },
    el('span', { class: 'history-comment', text: v.comment || '(no comment)' }),
    el('span', { class: 'history-meta', text: `${v.author} · ${dateTime(v.at)}` })),
  v.live ? el('span', { class: 'badge badge-live', text: 'Live' }) : null),
  v.live ? null : el('button', {
    type: 'button', class: 'btn btn-sm btn-danger', testid: 'history-rollback',
    'aria-label': `Roll back to version ${v.number}`, onclick: () => askRollback(v),
  }, 'Roll back'))));
  if (!state.history.length) fill(list, el('li', { class: 'muted', text: 'No versions yet.' }));
  if (select !== null) await showVersion(select, { reveal: false });
}

async function showVersion(number, { reveal = true } = {}) {
  for (const item of byTestId('history').querySelectorAll('.history-item')) {
    item.classList.toggle('is-selected', item.dataset.version === String(number));
  }
  if (number <= 1) {
    byTestId('diff-title').textContent = 'Changes in version 1';
    fill(byTestId('diff'), el('p', { class: 'muted', text: 'Version 1 is the first version: nothing to compare it with.' }));
    return;
  }
  await showDiff(number - 1, number, { reveal });
}

async function showDiff(a, b, { reveal = true } = {}) {
  let result;
  try {
    result = await api(`${flowPath('/diff')}?a=${enc(a)}&b=${enc(b)}`);
  } catch {
    return;
  }
  byTestId('diff-title').textContent = `Changes from version ${a} to version ${b}`;
  const box = byTestId('diff');
  box.dataset.a = String(a);
  box.dataset.b = String(b);
  const lines = (result.diff || '').split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  if (!lines.length) {
    fill(box, el('p', { class: 'muted', text: 'The two versions have the same text.' }));
    return;
  }
  let added = 0;
  let removed = 0;
  const rows = lines.map((line) => {
    let kind = 'ctx';
    if (line.startsWith('+++') || line.startsWith('---')) kind = 'file';
    else if (line.startsWith('@@')) kind = 'hunk';
    else if (line.startsWith('+')) { kind = 'add'; added += 1; }
    else if (line.startsWith('-')) { kind = 'del'; removed += 1; }
    return el('div', { class: `diff-line diff-${kind}`, data: { kind }, text: line || ' ' });
  });
  fill(box, el('p', { class: 'diff-stats' },
    el('span', { class: 'diff-added', text: `+${added}` }), ' ', el('span', { class: 'diff-removed', text: `−${removed}` }),
    el('span', { class: 'muted', text: ` line${added + removed === 1 ? '' : 's'} changed` })),
  el('div', { class: 'diff-body mono', role: 'region', 'aria-label': `Unified diff, version ${a} to ${b}`, tabindex: '0' }, rows));
  if (reveal) box.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
}

/** The number the next published version gets. */
function nextNumber() {
  return Math.max(state.live ? state.live.number : 0, ...state.history.map((v) => v.number)) + 1;
}

function askRollback(version) {
  const dialog = byTestId('rollback-dialog');
  fill(byTestId('rollback-text'),
    `The text of version ${version.number} (“${version.comment || 'no comment'}”, by ${version.author}) becomes live again, `,
    `as version ${nextNumber()}. New calls follow it at once; calls in progress keep the flow they started with.`);
  const comment = byTestId('rollback-comment');
  comment.value = ''; // the version's comment starts with "rollback to version N" anyway
  dialog.returnValue = '';
  dialog.onclose = () => {
    if (dialog.returnValue === 'confirm') rollback(version.number, comment.value.trim());
  };
  dialog.showModal();
  comment.focus();
}

async function rollback(number, comment) {
  let version;
  try {
    version = await api(flowPath('/rollback'), { method: 'POST', body: { version: number, comment } });
  } catch {
    return;
  }
  toast(`Version ${number} is live again, as version ${version.number}`);
  const keptEdits = dirty();
  const live = await api(flowPath()).catch(() => null);
  if (live) {
    state.live = liveOf(live);
    renderLive();
    if (!keptEdits) {
      state.base = live.version;
      editor().value = live.text;
      onEdit({ now: true });
    }
  }
  loadFlows();
  loadAudit();
  await loadHistory(version.number);
}

// ---------------------------------------------------------------------------------------------
// Audit log

const ACTIONS = { publish: 'Publish', rollback: 'Rollback', import: 'Import', role_change: 'Role change' };

async function loadAudit() {
  let entries;
  try {
    entries = await api('/api/admin/audit?count=50', { quiet: true });
  } catch {
    return;
  }
  const body = byTestId('audit');
  if (!entries.length) {
    fill(body, el('tr', {}, el('td', { colspan: '5', class: 'muted', text: 'Nothing recorded yet.' })));
    return;
  }
  fill(body, entries.map((entry) => el('tr', {
    class: 'audit-row', testid: 'audit-row', data: { action: entry.action, who: entry.who, target: entry.target },
  },
  el('td', { class: 'nowrap', text: dateTime(entry.at) }),
  el('td', { class: 'mono', text: entry.who }),
  el('td', {}, el('span', { class: `chip chip-action action-${String(entry.action).replace(/[^\w-]/g, '')}`, text: ACTIONS[entry.action] || String(entry.action).replaceAll('_', ' ') })),
  el('td', { class: 'mono', text: entry.target }),
  el('td', { class: 'audit-detail', text: entry.detail || '' }))));
}

// ---------------------------------------------------------------------------------------------
// Simulation

async function runSimulation(event) {
  event.preventDefault();
  if (!state.flowId) return;
  const box = byTestId('sim-result');
  const inputs = byTestId('sim-inputs').value.split('\n').map((line) => line.trim()).filter(Boolean);
  const caller = byTestId('sim-caller').value.trim();
  const run = byTestId('sim-run');
  run.disabled = true;
  box.dataset.state = 'running';
  fill(box, el('p', { class: 'muted', text: 'Running…' }));
  try {
    const result = await api(flowPath('/simulate'), {
      method: 'POST', body: { text: editor().value, caller, inputs }, quiet: true,
    });
    renderSimulation(result);
  } catch (error) {
    box.dataset.state = 'error';
    const problems = (error.data && error.data.problems) || [];
    fill(box, el('p', { class: 'form-error', testid: 'sim-error', text: problems.length
      ? `Fix the flow's errors first (${problems.filter((p) => p.severity === 'error').length}): the simulation runs the editor's text.`
      : error.message }));
  } finally {
    run.disabled = false;
  }
}

function decisionText(decision) {
  if (!decision) return 'No decision';
  const { kind, queue, target } = decision;
  if (queue && (kind === 'route' || kind === 'queue' || kind === 'person')) return `To the ${queue} queue`;
  if (kind === 'transfer') return `Transferred to extension ${target}`;
  if (kind === 'callback' || kind === 'callback_offer') return `Callback${queue ? ` (keeps a place in ${queue})` : ''}`;
  if (kind === 'hangup') return 'The call ends';
  if (kind === 'self_service') return 'Served by the IVR';
  if (queue) return `${String(kind || 'route').replaceAll('_', ' ')}: queue ${queue}`;
  return String(kind || 'unknown').replaceAll('_', ' ');
}

function renderSimulation(result) {
  const box = byTestId('sim-result');
  box.dataset.state = 'done';
  const decision = result.decision || {};
  const steps = result.steps || [];
  fill(box,
    el('div', {
      class: 'sim-decision', testid: 'sim-decision',
      data: { kind: decision.kind || '', queue: decision.queue || '', target: decision.target || '' },
    },
    el('span', { class: 'sim-decision-label', text: 'Result' }),
    el('strong', { text: decisionText(decision) }),
    decision.reason ? el('span', { class: 'muted', text: ` — ${decision.reason}` }) : null),
    el('ol', { class: 'sim-steps' }, steps.map((step, index) => {
      const scores = Object.entries(step.scores || {}).sort(([, x], [, y]) => y - x).slice(0, 3);
      return el('li', { class: 'sim-step', testid: 'sim-step', data: { node: step.node, intent: step.intent || '' } },
        el('div', { class: 'sim-step-head' },
          el('span', { class: 'sim-step-no', text: String(index + 1) }),
          el('span', { class: 'mono sim-node', text: step.node }),
          el('span', { class: 'muted small', text: String(step.kind || '').replaceAll('_', ' ') }),
          step.intent ? el('span', { class: 'chip chip-intent', text: step.intent }) : null),
        step.prompt ? el('p', { class: 'sim-prompt' }, el('span', { class: 'sim-who', text: 'IVR' }), el('q', { text: step.prompt })) : null,
        step.kind !== 'say' || step.heard ? el('p', { class: 'sim-heard' },
          el('span', { class: 'sim-who', text: 'Caller' }),
          step.heard ? el('q', { text: step.heard }) : el('span', { class: 'muted', text: '(no input)' })) : null,
        scores.length ? el('p', { class: 'sim-scores' }, scores.map(([intent, score]) => el('span', { class: 'sim-score' },
          el('span', { class: 'mono', text: intent }), ' ', el('span', { class: 'muted', text: Number(score).toFixed(2) })))) : null);
    })));
}

// ---------------------------------------------------------------------------------------------
// The diagram: a layered layout (left to right) of the flow's nodes and edges, drawn as SVG

/** Columns by longest path from the start (edges that close a cycle are drawn backwards), rows by barycenter. */
export function layout(graph) {
  const ids = graph.nodes.map((n) => n.id);
  const known = new Set(ids);
  const edges = graph.edges.filter((e) => known.has(e.from) && known.has(e.to));
  const out = new Map(ids.map((id) => [id, []]));
  for (const e of edges) out.get(e.from).push(e.to);

  // Depth-first from the start (then any node not reached): back edges close cycles.
  const seen = new Map();
  const post = [];
  const back = new Set();
  const visit = (root) => {
    const stack = [[root, 0]];
    seen.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [id, i] = top;
      const targets = out.get(id);
      if (i < targets.length) {
        top[1] += 1;
        const t = targets[i];
        if (seen.get(t) === 1) back.add(`${id}\u0000${t}`);
        else if (!seen.has(t)) {
          seen.set(t, 1);
          stack.push([t, 0]);
        }
      } else {
        seen.set(id, 2);
        post.push(id);
        stack.pop();
      }
    }
  };
  for (const id of [graph.start, ...ids]) if (id && known.has(id) && !seen.has(id)) visit(id);
  const isBack = (e) => back.has(`${e.from}\u0000${e.to}`) || e.from === e.to;

  const topo = [...post].reverse();
  const layer = new Map(ids.map((id) => [id, 0]));
  for (const id of topo) {
    for (const e of edges) {
      if (e.from === id && !isBack(e)) layer.set(e.to, Math.max(layer.get(e.to), layer.get(id) + 1));
    }
  }

  // Long forward edges get a waypoint in every column they cross, so they bend around the boxes there.
  const items = new Map(ids.map((id) => [id, { id, layer: layer.get(id), h: NODE_H, node: true }]));
  const chains = edges.map((e) => {
    const chain = [e.from];
    if (!isBack(e)) {
      for (let l = layer.get(e.from) + 1; l < layer.get(e.to); l += 1) {
        const id = `\u0000${e.from}>${e.to}@${l}`;
        items.set(id, { id, layer: l, h: DUMMY_H, node: false });
        chain.push(id);
      }
    }
    chain.push(e.to);
    return { edge: e, chain, back: isBack(e) };
  });
  const columns = [];
  const order = topo.concat([...items.keys()].filter((id) => !known.has(id)));
  for (const id of order) {
    const item = items.get(id);
    (columns[item.layer] ||= []).push(id);
  }
  for (let l = 0; l < columns.length; l += 1) columns[l] ||= [];

  // Barycenter sweeps: each column ordered by the mean position of its neighbours in the previous one.
  const prev = new Map();
  const next = new Map();
  for (const { chain, back: isB } of chains) {
    if (isB) continue;
    for (let i = 0; i + 1 < chain.length; i += 1) {
      (next.get(chain[i]) || next.set(chain[i], []).get(chain[i])).push(chain[i + 1]);
      (prev.get(chain[i + 1]) || prev.set(chain[i + 1], []).get(chain[i + 1])).push(chain[i]);
    }
  }
  const position = new Map();
  const index = () => columns.forEach((col) => col.forEach((id, i) => position.set(id, i)));
  index();
  const sweep = (cols, neighbours) => {
    for (const col of cols) {
      const key = new Map(col.map((id, i) => {
        const ns = neighbours.get(id) || [];
        return [id, ns.length ? ns.reduce((s, n) => s + position.get(n), 0) / ns.length : i];
      }));
      col.sort((a, b) => key.get(a) - key.get(b));
      col.forEach((id, i) => position.set(id, i));
    }
  };
  for (let round = 0; round < 4; round += 1) {
    sweep(columns.slice(1), prev);
    sweep(columns.slice(0, -1).reverse(), next);
  }

  // Coordinates: columns left to right, each centred on the tallest.
  const heightOf = (col) => col.reduce((s, id) => s + items.get(id).h, 0) + GAP_Y * Math.max(0, col.length - 1);
  const tallest = Math.max(NODE_H, ...columns.map(heightOf));
  const at = new Map();
  columns.forEach((col, l) => {
    let y = (tallest - heightOf(col)) / 2;
    for (const id of col) {
      const item = items.get(id);
      at.set(id, { x: l * (NODE_W + GAP_X), y, h: item.h });
      y += item.h + GAP_Y;
    }
  });
  return { at, chains, width: columns.length * NODE_W + (columns.length - 1) * GAP_X, height: tallest };
}

function svgEl(svg, tag, attrs = {}, text = null) {
  const node = document.createElementNS(svg.namespaceURI, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined) continue;
    if (key === 'testid') node.dataset.testid = value;
    else node.setAttribute(key, String(value));
  }
  if (text !== null) node.textContent = text;
  return node;
}

/** Cut `text` to about `px` pixels at `size` px (CJK characters count double). */
function clip(text, px, size) {
  let width = 0;
  let out = '';
  for (const ch of String(text)) {
    width += (ch.codePointAt(0) > 0x1100 ? 1.0 : 0.58) * size;
    if (width > px) return `${out.trimEnd()}…`;
    out += ch;
  }
  return out;
}

function drawDiagram(graph) {
  const svg = byTestId('flow-diagram');
  const { at, chains, width, height } = layout(graph);
  const pad = 14;
  const W = width + pad * 2 + 26;
  const H = height + pad * 2;
  const wrap = svg.parentElement;
  const fit = Math.min(1, ((wrap.clientWidth || W) - 16) / W);
  const scale = state.zoomed ? 1 : Math.max(MIN_SCALE, fit);
  const zoom = byTestId('diagram-zoom');
  zoom.hidden = fit >= 1;
  zoom.textContent = state.zoomed ? 'Fit' : '100%';
  zoom.setAttribute('aria-pressed', state.zoomed ? 'true' : 'false');
  svg.setAttribute('viewBox', `${-pad - 26} ${-pad} ${W} ${H}`);
  svg.setAttribute('width', String(Math.round(W * scale)));
  svg.setAttribute('height', String(Math.round(H * scale)));
  const nodes = new Map(graph.nodes.map((n) => [n.id, n]));

  const defs = svgEl(svg, 'defs');
  for (const [id, cls] of [['arrow', 'arrow'], ['arrow-bad', 'arrow arrow-bad']]) {
    const marker = svgEl(svg, 'marker', { id: `dg-${id}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
    marker.append(svgEl(svg, 'path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
    defs.append(marker);
  }
  const edgeLayer = svgEl(svg, 'g', { class: 'dg-edges' });
  const labelLayer = svgEl(svg, 'g', { class: 'dg-labels' });
  const nodeLayer = svgEl(svg, 'g', { class: 'dg-nodes' });

  for (const { edge, chain, back } of chains) {
    const source = at.get(edge.from);
    const target = at.get(edge.to);
    const bad = nodes.get(edge.to) && nodes.get(edge.to).type === 'missing';
    let d;
    let label;
    if (back) {
      // Backwards (a loop): out of the bottom of the source, round under, into the bottom of the target.
      const sx = source.x + NODE_W / 2;
      const tx = target.x + NODE_W / 2 + 12;
      const low = Math.max(source.y + NODE_H, target.y + NODE_H) + 36;
      d = `M${sx},${source.y + NODE_H} C${sx},${low} ${tx},${low} ${tx},${target.y + NODE_H}`;
      label = { x: (sx + tx) / 2, y: low - 4, anchor: 'middle' };
    } else {
      // Right side of the source, through each waypoint's column (straight across), into the target's left side.
      let from = { x: source.x + NODE_W, y: source.y + source.h / 2 };
      d = `M${from.x},${from.y}`;
      for (let i = 1; i < chain.length; i += 1) {
        const p = at.get(chain[i]);
        const to = { x: p.x, y: p.y + p.h / 2 };
        const dx = (to.x - from.x) / 2;
        d += ` C${from.x + dx},${from.y} ${to.x - dx},${to.y} ${to.x},${to.y}`;
        // The label ends just before the first column the edge enters: the fan of edges is widest there.
        if (i === 1) label = { x: to.x - 9, y: to.y - 5, anchor: 'end' };
        from = { x: p.x + NODE_W, y: to.y };
        if (i < chain.length - 1) d += ` L${from.x},${from.y}`;
      }
    }
    edgeLayer.append(svgEl(svg, 'path', {
      d, class: `dg-edge${bad ? ' is-bad' : ''}${back ? ' is-back' : ''}`, 'marker-end': `url(#dg-${bad ? 'arrow-bad' : 'arrow'})`,
      testid: 'diagram-edge', 'data-from': edge.from, 'data-to': edge.to, 'data-label': edge.label || '',
    }));
    if (edge.label) {
      // Several intents on one edge ("password · 5, agent · 0"): one line each, stacked upwards.
      const lines = edge.label.split(', ').map((part) => clip(part, GAP_X - 14, 10.5));
      const text = svgEl(svg, 'text', { class: `dg-label${bad ? ' is-bad' : ''}`, 'text-anchor': label.anchor, testid: 'diagram-label' });
      lines.forEach((line, i) => text.append(svgEl(svg, 'tspan', { x: label.x, y: label.y - (lines.length - 1 - i) * 12 }, line)));
      text.append(svgEl(svg, 'title', {}, `${edge.from} → ${edge.to}: ${edge.label}`));
      labelLayer.append(text);
    }
  }

  for (const node of graph.nodes) {
    const p = at.get(node.id);
    const g = svgEl(svg, 'g', {
      class: `dg-node t-${String(node.type).replace(/[^\w-]/g, '')}${node.error ? ' has-error' : ''}${node.start ? ' is-start' : ''}`,
      transform: `translate(${p.x},${p.y})`, testid: `diagram-node-${node.id}`,
      'data-type': node.type, 'data-error': node.error ? 'true' : 'false', tabindex: '0', role: 'button',
      'aria-label': `${node.id}, ${node.type}: ${node.label}`,
    });
    g.append(svgEl(svg, 'title', {}, `${node.id} (${node.type})\n${node.label}`));
    g.append(svgEl(svg, 'rect', { class: 'dg-box', width: NODE_W, height: NODE_H, rx: 7 }));
    g.append(svgEl(svg, 'rect', { class: 'dg-stripe', width: 5, height: NODE_H - 2, x: 1, y: 1, rx: 3 }));
    g.append(svgEl(svg, 'text', { class: 'dg-id', x: 14, y: 19 }, clip(node.id, NODE_W - 24, 12)));
    g.append(svgEl(svg, 'text', { class: 'dg-sub', x: 14, y: 35 }, clip(node.label, NODE_W - 22, 10.5)));
    if (node.start) {
      g.append(svgEl(svg, 'path', { class: 'dg-start', d: `M-22,${NODE_H / 2} L-4,${NODE_H / 2}`, 'marker-end': 'url(#dg-arrow)' }));
      g.append(svgEl(svg, 'circle', { class: 'dg-start-dot', cx: -24, cy: NODE_H / 2, r: 4 }));
    }
    const go = () => {
      const line = nodeLine(node.id);
      if (line) gotoLine(line);
    };
    g.addEventListener('click', go);
    g.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' || event.key === ' ') {
        event.preventDefault();
        go();
      }
    });
    nodeLayer.append(g);
  }
  svg.replaceChildren(defs, edgeLayer, nodeLayer, labelLayer);
  const count = graph.nodes.filter((n) => n.type !== 'missing').length;
  const missing = graph.nodes.length - count;
  byTestId('diagram-summary').textContent = `${count} nodes, ${graph.edges.length} edges`
    + (missing ? ` · ${missing} missing` : '') + (graph.partial ? ' · drawn from a flow with errors' : '');
}
