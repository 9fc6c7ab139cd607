// Authenticated media for <img> and <audio>: fetched with the session's bearer token, shown from a blob: URL
// (an <img>/<audio> src cannot carry the token, and a token never goes in a URL).

import { ApiError, detailMessage } from './api.js';
import { sessions } from './backend.js';

/** GET `path` with the session's token -> an object URL of the body (revoke it when replaced); throws ApiError. */
export async function blobUrl(path) {
  const session = sessions().get();
  const headers = session && session.token ? { Authorization: `Bearer ${session.token}` } : {};
  let response;
  try {
    response = await fetch(path, { headers, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError(0, 'The server cannot be reached.');
  }
  if (!response.ok) {
    let message = `${response.status} ${response.statusText || 'error'}`.trim();
    try {
      message = detailMessage(await response.json()) || message;
    } catch {
      // not JSON: the status says enough
    }
    throw new ApiError(response.status, message);
  }
  return URL.createObjectURL(await response.blob());
}

/** Point an <img> or <audio> at `path` (authenticated), freeing the URL it showed before. */
export async function showMedia(element, path) {
  const url = await blobUrl(path);
  const before = element.dataset.blob;
  element.src = url;
  element.dataset.blob = url;
  if (before) URL.revokeObjectURL(before);
  return element;
}
