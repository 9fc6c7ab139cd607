// The audit log: publishes, rollbacks, imports, role changes, newest first.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { dateTime } from '../lib/format.js';

const ACTIONS = { publish: 'Publish', rollback: 'Rollback', import: 'Import', role_change: 'Role change' };

export async function loadAudit() {
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
