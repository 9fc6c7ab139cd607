// The HTTP API client: fetch() with the session's bearer token and JSON, and the server's errors as ApiError.

import { showError } from './notices.js';
import { sessionExpired, sessionStore } from './session.js';

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
 * fetch() with the bearer token (the session's, or `token` for a session not kept) and JSON. Errors show the
 * server's {"detail"} in the error banner (unless quiet) and throw ApiError. 204 -> null.
 */
export async function httpApi(path, { method = 'GET', body, quiet = false, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const session = sessionStore.get();
  const bearer = token || (session && session.token);
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
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
    if (response.status === 401 && path !== '/api/login' && !token) sessionExpired(message);
    const error = new ApiError(response.status, message);
    error.data = data; // the whole error body: e.g. a 422's "problems", a 409's "live"
    if (!quiet) showError(message);
    throw error;
  }
  return data;
}
