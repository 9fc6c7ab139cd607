// The versions of the open flow: the list, each version's diff, and rollback (confirmed in a dialog).

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { dateTime } from '../lib/format.js';
import { toast } from '../lib/notices.js';
import { onEdit } from './check.js';
import { nextNumber } from './gate.js';
import { liveOf, renderLive } from './live.js';
import { dirty, editor, enc, flowPath, newVersionLive, state } from './state.js';

export async function loadHistory(select = null) {
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

export async function showDiff(a, b, { reveal = true } = {}) {
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
  await newVersionLive(version.number);
}
