// What the pages talk to: the API, the live socket, and where the session is kept. boot.js installs one backend
// before a page starts and every module calls through here, so the page code is the same whichever backend
// answers (the server's, or a stand-in such as the demo's samples) and never asks which one it is.

import { httpApi } from './api.js';
import { liveSocket, setLiveStatus } from './socket.js';
import { sessionStore } from './session.js';

/** The real one: HTTP to /api, the WebSocket /ws, the session in sessionStorage. */
export const serverBackend = { api: httpApi, connectSocket: liveSocket, session: sessionStore };

let current = serverBackend;

/** backend: {api(path, options), connectSocket({onMessage, onOpen, onStatus}), session: {get, set, clear}}. */
export function useBackend(backend) {
  current = backend;
}

/** api(path, {method, body, quiet, token}) -> the response's JSON (null for 204); throws ApiError. */
export function api(path, options = {}) {
  return current.api(path, options);
}

/**
 * The page's live messages. onOpen runs on every (re)connect: fetch the state you may have missed there.
 * Returns {send(message), close()}.
 */
export function connectSocket({ onMessage, onOpen = () => {}, onStatus = setLiveStatus }) {
  return current.connectSocket({ onMessage, onOpen, onStatus });
}

/** Where the signed-in session is kept: {get(), set(session), clear()}. */
export function sessions() {
  return current.session;
}
