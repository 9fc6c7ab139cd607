// The phone panel of /agent and /field (the page phone of lib/phone.js): its registration state, and while a
// call is up: answer, hang up, mute, hold, a DTMF keypad and a blind transfer to an extension or a queue.
//
// The ready switch and the registration are one state (phonePresence): going ready first registers the phone,
// and a phone that is not registered makes the agent not ready, with the reason shown ("Phone not registered"),
// until it registers again.

import { byTestId, el, fill } from './dom.js';
import { toast } from './notices.js';

/** The not-ready reason the page sets when the phone is not registered (lib/format.js labels it). */
export const PHONE_REASON = 'phone';

const STATES = {
  loading: 'Starting…',
  connecting: 'Connecting…',
  registered: 'Registered',
  unregistered: 'Not registered',
  failed: 'Not registered',
  none: 'Desk phone',
};
const CALL_STATUS = { ringing: 'Ringing', connecting: 'Connecting…', active: 'On call', ended: 'Call ended' };
const KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];

/**
 * Renders the panel into `section` (a `<section data-testid="phone">` of the page) and keeps it in step with
 * `phone`. `who(call)` names the caller (from the pop when it has arrived). `compact`: no answer/hang-up
 * buttons (the field page has big ones in its ring card). Returns `render()`, to call when the pop changes.
 */
export function renderPhonePanel(section, phone, { who = () => '', compact = false } = {}) {
  const pill = el('span', { class: 'state-pill', testid: 'phone-state', role: 'status' });
  const reason = el('span', { class: 'phone-reason', testid: 'phone-reason' });
  const caller = el('span', { class: 'phone-who', testid: 'phone-who', lang: 'ko' });
  const status = el('span', { class: 'phone-status', testid: 'phone-call-status' });
  const answer = el('button', { type: 'button', class: 'btn btn-success', testid: 'phone-answer', onclick: () => phone.answer() },
    'Answer');
  const hangup = el('button', { type: 'button', class: 'btn btn-danger', testid: 'phone-hangup', onclick: () => phone.hangup() },
    'Hang up');
  const mute = el('button', { type: 'button', class: 'btn', testid: 'phone-mute', 'aria-pressed': 'false',
    onclick: () => phone.mute(!phone.call.muted) }, 'Mute');
  const hold = el('button', { type: 'button', class: 'btn', testid: 'phone-hold', 'aria-pressed': 'false',
    onclick: () => phone.hold(!phone.call.held) }, 'Hold');
  const keypadToggle = el('button', { type: 'button', class: 'btn', testid: 'phone-keypad-toggle',
    'aria-expanded': 'false', 'aria-controls': 'phone-keypad' }, 'Keypad');
  const keypad = el('div', { class: 'phone-keypad', id: 'phone-keypad', testid: 'phone-keypad', role: 'group',
    'aria-label': 'Keypad (tones to the caller)', hidden: true },
  KEYS.map((key) => el('button', { type: 'button', class: 'btn key', testid: `phone-key-${key === '*' ? 'star' : key === '#' ? 'hash' : key}`,
    onclick: () => phone.dtmf(key) }, key)));
  keypadToggle.addEventListener('click', () => {
    keypad.hidden = !keypad.hidden;
    keypadToggle.setAttribute('aria-expanded', String(!keypad.hidden));
  });
  const target = el('input', { id: 'phone-transfer-target', testid: 'phone-transfer-target', autocomplete: 'off',
    autocapitalize: 'off', spellcheck: 'false', placeholder: '1002 or loans', maxlength: '32', pattern: '[A-Za-z0-9_]+' });
  const transfer = el('form', { class: 'phone-transfer', testid: 'phone-transfer-form', novalidate: true },
    el('label', { for: 'phone-transfer-target', text: 'Transfer to' }), target,
    el('button', { type: 'submit', class: 'btn', testid: 'phone-transfer' }, 'Transfer'));
  transfer.addEventListener('submit', (event) => {
    event.preventDefault();
    const to = target.value.trim();
    if (phone.transfer(to)) toast(`Transferring the caller to ${to}`);
    else toast(/^[A-Za-z0-9_]{1,32}$/.test(to) ? 'Nothing to transfer right now' : 'Enter an extension (1002) or a queue (loans)');
  });
  const controls = el('div', { class: 'phone-buttons', role: 'group', 'aria-label': 'Call controls' },
    compact ? null : answer, compact ? null : hangup, mute, hold, keypadToggle);
  const callBox = el('div', { class: 'phone-call', testid: 'phone-call', hidden: true },
    el('div', { class: 'phone-line' }, status, caller), controls, keypad, transfer);
  fill(section,
    el('div', { class: 'phone-head' },
      el('h2', { class: 'label', text: 'My phone' }), pill, reason),
    callBox);

  function render() {
    section.hidden = false;
    const label = STATES[phone.state] || phone.state;
    pill.textContent = label;
    pill.dataset.state = phone.state;
    pill.dataset.status = phone.state === 'registered' ? 'ready' : ['failed', 'unregistered'].includes(phone.state) ? 'not_ready' : 'offline';
    reason.textContent = phone.state === 'none' ? phone.reason : phone.state === 'registered' ? '' : phone.reason;
    const call = phone.call && phone.call.status !== 'ended' ? phone.call : null;
    callBox.hidden = !call;
    section.dataset.call = call ? call.status : '';
    section.dataset.reoffered = call && call.reoffered ? 'true' : 'false';
    if (!call) {
      keypad.hidden = true;
      keypadToggle.setAttribute('aria-expanded', 'false');
      return;
    }
    status.textContent = call.held ? 'On hold' : CALL_STATUS[call.status] || call.status;
    status.dataset.status = call.status;
    caller.textContent = who(call) || call.from || 'Unknown caller';
    answer.hidden = call.status !== 'ringing';
    hangup.textContent = call.status === 'ringing' ? 'Reject' : 'Hang up';
    const live = call.status === 'active';
    for (const button of [mute, hold, keypadToggle]) button.disabled = !live;
    transfer.hidden = !live;
    mute.setAttribute('aria-pressed', String(call.muted));
    mute.textContent = call.muted ? 'Unmute' : 'Mute';
    hold.setAttribute('aria-pressed', String(call.held));
    hold.textContent = call.held ? 'Resume' : 'Hold';
  }
  render();
  return render;
}

/**
 * Ready and registered as one state. `presence()` is the page's current presence; `setStatus(status, reason)`
 * sets it (resolves true on success). Returns `beforeReady()`: await it before going ready (false: stay as you
 * are, the phone could not register and the agent was made not ready, with the reason).
 */
export function phonePresence(phone, { presence, setStatus }) {
  let last = phone.state;
  async function notReady() {
    const now = presence();
    if (now.status === 'not_ready' && now.reason === PHONE_REASON) return;
    if (now.status === 'ready' || now.status === 'wrap_up') {
      await setStatus('not_ready', PHONE_REASON);
      toast(`Not ready: your phone is not registered (${phone.reason || 'no connection'})`);
    }
  }
  function changed() {
    if (phone.state === last) return;
    last = phone.state;
    if (!phone.enabled) return;
    if (phone.state === 'unregistered' || phone.state === 'failed') {
      notReady();
    } else if (phone.state === 'registered') {
      const now = presence();
      if (now.status === 'not_ready' && now.reason === PHONE_REASON) {
        setStatus('ready', '').then((ok) => ok && toast('Phone registered again: ready'));
      }
    }
  }
  async function beforeReady() {
    if (!phone.enabled) return true;
    if (await phone.register()) return true;
    await setStatus('not_ready', PHONE_REASON);
    toast(`Not ready: your phone could not register (${phone.reason || 'no answer'})`);
    return false;
  }
  return { changed, beforeReady };
}

/** Stops the phone when the page goes away (the registration ends with the tab, not at its expiry). */
export function stopPhoneWithPage(phone) {
  window.addEventListener('pagehide', () => phone.stop());
  const signout = byTestId('signout');
  if (signout) signout.addEventListener('click', () => phone.stop(), { capture: true });
}
