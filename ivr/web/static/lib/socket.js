// The live socket (/ws): pings, reconnects with backoff, and the "Live" pill in the top bar.

import { httpApi } from './api.js';
import { byTestId } from './dom.js';
import { hideError, showError } from './notices.js';
import { sessionExpired, sessionStore } from './session.js';

/**
 * Connects to /ws?token=..., pings every 20 s, reconnects with backoff. 4401 -> sign in again;
 * 4403 (origin refused) -> an error, no retry. onOpen runs on every (re)connect: fetch the state
 * you may have missed there.
 */
export function liveSocket({ onMessage, onOpen = () => {}, onStatus = setLiveStatus }) {
  const PING_MS = 20000;
  let socket = null;
  let pingTimer = 0;
  let retryTimer = 0;
  let attempt = 0;
  let lastHeard = 0;
  let stopped = false;
  let complained = false; // the error banner shows our "cannot connect"

  function url() {
    const session = sessionStore.get();
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws?token=${encodeURIComponent(session ? session.token : '')}`;
  }

  function open() {
    clearTimeout(retryTimer);
    if (stopped) return;
    if (!sessionStore.get()) {
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
        // (httpApi() sends a 401 back to the sign-in form.)
        httpApi('/api/me', { quiet: true }).catch(() => {});
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
