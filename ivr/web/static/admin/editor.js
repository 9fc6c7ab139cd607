// The editor: a textarea, a gutter of line numbers, marks behind problem lines, the cursor position.

import { byTestId, el, fill } from '../lib/dom.js';
import { editor, state } from './state.js';

const LINE_PX = 20; // the editor's line height: .code textarea in style.css
const PAD_TOP = 10; // the editor's top padding: .code textarea in style.css

/** onChange(): the text changed (typed, or a Tab inserted as spaces). */
export function wireEditor(onChange) {
  const area = editor();
  area.addEventListener('input', () => onChange());
  area.addEventListener('scroll', syncScroll);
  for (const type of ['keyup', 'click', 'select', 'focus']) area.addEventListener(type, updateCursor);
  area.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab' || event.shiftKey || event.ctrlKey || event.altKey || event.metaKey) return;
    event.preventDefault(); // YAML is indented with spaces; Tab would leave the editor (Esc, then Tab, does)
    area.setRangeText('  ', area.selectionStart, area.selectionEnd, 'end');
    onChange();
  });
  area.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') area.blur();
  });
}

export function renderGutter() {
  const count = editor().value.split('\n').length;
  if (count === state.lines) return;
  state.lines = count;
  const inner = byTestId('editor-gutter').firstElementChild;
  const rows = [];
  for (let line = 1; line <= count; line += 1) rows.push(el('div', { class: 'gutter-line', data: { line }, text: String(line) }));
  fill(inner, rows);
  markLines(state.checked ? state.checked.problems : []);
}

export function syncScroll() {
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

export function updateCursor() {
  const area = editor();
  const before = area.value.slice(0, area.selectionStart);
  const line = before.split('\n').length;
  const col = area.selectionStart - before.lastIndexOf('\n');
  const cursor = byTestId('editor-cursor');
  cursor.textContent = `Ln ${line}, Col ${col}`;
  cursor.dataset.line = String(line);
}

/** Select line `line` in the editor and scroll it into view (a third from the top). */
export function gotoLine(line) {
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
export function nodeLine(id) {
  const text = editor().value;
  const nodes = text.search(/^nodes\s*:/m);
  if (nodes < 0) return null;
  const escaped = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const found = new RegExp(`^[ \\t]+["']?${escaped}["']?\\s*:`, 'm').exec(text.slice(nodes));
  return found ? text.slice(0, nodes + found.index).split('\n').length : null;
}

export function markLines(problems) {
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
