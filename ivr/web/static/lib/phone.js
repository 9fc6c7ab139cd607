// The softphone inside /agent and /field: the agent's page phone registers to Asterisk over secure WebSocket with
// JsSIP (vendored in ../vendor/, loaded only when the agent has a page phone) and takes the calls offered to it.
//
// GET /api/phone/config says where and as whom (ivr/web/phone.py); an agent whose calls ring a SIP phone gets
// `enabled: false` and the page stays as it was. One call at a time: a second INVITE while one is up is refused
// busy (the ACD never offers two). The caller's audio plays in a hidden <audio> (data-testid phone-audio); the
// microphone is asked for when a call is answered. Media: DTLS-SRTP and ICE (Asterisk's webrtc endpoint), Opus or
// G.711. Waiting for ICE candidates is capped (config.ice_gathering_cap_ms after the first one): browser SIP
// stacks otherwise hold the SDP until gathering ends, seconds with an unreachable STUN server.
//
// Asterisk offers the SDP when it rings the page (the ACD dials the agent's device). With an offer from Asterisk,
// a browser may see no media at all (asterisk #2053: DTLS dropped while ICE is incomplete); the fix there is a
// re-offer from the browser, so when no audio arrives within NO_MEDIA_REOFFER_MS of the answer, the page
// re-offers once (a re-INVITE, the browser offering: what a hold and resume would do).

import { api } from './backend.js';

/** The vendored JsSIP build (ivr/web/static/vendor/; tests/unit/web/test_vendor.py keeps this name true). */
export const JSSIP_FILE = '/static/vendor/jssip-3.13.8.min.js';

const NO_MEDIA_REOFFER_MS = 2500;
const DTMF_KEYS = new Set([...'0123456789*#']);

let jssipLoading = null;

/** Loads the vendored JsSIP once (a classic script defining window.JsSIP; same origin, allowed by the CSP). */
function loadJsSIP() {
  if (window.JsSIP) return Promise.resolve(window.JsSIP);
  if (!jssipLoading) {
    jssipLoading = new Promise((resolve, reject) => {
      const script = document.createElement('script');
      script.src = JSSIP_FILE;
      script.async = true;
      script.onload = () => (window.JsSIP ? resolve(window.JsSIP) : reject(new Error('JsSIP did not load')));
      script.onerror = () => {
        jssipLoading = null;
        reject(new Error(`the phone library ${JSSIP_FILE} could not be loaded`));
      };
      document.head.append(script);
    });
  }
  return jssipLoading;
}

/**
 * The page phone. `listener(phone)` is called on every change; read `phone.state` ('none' | 'loading' |
 * 'connecting' | 'registered' | 'unregistered' | 'failed'), `phone.reason` (why not registered) and `phone.call`
 * ({callId, from, status: 'ringing' | 'connecting' | 'active' | 'ended', muted, held, cause, reoffered: true when
 * the page had to re-offer for media, asterisk #2053}, or null).
 */
export function createPhone(listener = () => {}) {
  const audio = document.createElement('audio');
  audio.autoplay = true;
  audio.hidden = true;
  audio.dataset.testid = 'phone-audio';
  document.body.append(audio);

  const phone = {
    state: 'loading', reason: '', device: '', call: null, enabled: false,
    start, stop, register, answer, hangup, mute, hold, dtmf, transfer,
  };
  let ua = null;
  let config = null;
  let session = null;
  let waiters = [];
  const ringer = createRinger();

  function emit() {
    try {
      listener(phone);
    } catch (error) {
      console.error('phone listener', error); // eslint-disable-line no-console
    }
  }

  function setState(state, reason = '') {
    phone.state = state;
    phone.reason = reason;
    if (state === 'registered' || state === 'failed' || state === 'none') {
      const settled = waiters;
      waiters = [];
      settled.forEach((resolve) => resolve(state === 'registered'));
    }
    emit();
  }

  /** Fetches the config and, for a page phone, registers it. Resolves once the first attempt is under way. */
  async function start() {
    try {
      config = await api('/api/phone/config', { quiet: true });
    } catch (error) {
      setState('failed', `phone settings not available: ${error.message}`);
      return phone;
    }
    phone.device = (config && config.device) || '';
    phone.enabled = Boolean(config && config.enabled);
    if (!phone.enabled) {
      setState('none', (config && config.reason) || '');
      return phone;
    }
    let JsSIP;
    try {
      JsSIP = await loadJsSIP();
    } catch (error) {
      setState('failed', error.message);
      return phone;
    }
    ua = new JsSIP.UA({
      sockets: [new JsSIP.WebSocketInterface(config.wss_url)],
      uri: config.sip_uri,
      authorization_user: config.authorization_user,
      password: config.password,
      display_name: config.display_name,
      register: true,
      register_expires: 300,
      session_timers: false,
      user_agent: `ivr-page-phone (JsSIP ${JsSIP.version})`,
      connection_recovery_min_interval: 2,
      connection_recovery_max_interval: 30,
    });
    ua.on('connecting', () => { if (phone.state !== 'registered') setState('connecting'); });
    ua.on('disconnected', (event) => {
      setState('unregistered', event && event.error ? 'the phone connection was lost' : 'the phone connection closed');
    });
    ua.on('registered', () => setState('registered'));
    ua.on('unregistered', () => setState('unregistered', 'the phone signed out'));
    ua.on('registrationFailed', (event) => {
      const code = event.response ? ` (${event.response.status_code} ${event.response.reason_phrase})` : '';
      setState('failed', `registration failed: ${event.cause}${code}`);
    });
    ua.on('newRTCSession', ({ originator, session: incoming, request }) => {
      if (originator === 'remote') offered(incoming, request);
    });
    setState('connecting');
    ua.start();
    return phone;
  }

  /** Resolves true once registered (now or within timeoutMs), false otherwise. Re-registers if it had stopped. */
  function register(timeoutMs = 8000) {
    if (!phone.enabled) return Promise.resolve(false);
    if (phone.state === 'registered') return Promise.resolve(true);
    return new Promise((resolve) => {
      waiters.push(resolve);
      setTimeout(() => {
        waiters = waiters.filter((w) => w !== resolve);
        resolve(phone.state === 'registered');
      }, timeoutMs);
      if (ua && !ua.isConnected()) ua.start();
      else if (ua) ua.register();
    });
  }

  /** Ends the call, unregisters and closes the socket (sign-out, going offline, leaving the page). */
  function stop() {
    ringer.stop();
    if (session && !session.isEnded()) session.terminate();
    if (ua) ua.stop();
  }

  // --- calls

  function offered(incoming, request) {
    if (session && !session.isEnded()) {
      incoming.terminate({ status_code: 486, reason_phrase: 'Busy Here' });
      return;
    }
    session = incoming;
    const who = incoming.remote_identity;
    phone.call = {
      callId: request.getHeader('X-IVR-Call-ID') || '',
      from: (who.display_name || (who.uri && who.uri.user) || '').trim(),
      status: 'ringing', muted: false, held: false, cause: '', reoffered: false,
    };
    const mine = phone.call;
    const update = (changes) => {
      if (phone.call !== mine) return;
      Object.assign(mine, changes);
      emit();
    };
    incoming.on('peerconnection', ({ peerconnection }) => {
      peerconnection.addEventListener('track', (event) => {
        audio.srcObject = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
        audio.play().catch(() => {}); // allowed: the agent clicked to answer
      });
    });
    let capTimer = null;
    incoming.on('icecandidate', ({ ready }) => {
      if (!capTimer) capTimer = setTimeout(ready, (config && config.ice_gathering_cap_ms) || 1500);
    });
    incoming.on('accepted', () => update({ status: 'active' }));
    incoming.on('confirmed', () => {
      update({ status: 'active' });
      reofferIfSilent(incoming, () => update({ reoffered: true }));
    });
    incoming.on('hold', ({ originator }) => { if (originator === 'local') update({ held: true }); });
    incoming.on('unhold', ({ originator }) => { if (originator === 'local') update({ held: false }); });
    incoming.on('muted', () => update({ muted: true }));
    incoming.on('unmuted', () => update({ muted: false }));
    const finished = ({ cause }) => {
      clearTimeout(capTimer);
      ringer.stop();
      audio.srcObject = null;
      if (session === incoming) session = null;
      update({ status: 'ended', cause: cause || '' });
    };
    incoming.on('ended', finished);
    incoming.on('failed', finished);
    ringer.start();
    emit();
  }

  /** asterisk #2053: no audio after an answer to Asterisk's offer -> one re-offer from the browser. */
  function reofferIfSilent(mine, done) {
    const connection = mine.connection;
    if (!connection || !connection.getStats) return;
    setTimeout(async () => {
      if (mine.isEnded() || session !== mine) return;
      let received = 0;
      try {
        (await connection.getStats()).forEach((report) => {
          if (report.type === 'inbound-rtp' && report.kind === 'audio') received += report.packetsReceived || 0;
        });
      } catch {
        return;
      }
      if (!received && mine.renegotiate({ useUpdate: false })) done();
    }, NO_MEDIA_REOFFER_MS);
  }

  function answer() {
    if (!session || !phone.call || phone.call.status !== 'ringing') return false;
    ringer.stop();
    phone.call.status = 'connecting';
    emit();
    session.answer({
      mediaConstraints: { audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true }, video: false },
      pcConfig: { iceServers: (config && config.ice_servers) || [], bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' },
    });
    return true;
  }

  function hangup() {
    if (!session || session.isEnded()) return false;
    session.terminate();
    return true;
  }

  function mute(on) {
    if (!session || !phone.call || phone.call.status !== 'active') return false;
    if (on) session.mute({ audio: true });
    else session.unmute({ audio: true });
    return true;
  }

  function hold(on) {
    if (!session || !phone.call || phone.call.status !== 'active') return false;
    return on ? session.hold() : session.unhold();
  }

  /** One key as an RFC 4733 event in the media (the endpoint's dtmf_mode), not SIP INFO. */
  function dtmf(key) {
    if (!session || !phone.call || phone.call.status !== 'active' || !DTMF_KEYS.has(key)) return false;
    session.sendDTMF(key, { transportType: 'RFC2833', duration: 120, interToneGap: 70 });
    return true;
  }

  /** Blind transfer (REFER) of the caller to an extension (1002) or a queue (loans): [agents] in the dialplan. */
  function transfer(target) {
    const to = String(target || '').trim();
    if (!session || !phone.call || phone.call.status !== 'active' || !/^[A-Za-z0-9_]{1,32}$/.test(to)) return false;
    const domain = config.sip_uri.split('@')[1];
    session.refer(`sip:${to}@${domain}`, {
      eventHandlers: {
        accepted: () => session && session.terminate(),
        failed: () => { if (phone.call) { phone.call.cause = `transfer to ${to} failed`; emit(); } },
      },
    });
    return true;
  }

  return phone;
}

/** A ring tone while a call is offered (WebAudio: 440+480 Hz, 2 s on, 4 s off); silent if audio is not allowed. */
function createRinger() {
  let context = null;
  let timer = null;
  let nodes = [];
  const burst = () => {
    const gain = context.createGain();
    gain.gain.value = 0.08;
    gain.connect(context.destination);
    for (const frequency of [440, 480]) {
      const oscillator = context.createOscillator();
      oscillator.frequency.value = frequency;
      oscillator.connect(gain);
      oscillator.start();
      oscillator.stop(context.currentTime + 2);
      nodes.push(oscillator);
    }
  };
  return {
    start() {
      try {
        context = context || new AudioContext();
        if (context.state === 'suspended') context.resume().catch(() => {});
        burst();
        timer = setInterval(burst, 6000);
      } catch {
        // no audio output allowed: the page's ringing state and the tab title still show it
      }
    },
    stop() {
      clearInterval(timer);
      timer = null;
      for (const node of nodes) {
        try { node.stop(); } catch { /* already stopped */ }
      }
      nodes = [];
    },
  };
}
