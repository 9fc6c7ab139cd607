// Checking as you type: debounced POST .../validate, the status pill, the problems list, the gutter marks and the
// diagram drawn from the server's parse.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { drawDiagram } from './diagram.js';
import { gotoLine, markLines, nodeLine, renderGutter, updateCursor } from './editor.js';
import { updatePublish } from './gate.js';
import { dirty, editor, enc, state } from './state.js';

const VALIDATE_DELAY_MS = 400;

/** The text changed: mark it unchecked and check it (at once, or once the typing pauses). */
export function onEdit({ now = false } = {}) {
  renderGutter();
  updateCursor();
  byTestId('editor-revert').disabled = !dirty();
  clearTimeout(state.timer);
  setStatus('checking', 'Checking…');
  updatePublish();
  if (now) validateNow();
  else state.timer = setTimeout(validateNow, VALIDATE_DELAY_MS);
}

export function revert() {
  if (!state.live || !window.confirm('Discard your edits and go back to the live version?')) return;
  editor().value = state.live.text;
  onEdit({ now: true });
}

export async function validateNow() {
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

export function renderCheck() {
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
  if (graph) redrawDiagram();
  else {
    fill(byTestId('flow-diagram'));
    byTestId('diagram-summary').textContent = 'no diagram: the YAML does not parse';
  }
  updatePublish();
}

export function setStatus(kind, text) {
  const pill = byTestId('editor-status');
  pill.dataset.state = kind;
  pill.textContent = text;
}

/** The diagram of the last check (again: after a zoom or a resize). */
export function redrawDiagram() {
  if (!state.checked || !state.checked.graph) return;
  drawDiagram(state.checked.graph, {
    zoomed: state.zoomed,
    onNodeActivate(id) {
      const line = nodeLine(id);
      if (line) gotoLine(line);
    },
  });
}
