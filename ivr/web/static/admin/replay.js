// The replay's evidence for the editor's text (/admin): what a replay of exactly this text found (turns fixed,
// broken, acting instead of confirming, containment), shown in the publish bar before publishing; and the
// override a version needs when it breaks more turns than it fixes (the server refuses it otherwise, 422 on
// `override`). Replays are run from /trainer or with `ivr dialplan replay FILE`.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { state } from './state.js';

const looked = { text: null, result: undefined };

/** The publish bar's replay box (made once, under the publish form). */
function box() {
  let node = byTestId('publish-replay');
  if (!node) {
    node = el('div', { class: 'publish-replay small', 'data-testid': 'publish-replay', 'aria-live': 'polite' });
    byTestId('publish-form').append(node);
  }
  return node;
}

export function describe(result) {
  const pct = (x) => `${Math.round(100 * x)}%`;
  return `replay of ${result.turns} turns: ${result.fixed} fixed, ${result.broken} broken, `
    + `${result.now_act} would act instead of confirming; containment ${pct(result.containment_before)} → `
    + `${pct(result.containment_after)}${result.unreadable ? `; ${result.unreadable} recordings unreadable` : ''}`;
}

/** Look up (once per text) the replay kept for `text` and show it. */
export async function showReplayFor(text) {
  if (!state.flowId || text === looked.text) return looked.result;
  looked.text = text;
  looked.result = undefined;
  try {
    const answer = await api(`/api/trainer/flows/${encodeURIComponent(state.flowId)}/replays/lookup`,
      { method: 'POST', body: { text }, quiet: true });
    if (looked.text !== text) return undefined;
    looked.result = answer.result;
  } catch {
    looked.result = null;
  }
  render(looked.result);
  return looked.result;
}

function render(result) {
  const node = box();
  if (!result) {
    fill(node, el('span', { class: 'muted', text: 'Not replayed: run a replay in /trainer or `ivr dialplan replay` to publish with evidence.' }));
    node.dataset.state = 'none';
    return;
  }
  node.dataset.state = result.broken > result.fixed ? 'worse' : 'ok';
  fill(node, el('span', { 'data-testid': 'publish-replay-summary', text: describe(result) }));
}

/** The publish was refused by the replay: show why and ask for the override comment. */
export function askOverride(data, onOverride) {
  const node = box();
  node.dataset.state = 'worse';
  const input = el('input', { 'data-testid': 'publish-override', maxlength: '500',
    placeholder: 'Why publish although it breaks more turns than it fixes (kept in the audit)' });
  const button = el('button', { type: 'button', class: 'btn btn-danger-solid btn-sm', 'data-testid': 'publish-override-go',
    onclick: () => { if (input.value.trim()) onOverride(input.value.trim()); } }, 'Publish with override');
  fill(node, el('p', { text: data.replay ? describe(data.replay) : '' }), input, button);
  input.focus();
}
