// Whether Publish is possible now, and why not: unchanged, being checked, errors, no comment, publishing.

import { byTestId } from '../lib/dom.js';
import { showReplayFor } from './replay.js';
import { editor, state } from './state.js';

export function publishBlocker() {
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

export function updatePublish() {
  const blocker = publishBlocker();
  const button = byTestId('publish');
  button.disabled = Boolean(blocker);
  if (state.live && editor().value !== state.live.text) showReplayFor(editor().value); // the evidence, once per text
  byTestId('publish-hint').textContent = blocker
    || `Publishes version ${nextNumber()}: new calls follow it at once; calls in progress keep theirs.`;
}

/** The number the next published version gets. */
export function nextNumber() {
  return Math.max(state.live ? state.live.number : 0, ...state.history.map((v) => v.number)) + 1;
}
