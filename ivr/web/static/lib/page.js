// Page start: the sign-in form until there is a session for the page's roles, then the page itself.

import { api, sessions } from './backend.js';
import { $, byTestId, el, fill } from './dom.js';
import { FLASH_KEY } from './session.js';

/**
 * Shows the sign-in form until there is a valid session for one of `roles`, then calls
 * onReady(session). Wires the sign-out button.
 */
export async function startPage({ roles, onReady }) {
  const login = byTestId('login');
  const app = $('#app');
  const store = sessions();
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
    store.clear();
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
        await api('/api/logout', { method: 'POST', token: session.token, quiet: true }).catch(() => {});
        showLoginError(`This page is for ${roles.join(' / ')} accounts; "${username}" is ${session.role}.`);
        return;
      }
      store.set(session);
      byTestId('login-password').value = '';
      enter(session);
    } catch (error) {
      showLoginError(error.status === 401 ? (error.message || 'Wrong username or password.') : error.message);
    } finally {
      submit.disabled = false;
      form.removeAttribute('aria-busy');
    }
  });

  const session = store.get();
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
