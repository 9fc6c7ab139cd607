// Presence and calls on /agent and /field: the state pill, resync after a reconnect, a wrap-up kept across reloads.

import { api } from './backend.js';
import { $, el } from './dom.js';
import { dateTime, intentLabel, reasonLabel, stateLabel } from './format.js';
import { toast } from './notices.js';
import { popSummary } from './pop.js';

/** Presence messages carry only what changed (a status, or a call activity): merge them. */
export function mergePresence(current, message) {
  const next = { ...current };
  for (const key of ['status', 'reason', 'activity', 'call_id']) {
    if (message[key] !== undefined && message[key] !== null) next[key] = message[key];
  }
  if (message.status !== undefined && message.reason === undefined && message.status !== 'not_ready') next.reason = '';
  return next;
}

/** Shows a presence in a state pill: "On call", "Not ready — Lunch", ... */
export function showPresence(pill, presence) {
  const code = presence.activity || presence.status || 'offline';
  let text = stateLabel(code);
  if (!presence.activity && presence.status === 'not_ready' && presence.reason) {
    text += ` — ${reasonLabel(presence.reason)}`;
  }
  pill.dataset.status = code;
  pill.dataset.presence = presence.status || '';
  pill.textContent = text;
}

/** POST /api/agents/{id}/presence; resolves true on success (errors are shown by api()). */
export async function setPresence(agentId, status, reason = '') {
  try {
    await api(`/api/agents/${encodeURIComponent(agentId)}/presence`, { method: 'POST', body: { status, reason } });
    return true;
  } catch {
    return false;
  }
}

const CALL_KEY = 'ivr.call';

/** The call whose wrap-up is not saved yet, so a reload can bring its form back (the id only). */
export const openCall = {
  get: () => sessionStorage.getItem(CALL_KEY),
  set: (callId) => sessionStorage.setItem(CALL_KEY, callId),
  clear: () => sessionStorage.removeItem(CALL_KEY),
};

/** GET /api/calls/{id}/pop -> the pop, or null (404: not yours, or gone). */
export async function fetchPop(callId) {
  try {
    const data = await api(`/api/calls/${encodeURIComponent(callId)}/pop`, { quiet: true });
    return data && data.pop && data.pop.call_id ? data.pop : data;
  } catch {
    return null;
  }
}

/** Moves an unsaved after-call form out of the way (a new call came in), keeping what was typed. */
export function parkUnsaved(pop, form) {
  const box = $('#pending');
  const who = pop.known && pop.customer ? pop.customer.name : `Unknown caller ${pop.caller || ''}`.trim();
  const item = el('details', { class: 'pending-item card', testid: 'pending-item' },
    el('summary', {}, el('strong', { lang: 'ko', text: who }),
      el('span', { class: 'muted', text: ` · ${intentLabel(pop.ivr && pop.ivr.intent)} · ${dateTime(pop.offered_at)}` })),
    form);
  $('#pending-list').append(item);
  box.hidden = false;
  return () => {
    setTimeout(() => {
      item.remove();
      box.hidden = !$('#pending-list').children.length;
    }, 2500);
  };
}

const baseTitle = document.title;
/** Tab title while ringing (the tab may be in the background). */
export function ringTitle(pop) {
  document.title = pop ? `☎ ${popSummary(pop)} · ${baseTitle}` : baseTitle;
}

/**
 * On every (re)connect of /agent and /field: what may have been missed while the socket was down — the
 * presence, a call ringing or in progress, or a wrap-up left unsaved by a reload.
 * ``current()`` is the call on screen (or null); ``applyPresence`` and ``showCall`` are the page's own.
 */
export async function resyncCall({ current, applyPresence, showCall }) {
  let me;
  try {
    me = await api('/api/agents/me', { quiet: true });
  } catch {
    return;
  }
  applyPresence({ status: me.status, reason: me.reason || '', activity: me.activity || '', call_id: me.call_id || '' });
  const live = me.call_id && ['ringing', 'on_call'].includes(me.activity);
  const call = current();
  if (live && (!call || call.pop.call_id !== me.call_id)) {
    const pop = await fetchPop(me.call_id);
    if (pop) showCall(pop, me.activity);
  } else if (!live && !call && openCall.get()) {
    const pop = await fetchPop(openCall.get()); // reloaded before saving the wrap-up
    if (pop) showCall(pop, 'after');
    else openCall.clear();
  }
}

/**
 * What saving a disposition does on /agent and /field: the call on screen moves on (``done``); a call
 * parked meanwhile (a new one rang before the form was saved) comes back.
 */
export function dispositionSaved(call, { current, done, message }) {
  return () => {
    call.saved = true;
    if (current() === call) {
      openCall.clear();
      done();
    } else if (call.unpark) {
      call.unpark();
    }
    toast(message);
  };
}
