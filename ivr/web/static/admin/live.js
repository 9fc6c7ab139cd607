// The live version line above the editor.

import { el, fill, byTestId } from '../lib/dom.js';
import { dateTime } from '../lib/format.js';
import { state } from './state.js';

export function liveOf(flow) {
  return { number: flow.number ?? flow.version, author: flow.author, at: flow.at, comment: flow.comment, text: flow.text };
}

export function renderLive() {
  const live = state.live;
  fill(byTestId('flow-live'),
    el('span', { class: 'badge badge-live', text: `Live · version ${live.number}` }), ' ',
    `published by ${live.author || '—'} · ${dateTime(live.at)}`,
    live.comment ? el('span', { class: 'live-comment', text: ` — “${live.comment}”` }) : null);
}
