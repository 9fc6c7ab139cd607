// The flows: the list, opening one, and noticing (by polling) that someone else published meanwhile.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { dateTime } from '../lib/format.js';
import { onEdit } from './check.js';
import { loadHistory, showDiff } from './history.js';
import { liveOf, renderLive } from './live.js';
import { dirty, editor, enc, state } from './state.js';

export async function loadFlows() {
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

export async function openFlow(flowId) {
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

export async function pollLive({ now = false } = {}) {
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
