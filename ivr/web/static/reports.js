// Reports (/reports): KPIs per day, queue and flow version, and navigation analytics, from the archive of
// finished calls. Charts are drawn on the server (SVG, fetched with the session's token); tables from the JSON.

import { api } from './lib/backend.js';
import { boot } from './lib/boot.js';
import { byTestId, el, fill } from './lib/dom.js';
import { showMedia } from './lib/media.js';
import { showError } from './lib/notices.js';
import { startPage } from './lib/page.js';

const SECONDS = new Set(['asa', 'aht', 'ivr_s']);
const COUNTS = new Set(['calls', 'spoken']);
const state = { since: '7d', by: 'version' };

boot(() => startPage({ roles: ['supervisor', 'admin', 'trainer'], onReady }));

function onReady() {
  byTestId('ws-status').hidden = true;
  byTestId('reports-since').addEventListener('change', (e) => { state.since = e.target.value; load(); });
  byTestId('reports-by').addEventListener('change', (e) => { state.by = e.target.value; load(); });
  load();
}

/** A cell: rates as percentages, seconds with one decimal, "—" for nothing counted. */
export function cell(name, value) {
  if (value === null || value === undefined) return '—';
  if (SECONDS.has(name)) return `${Number(value).toFixed(1)} s`;
  if (COUNTS.has(name) || typeof value !== 'number') return String(value);
  return `${(value * 100).toFixed(1)}%`;
}

function table(node, rows, columns) {
  fill(node,
    el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c.replaceAll('_', ' ') })))),
    el('tbody', {}, rows.map((row) => el('tr', {}, columns.map((c) => el('td', { text: cell(c, row[c]) }))))));
}

async function load() {
  const since = `since=${state.since}`;
  try {
    const [kpi, nav] = await Promise.all([
      api(`/api/reports/kpi?${since}`), api(`/api/reports/navigation?${since}&by=${state.by}`)]);
    const kpiColumns = ['day', 'queue', 'flow_version', 'calls', 'containment', 'ivr_abandonment', 'transfer_rate',
      'service_level', 'asa', 'queue_abandonment', 'aht', 'repeat_7d', 'callbacks_kept'];
    table(byTestId('kpi-table'), kpi.rows, kpiColumns);
    table(byTestId('navigation-table'), nav.rows, ['value', 'calls', 'spoken', 'containment', 'first_try', 'confirm',
      'confirm_rejected', 'reprompt', 'no_match', 'asks_person', 'hangup_in_ivr', 'ivr_s', 'keys_after_failure']);
    const csv = [kpiColumns.join(','), ...kpi.rows.map((r) => kpiColumns.map((c) => (r[c] ?? '')).join(','))].join('\n');
    const link = byTestId('kpi-csv');
    if (link.dataset.blob) URL.revokeObjectURL(link.dataset.blob);
    link.dataset.blob = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
    link.href = link.dataset.blob;
    await Promise.all([
      showMedia(byTestId('kpi-chart'), `/api/reports/kpi.svg?${since}`),
      showMedia(byTestId('navigation-chart'), `/api/reports/navigation.svg?${since}&by=${state.by}`)]);
  } catch (error) {
    showError(`Reports: ${error.message}`);
  }
}
