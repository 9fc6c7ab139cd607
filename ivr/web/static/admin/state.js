// The flow editor's state (/admin): which flow is open, its live version, the last check, the history.

import { byTestId } from '../lib/dom.js';

export const state = {
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

export const enc = encodeURIComponent;
export const flowPath = (suffix = '') => `/api/admin/flows/${enc(state.flowId)}${suffix}`;
export const editor = () => byTestId('editor-text');
export const dirty = () => Boolean(state.live) && editor().value !== state.live.text;

// A publish or a rollback (publish.js, history.js) changes what the flow list, the history and the audit log
// show. admin.js subscribes and reloads them: the modules that publish need not import the ones that list
// (flows.js already imports history.js: calling back up would be an import cycle).
const versionListeners = [];

/** listener(number): a new version `number` is live. */
export function onNewVersion(listener) {
  versionListeners.push(listener);
}

export function newVersionLive(number) {
  return Promise.all(versionListeners.map((listener) => listener(number)));
}
