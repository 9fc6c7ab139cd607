// The signed-in session, kept in sessionStorage only (not in a cookie, not in storage that outlives the tab): a
// tab's sign-in ends with the tab.

const SESSION_KEY = 'ivr.session';
export const FLASH_KEY = 'ivr.flash';

function expiryMs(value) {
  if (value === null || value === undefined || value === '') return 0;
  if (typeof value === 'number') return value > 1e12 ? value : value * 1000;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? 0 : parsed;
}

/** Where the server's session (the login response) is kept; the pages reach it through the backend. */
export const sessionStore = {
  get() {
    let session = null;
    try {
      session = JSON.parse(sessionStorage.getItem(SESSION_KEY) || 'null');
    } catch {
      session = null;
    }
    if (!session || typeof session.token !== 'string') return null;
    const expires = expiryMs(session.expires_at);
    if (expires && expires < Date.now()) {
      sessionStore.clear();
      return null;
    }
    return session;
  },
  set(session) {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  },
  clear() {
    sessionStorage.removeItem(SESSION_KEY);
  },
};

/** The session is gone (401, or the socket was refused): back to the sign-in form, with a reason. */
export function sessionExpired(message = 'Your session has ended. Please sign in again.') {
  sessionStore.clear();
  sessionStorage.setItem(FLASH_KEY, message);
  location.reload(); // also wipes every customer detail from the page
}
