// Shared by the three pages: sign-in, the API wrapper, the live socket, and render helpers.
//
// Rules kept everywhere: data is rendered with textContent / Text nodes only (pop content comes from
// callers' speech); the session token lives only in sessionStorage; the WebSocket URL is built from
// location. `#demo` in the URL swaps the API and the socket for built-in samples (demo.js): no server needed.

const SESSION_KEY = 'ivr.session';
const FLASH_KEY = 'ivr.flash';

/** `#demo`, `#demo=unknown`, ... -> "", "unknown", ...; null when not in demo mode. */
export function demoVariant() {
  const match = location.hash.match(/^#demo(?:=([\w-]+))?$/);
  return match ? (match[1] || '') : null;
}
export const DEMO = demoVariant() !== null;

let demo = null; // the demo module, loaded only in demo mode

// ---------------------------------------------------------------------------------------------
// DOM helpers (no innerHTML: strings always become Text nodes)

/**
 * el('p', {class: 'x', testid: 'pop-intent', text: 'Loan'}, child, 'text', [more]) -> HTMLElement.
 * Attribute names are always literals in this code base; values go through setAttribute.
 */
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'testid') node.dataset.testid = value;
    else if (key === 'class') node.className = value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'data') Object.assign(node.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  appendChildren(node, children);
  return node;
}

function appendChildren(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace a node's children (strings become Text nodes). */
export function fill(node, ...children) {
  node.replaceChildren();
  appendChildren(node, children);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const byTestId = (id, root = document) => root.querySelector(`[data-testid="${CSS.escape(id)}"]`);

// ---------------------------------------------------------------------------------------------
// Formatting

const LANGUAGES = { ko: 'Korean · 한국어', en: 'English', zh: 'Chinese · 中文', ja: 'Japanese · 日本語', vi: 'Vietnamese' };
const DIALECTS = {
  gyeongsang: 'Gyeongsang · 경상', jeolla: 'Jeolla · 전라', chungcheong: 'Chungcheong · 충청',
  gangwon: 'Gangwon · 강원', jeju: 'Jeju · 제주', seoul: 'Seoul · 서울',
};
const INTENTS = {
  lost_card: 'Lost card', loan: 'Loan', complaint: 'Complaint', balance: 'Balance', transfer: 'Transfer',
  password: 'Password / PIN', agent: 'Asked for a person', finish: 'Finished',
};
export const REASONS = [
  ['lunch', 'Lunch'], ['training', 'Training'], ['meeting', 'Meeting'], ['personal', 'Personal'],
];
const STATES = {
  ready: 'Ready', not_ready: 'Not ready', wrap_up: 'Wrap-up', offline: 'Offline', ringing: 'Ringing',
  on_call: 'On call',
};

export const languageLabel = (code) => (code ? LANGUAGES[code] || code : '');
export const dialectLabel = (code) => (code ? DIALECTS[code] || code : '');
export const intentLabel = (code) => (code ? INTENTS[code] || code.replaceAll('_', ' ') : 'Not understood');
export const stateLabel = (code) => STATES[code] || (code ? code.replaceAll('_', ' ') : 'Unknown');
export const reasonLabel = (code) => (REASONS.find(([value]) => value === code) || [code, code])[1];

/** 75 -> "1 min 15 s" (short: "1m 15s"); null -> "—". */
export function duration(seconds, { short = false } = {}) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  const total = Math.max(0, Math.round(Number(seconds)));
  const [s, m, h] = short ? ['s', 'm', 'h'] : [' s', ' min', ' h'];
  if (total < 60) return `${total}${s}`;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours}${h} ${minutes}${m}`;
  return secs ? `${minutes}${m} ${secs}${s}` : `${minutes}${m}`;
}

/** Unix seconds -> "2025-11-20 14:03" (local time). */
export function dateTime(unix) {
  if (!unix) return '—';
  const d = new Date(Number(unix) * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Unix seconds -> "3 d ago". */
export function ago(unix, now = Date.now() / 1000) {
  if (!unix) return '';
  const s = Math.max(0, now - Number(unix));
  if (s < 90) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A service level as given (0..1 or 0..100) -> a whole percentage, or null. */
export function percent(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return null;
  const n = Number(value);
  return Math.round(n <= 1 ? n * 100 : n);
}

/** A decorative bar (the number is always written next to it). */
export function bar(fraction, kind = '') {
  const fillNode = el('span', { class: 'bar-fill' });
  fillNode.style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`; // CSSOM: allowed by the CSP
  return el('span', { class: `bar ${kind}`.trim(), 'aria-hidden': 'true' }, fillNode);
}

// ---------------------------------------------------------------------------------------------
// Notices

export function showError(message) {
  const banner = byTestId('error-banner');
  if (!banner) return;
  fill(banner, el('span', { text: message }),
    el('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', onclick: hideError }, '×'));
  banner.hidden = false;
}

export function hideError() {
  const banner = byTestId('error-banner');
  if (banner) banner.hidden = true;
}

/** A short confirmation that fades (also read by screen readers: the region is aria-live). */
export function toast(message) {
  const region = byTestId('toast');
  if (!region) return;
  const item = el('div', { class: 'toast', text: message });
  region.append(item);
  setTimeout(() => item.remove(), 4000);
}

// ---------------------------------------------------------------------------------------------
// Session

export function getSession() {
  let session = null;
  try {
    session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
  } catch {
    session = null;
  }
  if (!session || typeof session.token !== 'string') return null;
  const expires = expiryMs(session.expires_at);
  if (expires && expires < Date.now()) {
    clearSession();
    return null;
  }
  return session;
}

function expiryMs(value) {
  if (value === null || value === undefined || value === '') return 0;
  if (typeof value === 'number') return value > 1e12 ? value : value * 1000;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? 0 : parsed;
}

function setSession(session) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  sessionStorage.removeItem(SESSION_KEY);
}

/** The session is gone (401, or the socket was refused): back to the sign-in form, with a reason. */
export function sessionExpired(message = 'Your session has ended. Please sign in again.') {
  clearSession();
  sessionStorage.setItem(FLASH_KEY, message);
  location.reload(); // also wipes every customer detail from the page
}

// ---------------------------------------------------------------------------------------------
// API

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** FastAPI's {"detail": "..."} or {"detail": [{"loc", "msg"}]} -> one readable line. */
export function detailMessage(data) {
  const detail = data && data.detail;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) {
    return detail.map((item) => {
      if (!item || typeof item !== 'object') return String(item);
      const where = (item.loc || []).filter((part) => part !== 'body').join('.');
      return where ? `${where}: ${item.msg}` : String(item.msg);
    }).join('; ');
  }
  return '';
}

/**
 * fetch() with the bearer token and JSON. Errors show the server's {"detail"} in the error banner
 * (unless quiet) and throw ApiError. 204 -> null.
 */
export async function api(path, { method = 'GET', body, quiet = false } = {}) {
  if (DEMO) return demo.api(path, method, body);
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const session = getSession();
  if (session) headers.Authorization = `Bearer ${session.token}`;
  let response;
  try {
    response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin', cache: 'no-store',
    });
  } catch {
    const error = new ApiError(0, 'The server cannot be reached. Check the network and try again.');
    if (!quiet) showError(error.message);
    throw error;
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message = detailMessage(data) || `${response.status} ${response.statusText || 'error'}`.trim();
    if (response.status === 401 && path !== '/api/login') sessionExpired(message);
    const error = new ApiError(response.status, message);
    error.data = data; // the whole error body: e.g. a 422's "problems", a 409's "live"
    if (!quiet) showError(message);
    throw error;
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// Live socket

/**
 * Connects to /ws?token=..., pings every 20 s, reconnects with backoff. 4401 -> sign in again;
 * 4403 (origin refused) -> an error, no retry. onOpen runs on every (re)connect: fetch the state
 * you may have missed there.
 */
export function connectSocket({ onMessage, onOpen = () => {}, onStatus = setLiveStatus }) {
  if (DEMO) return demo.socket({ onMessage, onOpen, onStatus });
  const PING_MS = 20000;
  let socket = null;
  let pingTimer = 0;
  let retryTimer = 0;
  let attempt = 0;
  let lastHeard = 0;
  let stopped = false;
  let complained = false; // the error banner shows our "cannot connect"

  function url() {
    const session = getSession();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws?token=${encodeURIComponent(session ? session.token : '')}`;
  }

  function open() {
    clearTimeout(retryTimer);
    if (stopped) return;
    if (!getSession()) {
      sessionExpired();
      return;
    }
    onStatus('connecting');
    let opened = false;
    socket = new WebSocket(url());
    socket.addEventListener('open', () => {
      opened = true;
      attempt = 0;
      lastHeard = Date.now();
      onStatus('live');
      if (complained) hideError();
      complained = false;
      pingTimer = setInterval(() => {
        if (Date.now() - lastHeard > PING_MS * 2.5) {
          socket.close(4000, 'no pong'); // a half-open connection: start again
          return;
        }
        send({ type: 'ping' });
      }, PING_MS);
      onOpen();
    });
    socket.addEventListener('message', (event) => {
      lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || typeof message !== 'object' || message.type === 'pong') return;
      onMessage(message);
    });
    socket.addEventListener('close', (event) => {
      clearInterval(pingTimer);
      if (stopped) return;
      if (event.code === 4401) {
        onStatus('offline');
        sessionExpired('Your session has ended. Please sign in again.');
        return;
      }
      if (event.code === 4403) {
        onStatus('offline');
        showError('Live updates refused: this page\'s address is not an allowed origin on the server (web_origins).');
        return;
      }
      onStatus('reconnecting');
      if (!opened) {
        // A refused handshake reaches the browser as 1006 whatever the server meant: is the session still good?
        // (api() sends a 401 back to the sign-in form.)
        api('/api/me', { quiet: true }).catch(() => {});
        if (attempt >= 3) {
          showError('Live updates are unavailable: cannot connect to the server. Still trying…');
          complained = true;
        }
      }
      const delay = Math.min(30000, 1000 * 2 ** attempt) * (0.75 + Math.random() * 0.5);
      attempt += 1;
      retryTimer = setTimeout(open, delay);
    });
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  const reconnectNow = () => {
    if (!stopped && (!socket || socket.readyState === WebSocket.CLOSED)) {
      attempt = 0;
      open();
    }
  };
  window.addEventListener('online', reconnectNow);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') reconnectNow();
  });

  open();
  return {
    send,
    close() {
      stopped = true;
      clearTimeout(retryTimer);
      clearInterval(pingTimer);
      if (socket) socket.close(1000, 'bye');
    },
  };
}

/** The "Live / Reconnecting" pill in the top bar. */
export function setLiveStatus(status) {
  const pill = byTestId('ws-status');
  if (!pill) return;
  const labels = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', offline: 'Offline' };
  pill.dataset.status = status;
  pill.textContent = labels[status] || status;
  document.body.classList.toggle('is-stale', status !== 'live');
}

// ---------------------------------------------------------------------------------------------
// Page start: sign-in form, then the page

/**
 * Shows the sign-in form until there is a valid session for one of `roles`, then calls
 * onReady(session). Wires the sign-out button.
 */
export async function startPage({ roles, onReady }) {
  const login = byTestId('login');
  const app = $('#app');
  if (DEMO) {
    demo = await import('./demo.js');
    const session = demo.session(document.body.dataset.page);
    showSignedIn(session);
    document.body.classList.add('is-demo');
    onReady(session);
    return;
  }

  const flash = sessionStorage.getItem(FLASH_KEY);
  if (flash) {
    sessionStorage.removeItem(FLASH_KEY);
    showLoginError(flash);
  }

  byTestId('signout').addEventListener('click', async () => {
    try {
      await api('/api/logout', { method: 'POST', quiet: true });
    } catch {
      // signing out locally is what matters
    }
    clearSession();
    location.reload();
  });

  byTestId('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const submit = byTestId('login-submit');
    const username = byTestId('login-username').value.trim();
    const password = byTestId('login-password').value;
    if (!username || !password) {
      showLoginError('Enter your username and password.');
      return;
    }
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const session = await api('/api/login', { method: 'POST', body: { username, password }, quiet: true });
      if (!roles.includes(session.role)) {
        await fetch('/api/logout', { method: 'POST', headers: { Authorization: `Bearer ${session.token}` } })
          .catch(() => {});
        showLoginError(`This page is for ${roles.join(' / ')} accounts; "${username}" is ${session.role}.`);
        return;
      }
      setSession(session);
      byTestId('login-password').value = '';
      enter(session);
    } catch (error) {
      showLoginError(error.status === 401 ? (error.message || 'Wrong username or password.') : error.message);
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  const session = getSession();
  if (session && roles.includes(session.role)) {
    try {
      const me = await api('/api/me', { quiet: true }); // a 401 here reloads to this form, with a message
      enter({ ...session, ...me });
      return;
    } catch (error) {
      if (error.status !== 401) showLoginError(error.message);
    }
  } else if (session) {
    // this tab is signed in for another page: sign in here replaces it
    showLoginError(`Signed in as ${session.name || session.username} (${session.role}); this page is for ${roles.join(' / ')}.`);
  }
  login.hidden = false;
  app.hidden = true;
  byTestId('login-username').focus();

  function enter(signedIn) {
    showSignedIn(signedIn);
    onReady(signedIn);
  }
}

function showSignedIn(session) {
  byTestId('login').hidden = true;
  $('#app').hidden = false;
  const who = byTestId('user-name');
  fill(who, session.name || session.username || '',
    session.agent_id ? el('span', { class: 'muted', text: ` · ${session.agent_id}` }) : null);
  byTestId('signout').hidden = false;
  byTestId('ws-status').hidden = false;
}

function showLoginError(message) {
  const box = byTestId('login-error');
  box.textContent = message;
  box.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// The screen pop (agent desktop and field page)

/** Human summary for the aria-live announcement and the tab title. */
export function popSummary(pop) {
  const who = pop.known && pop.customer ? pop.customer.name : 'Unknown caller';
  const vip = pop.customer && pop.customer.vip ? ', VIP' : '';
  return `Incoming call: ${who}${vip}, ${intentLabel(pop.ivr && pop.ivr.intent)}`;
}

/** The pop as a DOM tree. options.me: the signed-in agent id (marks cases they own). */
export function renderPop(pop, { me = '' } = {}) {
  const customer = pop.known ? pop.customer : null;
  const ivr = pop.ivr || {};
  const waited = pop.waited_s;
  const patience = customer ? customer.patience_s : null;
  const overPatience = waited !== null && waited !== undefined && patience && waited >= patience;

  const identity = customer
    ? el('div', { class: 'identity' },
      el('h2', { class: 'customer-name', testid: 'pop-customer-name', lang: 'ko', text: customer.name || customer.id }),
      el('div', { class: 'badges' },
        customer.vip
          ? el('span', { class: 'badge badge-vip', testid: 'pop-vip', title: 'VIP customer' },
            el('span', { 'aria-hidden': 'true', text: '★ ' }), 'VIP')
          : null,
        customer.tier && !customer.vip
          ? el('span', { class: 'badge badge-tier', testid: 'pop-tier', text: customer.tier }) : null,
        el('span', { class: 'badge badge-plain', text: customer.id })))
    : el('div', { class: 'identity' },
      el('h2', { class: 'customer-name unknown', testid: 'pop-unknown' },
        el('span', { 'aria-hidden': 'true', text: '? ' }), 'Unknown caller'),
      el('p', { class: 'hint', text: 'Not in customer records. Verify identity before discussing any account.' }));

  const languageCode = (customer && customer.language) || pop.language;
  const dialectCode = pop.dialect || (customer && customer.dialect);
  const language = el('span', { testid: 'pop-language', data: { language: languageCode || '', dialect: dialectCode || '' } },
    languageLabel(languageCode) || '—',
    dialectCode ? el('span', { class: 'sub', text: `${dialectLabel(dialectCode)} dialect` }) : null);

  const facts = el('dl', { class: 'facts' },
    fact('Caller', el('span', { class: 'mono', testid: 'pop-caller', text: pop.caller || 'withheld' })),
    fact('Wants', el('span', {
      class: 'chip chip-intent', testid: 'pop-intent', data: { intent: ivr.intent || '' },
      text: intentLabel(ivr.intent),
    })),
    fact('Waited', el('span', {
      class: overPatience ? 'warn' : '', testid: 'pop-waited', data: { seconds: waited ?? '' },
      text: duration(waited),
    }, overPatience ? el('span', { class: 'tag-warn', text: ' past patience' }) : null)),
    fact('Language', language),
    customer ? fact('Patience', el('span', {
      testid: 'pop-patience', text: patience ? `hangs up after ~${duration(patience)}` : 'not known yet',
    })) : null,
    customer ? fact('Accounts', el('ul', { class: 'plain mono', testid: 'pop-accounts' },
      (customer.accounts || []).length
        ? customer.accounts.map((account) => el('li', { text: account }))
        : el('li', { class: 'muted', text: 'none' }))) : null,
    ivr.queue ? fact('Queue', el('span', { text: ivr.queue })) : null);

  const routing = pop.routing && (pop.routing.rule || (pop.routing.why || []).length)
    ? el('details', { class: 'routing', testid: 'pop-routing' },
      el('summary', {}, 'Why this call came to you: ', el('strong', { text: pop.routing.rule || 'routing' })),
      el('ul', {}, (pop.routing.why || []).map((reason) => el('li', { text: reason }))))
    : null;

  const header = el('header', { class: 'pop-header' }, identity, routing);

  const turns = ivr.turns || [];
  const ivrSection = section('What the IVR heard', 'pop-ivr',
    el('ol', { class: 'path', testid: 'pop-path', 'aria-label': 'IVR path' },
      (ivr.path || []).map((node) => el('li', { text: node.replaceAll('_', ' ') }))),
    turns.length
      ? el('ol', { class: 'turns' }, turns.map((turn) => renderTurn(turn, pop.language)))
      : el('p', { class: 'muted', text: 'The caller said nothing the IVR recorded.' }));

  const cases = (customer && customer.cases) || [];
  const casesSection = customer ? section(`Open cases (${cases.length})`, 'pop-cases-section',
    el('ul', { class: 'cases', testid: 'pop-cases' },
      cases.length ? cases.map((item) => el('li', { class: 'case', testid: 'pop-case' },
        el('div', { class: 'case-head' },
          el('span', { class: 'mono', text: item.id }),
          el('span', { class: 'chip', text: item.skill || 'general' })),
        item.summary ? el('p', { text: item.summary }) : null,
        el('p', { class: 'muted' }, 'Owner: ',
          el('strong', { testid: 'pop-case-owner', text: item.owner || 'unassigned' }),
          me && item.owner === me ? el('span', { class: 'tag-you', text: ' (you)' }) : null)))
        : el('li', { class: 'muted', text: 'No open cases.' }))) : null;

  const history = [...(pop.history || [])].sort((a, b) => (b.at || 0) - (a.at || 0)); // newest first
  const historySection = section('Contact history', 'pop-history-section',
    el('ol', { class: 'timeline', testid: 'pop-history' },
      history.length ? history.map((contact) => el('li', { class: `contact outcome-${safeClass(contact.outcome)}`,
        testid: 'pop-history-item' },
      el('time', { datetime: contact.at ? new Date(contact.at * 1000).toISOString() : null },
        el('span', { text: dateTime(contact.at) }), el('span', { class: 'muted', text: ` ${ago(contact.at)}` })),
      el('div', {},
        el('strong', { text: intentLabel(contact.intent) }),
        el('span', { class: 'muted', text: ` · ${contact.channel || 'voice'}` })),
      el('div', { class: 'muted' },
        [contact.outcome ? contact.outcome.replaceAll('_', ' ') : null,
          contact.agent ? `agent ${contact.agent}` : null,
          contact.wait_s !== null && contact.wait_s !== undefined ? `waited ${duration(contact.wait_s)}` : null]
          .filter(Boolean).join(' · '))))
        : el('li', { class: 'muted', text: pop.known ? 'No earlier contacts.' : 'No history for an unknown number.' })));

  return el('article', {
    class: `pop ${customer && customer.vip ? 'is-vip' : ''} ${customer ? '' : 'is-unknown'}`.trim(),
    testid: 'pop', 'aria-labelledby': 'pop-title', data: { callId: pop.call_id || '' },
  },
  el('h2', { id: 'pop-title', class: 'sr-only', text: popSummary(pop) }),
  header,
  el('div', { class: 'pop-body' },
    el('div', { class: 'pop-col' }, section('Customer', 'pop-card', facts)),
    el('div', { class: 'pop-col' }, ivrSection),
    el('div', { class: 'pop-col' }, casesSection, historySection)));
}

function renderTurn(turn, language) {
  const confidence = Number(turn.confidence || 0);
  const level = confidence >= 0.8 ? 'high' : confidence >= 0.5 ? 'mid' : 'low';
  const said = turn.transcript
    ? el('q', { class: 'said', testid: 'pop-transcript-text', lang: language || null, text: turn.transcript })
    : el('span', { class: 'muted', testid: 'pop-transcript-text', text: turn.keys ? 'keys only' : '(no speech)' });
  return el('li', { class: `turn ${turn.transcript ? `turn-${level}` : 'turn-keys'}`, testid: 'pop-transcript' },
    el('div', { class: 'turn-node', text: (turn.node || '').replaceAll('_', ' ') }),
    said,
    el('div', { class: 'turn-meta' },
      turn.transcript ? el('span', { class: `confidence conf-${level}`, testid: 'pop-confidence', data: { confidence } },
        bar(confidence, `bar-${level}`),
        ` ${Math.round(confidence * 100)}% confidence${level === 'low' ? ' (low)' : ''}`) : null,
      turn.intent ? el('span', { class: 'muted', text: `→ ${intentLabel(turn.intent)}` }) : null,
      turn.keys ? el('span', { class: 'mono muted', text: `keys ${turn.keys}` }) : null));
}

function fact(label, value) {
  return el('div', { class: 'fact' }, el('dt', { text: label }), el('dd', {}, value));
}

function section(title, testid, ...children) {
  return el('section', { class: 'panel', testid }, el('h3', { text: title }), ...children);
}

function safeClass(text) {
  return String(text || 'none').replace(/[^a-z0-9_-]/gi, '');
}

// ---------------------------------------------------------------------------------------------
// After the call: disposition (+ ticket) form

export const DISPOSITIONS = [
  ['resolved', 'Resolved'], ['follow_up', 'Follow-up needed'], ['escalated', 'Escalated'], ['no_action', 'No action'],
];
const TICKET_INTENTS = ['lost_card', 'complaint', 'loan'];

/** The ticket template key for a pop's intent. */
export function templateFor(intent) {
  return TICKET_INTENTS.includes(intent) ? intent : 'general';
}

let formCount = 0;

/**
 * The disposition form for a call. templates: GET /api/ticket-templates (or null: no ticket part).
 * Calls onSaved({ticket_id}) after the POST succeeded.
 */
export function renderDisposition(pop, { templates = null, notesLabel = 'Notes', onSaved = () => {} } = {}) {
  formCount += 1;
  const uid = `d${formCount}`;
  const intent = pop.ivr ? pop.ivr.intent : null;
  const key = templateFor(intent);
  const template = templates ? templates[key] || templates.general : null;
  const needsTicket = Boolean(template) && TICKET_INTENTS.includes(intent);

  const options = el('fieldset', { class: 'choices' },
    el('legend', { text: 'Outcome' }),
    DISPOSITIONS.map(([value, label]) => el('label', { class: 'choice' },
      el('input', { type: 'radio', name: `${uid}-disposition`, value, required: true, testid: `disposition-${value}` }),
      el('span', { text: label }))));

  const notes = el('textarea', {
    id: `${uid}-notes`, name: 'notes', rows: 4, maxlength: 2000, testid: 'disposition-notes',
    placeholder: 'What was agreed, what happens next. Never type a full card number.',
  });
  const counter = el('span', { class: 'counter muted', 'aria-live': 'polite', text: '0 / 2000' });
  notes.addEventListener('input', () => { counter.textContent = `${notes.value.length} / 2000`; });

  let ticketBox = null;
  let ticketToggle = null;
  if (template) {
    const fields = (template.fields || []).map((field) => {
      const id = `${uid}-t-${field.name}`;
      const long = /desc|detail|summary|note|reason/i.test(field.name);
      const input = el(long ? 'textarea' : 'input', {
        id, name: field.name, type: long ? null : 'text', rows: long ? 3 : null, required: Boolean(field.required),
        testid: `ticket-field-${field.name}`, autocomplete: 'off', maxlength: 500,
        inputmode: /last4|amount|digits/i.test(field.name) ? 'numeric' : null,
        data: { label: field.label || field.name },
      });
      return el('div', { class: 'field' },
        el('label', { for: id }, field.label || field.name,
          field.required ? el('span', { class: 'req', text: ' *' }) : el('span', { class: 'muted', text: ' (optional)' })),
        input);
    });
    ticketBox = el('fieldset', {
      class: 'ticket', testid: 'ticket-form', data: { template: template === templates[key] ? key : 'general' },
    }, el('legend', { text: `Ticket: ${template.title || key}` }), fields);
    if (!needsTicket) {
      ticketBox.hidden = true;
      ticketToggle = el('input', { type: 'checkbox', id: `${uid}-ticket`, testid: 'ticket-toggle' });
      ticketToggle.addEventListener('change', () => {
        ticketBox.hidden = !ticketToggle.checked;
        ticketBox.disabled = !ticketToggle.checked;
      });
      ticketBox.disabled = true;
    }
  }

  const error = el('p', { class: 'form-error', role: 'alert', testid: 'disposition-error', hidden: true });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary btn-lg', testid: 'disposition-submit' },
    'Save disposition');
  const done = el('div', { class: 'confirmation', testid: 'disposition-confirmation', hidden: true, tabindex: -1 });

  const form = el('form', { class: 'disposition card', testid: 'disposition-form', novalidate: true },
    el('h2', { text: 'After the call' }),
    options,
    el('div', { class: 'field' }, el('label', { for: notes.id, text: notesLabel }), notes, counter),
    ticketToggle ? el('label', { class: 'check', for: ticketToggle.id }, ticketToggle,
      `Open a ticket (${template.title || 'general'})`) : null,
    needsTicket ? el('p', { class: 'hint', text: `A ${intentLabel(intent).toLowerCase()} call needs a ticket.` }) : null,
    ticketBox,
    error,
    el('div', { class: 'actions' }, submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const choice = form.querySelector(`input[name="${uid}-disposition"]:checked`);
    const missing = [];
    if (!choice) missing.push('an outcome');
    let ticket = null;
    if (ticketBox && !ticketBox.disabled) {
      const values = {};
      for (const input of ticketBox.querySelectorAll('input, textarea')) {
        values[input.name] = input.value.trim();
        if (input.required && !values[input.name]) missing.push(input.dataset.label);
      }
      ticket = { template: ticketBox.dataset.template, fields: values };
    }
    if (missing.length) {
      error.textContent = `Please fill in ${missing.join(', ')}.`;
      error.hidden = false;
      const first = choice
        ? [...ticketBox.querySelectorAll('[required]')].find((input) => !input.value.trim())
        : form.querySelector('input[type=radio]');
      if (first) first.focus();
      return;
    }
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const result = await api(`/api/calls/${encodeURIComponent(pop.call_id)}/disposition`, {
        method: 'POST', quiet: true, body: { disposition: choice.value, notes: notes.value.trim(), ticket },
      });
      const ticketId = result && result.ticket_id;
      for (const control of form.querySelectorAll('input, textarea, select')) control.disabled = true;
      submit.hidden = true;
      fill(done, el('strong', { text: 'Saved.' }),
        ` ${DISPOSITIONS.find(([value]) => value === choice.value)[1]}`,
        ticketId ? el('span', {}, ' — ticket ', el('span', { class: 'mono', testid: 'ticket-id', text: ticketId }),
          ' opened.') : null);
      done.hidden = false;
      done.focus();
      onSaved(result || {});
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      submit.disabled = false;
    } finally {
      form.removeAttribute('aria-busy');
    }
  });
  form.append(done);
  return form;
}

// ---------------------------------------------------------------------------------------------
// Presence and calls (agent desktop and field page)

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
