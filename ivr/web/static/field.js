// Field manager's phone page (/field): a big ready switch, accept/decline while ringing, the pop in one column, and
// case notes after the call. With a page phone (lib/phone.js) Accept answers the call right here and the phone
// panel has mute, hold, keypad and transfer; with a SIP phone the call itself is answered on that phone.

import { api, connectSocket } from './lib/backend.js';
import { boot } from './lib/boot.js';
import {
  dispositionSaved, mergePresence, openCall, parkUnsaved, resyncCall, ringTitle, setPresence, showPresence,
} from './lib/calls.js';
import { renderDisposition } from './lib/disposition.js';
import { $, byTestId, el, fill } from './lib/dom.js';
import { duration, intentLabel } from './lib/format.js';
import { toast } from './lib/notices.js';
import { startPage } from './lib/page.js';
import { createPhone } from './lib/phone.js';
import { phonePresence, renderPhonePanel, stopPhoneWithPage } from './lib/phonebar.js';
import { popSummary, renderPop } from './lib/pop.js';

const state = {
  session: null,
  presence: { status: 'offline', reason: '', activity: '', call_id: '' },
  call: null, // {pop, phase: ringing|accepted|on_call|after|done|missed, form, saved}
  phone: null, // the page phone (lib/phone.js): state 'none' when calls ring a SIP phone
  phonePanel: () => {},
  phoneReady: null, // {changed, beforeReady}: ready and registered as one state
};

boot(() => startPage({ roles: ['field', 'agent'], onReady }));

function onReady(session) {
  state.session = session;
  startPhone();
  const toggle = byTestId('field-switch');
  toggle.addEventListener('click', async () => {
    const status = toggle.getAttribute('aria-checked') === 'true' ? 'not_ready' : 'ready';
    const reason = status === 'not_ready' ? byTestId('presence-reason').value : '';
    toggle.disabled = true;
    if (status === 'ready' && !(await state.phoneReady.beforeReady())) {
      toggle.disabled = false;
      return;
    }
    if (await setPresence(session.agent_id, status, reason)) applyPresence({ status, reason });
    toggle.disabled = false;
  });
  byTestId('presence-reason').addEventListener('change', async (event) => {
    if (state.presence.status !== 'not_ready') return;
    const reason = event.target.value;
    if (await setPresence(session.agent_id, 'not_ready', reason)) applyPresence({ status: 'not_ready', reason });
  });
  byTestId('field-accept').addEventListener('click', () => {
    if (ringingHere()) state.phone.answer();
    setPhase('accepted');
  });
  byTestId('field-decline').addEventListener('click', decline);
  byTestId('field-finish').addEventListener('click', () => {
    if (state.phone.enabled) state.phone.hangup();
    setPhase('after');
  });
  byTestId('pop-dismiss').addEventListener('click', dismiss);
  connectSocket({ onMessage, onOpen: resync });
}

function startPhone() {
  state.phone = createPhone(() => {
    state.phonePanel();
    state.phoneReady.changed();
    const call = state.call;
    const line = state.phone.call;
    if (!call || !line || (line.callId && line.callId !== call.pop.call_id)) return;
    if (call.phase === 'accepted' && line.status === 'active') setPhase('on_call');
    else if (call.phase === 'accepted' && line.status === 'ringing') state.phone.answer(); // accepted before it rang
    else if (call.phase === 'ringing') setPhase('ringing'); // "ringing here" once the page phone rings
  });
  state.phoneReady = phonePresence(state.phone, {
    presence: () => state.presence,
    setStatus: async (status, reason) => {
      if (!(await setPresence(state.session.agent_id, status, reason))) return false;
      applyPresence({ status, reason });
      return true;
    },
  });
  state.phonePanel = renderPhonePanel(byTestId('phone'), state.phone, {
    compact: true,
    who: (line) => {
      const pop = state.call && line.callId === state.call.pop.call_id ? state.call.pop : null;
      return pop ? (pop.known && pop.customer ? pop.customer.name : pop.caller || '') : '';
    },
  });
  stopPhoneWithPage(state.phone);
  state.phone.start();
}

/** The page phone rings with the call on screen (or with a call that carries no id). */
function ringingHere() {
  const line = state.phone && state.phone.call;
  return Boolean(line && line.status === 'ringing' && (!line.callId || !state.call || line.callId === state.call.pop.call_id));
}

function applyPresence(message) {
  const before = state.presence;
  const now = mergePresence(before, message);
  state.presence = now;
  showPresence(byTestId('presence-state'), now);
  const toggle = byTestId('field-switch');
  const ready = now.status === 'ready';
  toggle.setAttribute('aria-checked', String(ready));
  toggle.querySelector('.switch-text').textContent = ready ? 'Ready' : 'Not ready';
  if (now.status === 'not_ready') byTestId('presence-reason').value = now.reason || '';
  const call = state.call;
  if (!call) return;
  if (['ringing', 'accepted'].includes(call.phase) && now.activity === 'on_call') setPhase('on_call');
  else if (['ringing', 'accepted'].includes(call.phase) && before.activity === 'ringing' && !now.activity) {
    setPhase('missed');
  }
}

function onMessage(message) {
  if (message.type === 'pop' && message.pop) {
    showCall(message.pop, 'ringing');
  } else if (message.type === 'presence' && message.agent === state.session.agent_id) {
    applyPresence(message);
  } else if (message.type === 'call' && state.call && message.call_id === state.call.pop.call_id) {
    const { phase } = state.call;
    if (message.event === 'call.answered' && ['ringing', 'accepted'].includes(phase)) setPhase('on_call');
    if (message.event === 'call.ended') {
      if (phase === 'on_call') setPhase('after');
      else if (['ringing', 'accepted'].includes(phase)) setPhase('missed');
    }
  }
}

function resync() {
  return resyncCall({ current: () => state.call, applyPresence, showCall });
}

function showCall(pop, phase) {
  const previous = state.call;
  if (previous && previous.pop.call_id === pop.call_id) return;
  if (previous && previous.form && !previous.saved) previous.unpark = parkUnsaved(previous.pop, previous.form);
  fill($('#notes-slot'));
  state.call = { pop, phase: null, form: null, saved: false };
  openCall.set(pop.call_id);
  fill($('#pop-live'), renderPop(pop, { me: state.session.agent_id }));
  const who = pop.known && pop.customer ? pop.customer.name : 'Unknown caller';
  fill($('#ring-who'), el('span', { lang: 'ko', text: who }),
    pop.customer && pop.customer.vip ? el('span', { class: 'badge badge-vip' },
      el('span', { 'aria-hidden': 'true', text: '★ ' }), 'VIP') : null);
  $('#ring-what').textContent = [intentLabel(pop.ivr && pop.ivr.intent),
    pop.waited_s !== null && pop.waited_s !== undefined ? `waited ${duration(pop.waited_s)}` : null,
    pop.known ? null : pop.caller].filter(Boolean).join(' · ');
  if (phase === 'ringing' && navigator.vibrate && navigator.userActivation && navigator.userActivation.hasBeenActive) {
    navigator.vibrate([250, 120, 250]); // browsers refuse it before the first tap
  }
  setPhase(phase);
  window.scrollTo({ top: 0 });
}

const HINTS = {
  ringing: 'Your softphone is ringing.',
  ringing_here: 'Ringing here: tap Accept to answer.',
  accepted: 'Accepted — answer on your softphone now.',
  accepted_here: 'Connecting…',
  on_call: 'On call.',
  after: 'Call ended. Add your case notes below.',
  done: 'Case notes saved.',
  missed: 'Missed — the caller hung up or the ring timed out.',
};
const TITLES = {
  ringing: 'Incoming call', accepted: 'Incoming call', on_call: 'On call', after: 'Call ended', done: 'Call ended',
  missed: 'Missed call',
};

function setPhase(phase) {
  const call = state.call;
  call.phase = phase;
  const ring = byTestId('field-ringing');
  ring.hidden = false;
  ring.dataset.phase = phase;
  $('#ring-title').textContent = TITLES[phase];
  const here = state.phone && state.phone.enabled && ['ringing', 'accepted'].includes(phase) && (phase === 'accepted' || ringingHere());
  $('#ring-hint').textContent = HINTS[here ? `${phase}_here` : phase];
  state.phonePanel();
  $('#ring-actions').hidden = phase !== 'ringing';
  $('#call-actions').hidden = !['accepted', 'on_call'].includes(phase);
  $('#done-actions').hidden = !['done', 'missed'].includes(phase);
  ringTitle(phase === 'ringing' ? call.pop : null);
  if (phase === 'missed') openCall.clear();
  if (phase === 'after' && !call.form) {
    const mine = call;
    call.form = renderDisposition(call.pop, {
      templates: null,
      notesLabel: 'Case notes',
      onSaved: dispositionSaved(mine, { current: () => state.call, done: () => setPhase('done'), message: 'Case notes saved' }),
    });
    $('#notes-slot').append(call.form); // right under the call card, near the top
  }
}

async function decline() {
  const call = state.call;
  if (!call) return;
  const button = byTestId('field-decline');
  button.disabled = true;
  try {
    await api(`/api/calls/${encodeURIComponent(call.pop.call_id)}/decline`, { method: 'POST' });
    toast(`Declined: ${popSummary(call.pop).replace('Incoming call: ', '')} goes to the next person`);
    openCall.clear();
    dismiss();
  } catch {
    // the error banner says why; the buttons stay
  } finally {
    button.disabled = false;
  }
}

function dismiss() {
  state.call = null;
  ringTitle(null);
  byTestId('field-ringing').hidden = true;
  fill($('#notes-slot'));
  fill($('#pop-live'),
    el('div', { class: 'empty-state', testid: 'pop-empty' },
      el('div', { class: 'empty-icon', 'aria-hidden': 'true', text: '☎' }),
      el('h2', { text: 'No call right now' }),
      el('p', { text: 'Calls for you ring your softphone; the caller’s details show here at the same time.' })));
  $('#main').focus();
}
