// Publishing the editor's text with a comment: refused (409) when someone else published since it was opened.

import { api } from '../lib/backend.js';
import { hideError, toast } from '../lib/notices.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { renderCheck } from './check.js';
import { pollLive } from './flows.js';
import { publishBlocker, updatePublish } from './gate.js';
import { askOverride } from './replay.js';
import { showDiff } from './history.js';
import { renderLive } from './live.js';
import { dirty, editor, flowPath, newVersionLive, state } from './state.js';

export async function publish(event, override = null) {
  if (event) event.preventDefault();
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
    const version = await api(flowPath('/publish'), { method: 'POST', body: { text, comment, base: state.base, ...(override ? { override } : {}) }, quiet: true });
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
    await newVersionLive(version.number);
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
    if (error.status === 422 && data.field === 'override') {
      form.dataset.state = 'needs-override'; // the replay breaks more turns than it fixes: say why, or fix it
      askOverride(data, (why) => publish(null, why));
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
