// Agent desktop (/agent): presence, the page phone (lib/phone.js), the screen pop at ring time, and the after-call
// disposition.

import { api, connectSocket } from './lib/backend.js';
import { boot } from './lib/boot.js';
import {
  dispositionSaved, mergePresence, openCall, parkUnsaved, resyncCall, ringTitle, setPresence, showPresence,
} from './lib/calls.js';
import { renderDisposition } from './lib/disposition.js';
import { $, byTestId, el, fill } from './lib/dom.js';
import { toast } from './lib/notices.js';
import { startPage } from './lib/page.js';
import { createPhone } from './lib/phone.js';
import { phonePresence, renderPhonePanel, stopPhoneWithPage } from './lib/phonebar.js';
import { renderPop } from './lib/pop.js';

const PHASES = {
  ringing: 'Ringing — answer on your phone',
  ringing_here: 'Ringing — answer here',
  on_call: 'On call',
  after: 'Call ended — wrap up',
  done: 'Wrap-up saved',
  missed: 'Missed — the caller hung up or the ring timed out',
};

const state = {
  session: null,
  presence: { status: 'offline', reason: '', activity: '', call_id: '' },
  templates: null,
  call: null, // {pop, phase, form, saved}
  phone: null, // the page phone (lib/phone.js): state 'none' when calls ring a SIP phone
  phonePanel: () => {},
  phoneReady: null, // {changed, beforeReady}: ready and registered as one state
};

boot(() => startPage({ roles: ['agent', 'field'], onReady }));

function onReady(session) {
  state.session = session;
  startPhone();
  wirePresence();
  api('/api/ticket-templates', { quiet: true })
    .then((templates) => { state.templates = templates; })
    .catch(() => { state.templates = null; });
  connectSocket({ onMessage, onOpen: resync });
}

// ---------------------------------------------------------------------------------------------
// Presence

function startPhone() {
  state.phone = createPhone(() => {
    state.phonePanel();
    state.phoneReady.changed();
    const call = state.call;
    if (call && call.phase === 'ringing') setPhase('ringing'); // "answer here" once the page phone rings
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
    who: (call) => (state.call && call.callId && state.call.pop.call_id === call.callId ? callerName(state.call.pop) : ''),
  });
  stopPhoneWithPage(state.phone);
  state.phone.start();
}

function callerName(pop) {
  return pop.known && pop.customer ? pop.customer.name : pop.caller || '';
}

function wirePresence() {
  const reason = byTestId('presence-reason');
  const choose = async (status) => {
    const why = status === 'not_ready' ? reason.value : '';
    if (status === 'ready' && !(await state.phoneReady.beforeReady())) return;
    if (await setPresence(state.session.agent_id, status, why)) {
      applyPresence({ status, reason: why });
      toast(`Status: ${byTestId('presence-state').textContent}`);
    }
  };
  byTestId('presence-ready').addEventListener('click', () => choose('ready'));
  byTestId('presence-not-ready').addEventListener('click', () => choose('not_ready'));
  byTestId('presence-wrap-up').addEventListener('click', () => choose('wrap_up'));
  byTestId('presence-offline').addEventListener('click', () => choose('offline'));
  reason.addEventListener('change', () => {
    if (state.presence.status === 'not_ready') choose('not_ready'); // a new reason while not ready
  });
}

function applyPresence(message) {
  const before = state.presence;
  state.presence = mergePresence(before, message);
  const now = state.presence;
  showPresence(byTestId('presence-state'), now);
  for (const button of document.querySelectorAll('.presence-controls [data-state]')) {
    button.setAttribute('aria-pressed', String(button.dataset.state === now.status));
  }
  if (now.status === 'not_ready' && now.reason && [...byTestId('presence-reason').options].some((o) => o.value === now.reason)) {
    byTestId('presence-reason').value = now.reason;
  }
  const call = state.call;
  if (!call) return;
  if (call.phase === 'ringing' && now.activity === 'on_call') setPhase('on_call');
  else if (call.phase === 'ringing' && before.activity === 'ringing' && !now.activity) setPhase('missed');
}

// ---------------------------------------------------------------------------------------------
// Live messages

function onMessage(message) {
  if (message.type === 'pop' && message.pop) {
    showCall(message.pop, 'ringing');
  } else if (message.type === 'presence' && message.agent === state.session.agent_id) {
    applyPresence(message);
  } else if (message.type === 'call' && state.call && message.call_id === state.call.pop.call_id) {
    if (message.event === 'call.answered' && state.call.phase === 'ringing') setPhase('on_call');
    if (message.event === 'call.ended') {
      if (state.call.phase === 'on_call') setPhase('after');
      else if (state.call.phase === 'ringing') setPhase('missed');
    }
  }
}

function resync() {
  return resyncCall({ current: () => state.call, applyPresence, showCall });
}

// ---------------------------------------------------------------------------------------------
// The call on screen

function showCall(pop, phase) {
  const previous = state.call;
  if (previous && previous.pop.call_id === pop.call_id) return;
  if (previous && previous.form && !previous.saved) {
    previous.unpark = parkUnsaved(previous.pop, previous.form);
  }
  state.call = { pop, phase: null, form: null, saved: false };
  openCall.set(pop.call_id);
  const bar = el('div', { class: 'callbar', testid: 'call-bar' });
  const slot = el('div', { class: 'form-slot' });
  fill($('#pop-live'), bar, slot, renderPop(pop, { me: state.session.agent_id }));
  state.call.bar = bar;
  state.call.slot = slot;
  setPhase(phase);
}

function setPhase(phase) {
  const call = state.call;
  call.phase = phase;
  ringTitle(phase === 'ringing' ? call.pop : null);
  const live = phase === 'ringing' || phase === 'on_call';
  const here = phase === 'ringing' && state.phone && state.phone.call && state.phone.call.status === 'ringing';
  state.phonePanel();
  fill(call.bar,
    el('span', { class: `phase phase-${phase}`, testid: 'call-phase', data: { phase },
      text: PHASES[here ? 'ringing_here' : phase] }),
    el('span', { class: 'muted callbar-id' }, 'Call ', el('span', { class: 'mono', text: call.pop.call_id })),
    el('span', { class: 'spacer' }),
    live ? el('button', {
      type: 'button', class: 'btn btn-primary', testid: 'finish-call', onclick: () => setPhase('after'),
    }, 'Finish call') : null,
    phase === 'done' || phase === 'missed' ? el('button', {
      type: 'button', class: 'btn btn-ghost-dark', testid: 'pop-dismiss', onclick: dismiss,
    }, 'Clear screen') : null,
    phase === 'missed' ? el('button', {
      type: 'button', class: 'btn btn-ghost-dark', testid: 'missed-wrapup', onclick: () => setPhase('after'),
    }, 'Write a note anyway') : null);
  if (phase === 'missed') openCall.clear();
  if (phase === 'after' && !call.form) {
    openCall.set(call.pop.call_id);
    const mine = call;
    call.form = renderDisposition(call.pop, {
      templates: state.templates,
      onSaved: dispositionSaved(mine, { current: () => state.call, done: () => setPhase('done'), message: 'Disposition saved' }),
    });
    call.slot.append(call.form);
    const first = call.form.querySelector('input[type=radio]');
    if (first && !document.activeElement?.closest('form')) first.focus();
  }
}

function dismiss() {
  state.call = null;
  ringTitle(null);
  fill($('#pop-live'),
    el('div', { class: 'empty-state', testid: 'pop-empty' },
      el('div', { class: 'empty-icon', 'aria-hidden': 'true', text: '☎' }),
      el('h2', { text: 'No call right now' }),
      el('p', { text: 'When a call is offered to you, the caller’s details pop up here while it rings.' })));
  $('#main').focus();
}
