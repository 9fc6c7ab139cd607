// Demo mode (#demo in the URL, for screenshots and design review): a backend that answers from built-in samples
// instead of the server, installed by lib/boot.js. The pages run their normal code against it: the demo is a
// stand-in for the API and the socket, not a branch inside the pages. Variants: #demo (a VIP caller ringing),
// #demo=oncall, #demo=after (the call ended: disposition form), #demo=unknown (an unknown caller), #demo=idle
// (no call).
//
// Ticket templates are not sampled here: ticket-templates.json is the server's table (ivr/web/desk.py), kept equal
// to it by tests/unit/web/test_static_pages.py, so the demo's form has exactly the real fields.

const now = () => Date.now() / 1000;
const DAY = 86400;

const PEOPLE = {
  agent: { username: 'jihoon.park', role: 'agent', agent_id: 'A1001', name: '박지훈' },
  field: { username: 'jaeho.yoon', role: 'field', agent_id: 'F2001', name: '윤재호' },
  supervisor: { username: 'seyoung.oh', role: 'supervisor', agent_id: null, name: '오세영' },
};

function person(page) {
  return { token: 'demo', expires_at: now() + 8 * 3600, ...(PEOPLE[page] || PEOPLE.agent), demo: true };
}

function knownPop(agentId) {
  const t = now();
  return {
    call_id: '1763712345.42',
    agent_id: agentId,
    offered_at: t,
    caller: '01012345678',
    known: true,
    customer: {
      id: 'C1001', name: '김민준', tier: 'vip', vip: true, language: 'ko', dialect: 'gyeongsang',
      accounts: ['110-***-**1234', '356912******4410'], patience_s: 30,
      cases: [
        { id: 'CASE-1001', skill: 'loans', owner: agentId, summary: 'mortgage refinancing: documents pending' },
        { id: 'CASE-0977', skill: 'cards', owner: 'A1003', summary: 'annual fee waiver request' },
      ],
    },
    language: 'ko',
    dialect: 'gyeongsang',
    ivr: {
      path: ['main_menu', 'confirm_intent', 'to_loans'],
      intent: 'loan',
      queue: 'loans',
      turns: [
        { node: 'main_menu', transcript: '대출 상담 받을라꼬예', confidence: 0.62, intent: 'loan', score: 0.71, keys: '' },
        { node: 'confirm_intent', transcript: '네 맞습니더', confidence: 0.91, intent: 'yes', score: 0.95, keys: '' },
      ],
    },
    waited_s: 24.6,
    routing: {
      rule: 'case owner',
      why: [`${agentId} owns the caller's open case CASE-1001`, 'VIP caller: VIP-cleared agents only',
        'speaks the caller\'s dialect (gyeongsang)'],
    },
    history: [
      { at: t - 40 * DAY, channel: 'voice', intent: 'balance', queue: null, agent: null, wait_s: null, outcome: 'self_service' },
      { at: t - 3 * DAY, channel: 'voice', intent: 'loan', queue: 'loans', agent: agentId, wait_s: 18, outcome: 'answered' },
      { at: t - 2 * DAY, channel: 'voice', intent: 'loan', queue: 'loans', agent: null, wait_s: 41, outcome: 'abandoned' },
      { at: t - 9 * DAY, channel: 'callback', intent: 'lost_card', queue: 'cards', agent: 'A1003', wait_s: 0, outcome: 'answered' },
    ],
  };
}

function unknownPop(agentId) {
  return {
    call_id: '1763712399.57', agent_id: agentId, offered_at: now(), caller: '01099990000', known: false,
    customer: null, language: 'ko', dialect: null,
    ivr: {
      path: ['main_menu', 'not_understood', 'main_menu', 'to_person'], intent: 'agent', queue: 'general',
      turns: [
        { node: 'main_menu', transcript: '카드 결제가 두 번 됐는데', confidence: 0.38, intent: null, score: 0.2, keys: '' },
        { node: 'main_menu', transcript: '', confidence: 0, intent: 'agent', score: 1, keys: '0' },
      ],
    },
    waited_s: 71.2,
    routing: { rule: 'longest idle', why: ['no customer record: general skill', 'A1001 idle 6 min'] },
    history: [],
  };
}

function wall(tick = 0) {
  return {
    at: now(),
    queues: {
      general: { waiting: 3, longest_wait_s: 48 + tick, service_level: 0.86 },
      cards: { waiting: 1, longest_wait_s: 12 + tick, service_level: 0.94 },
      loans: { waiting: 4, longest_wait_s: 96 + tick, service_level: 0.71 },
      payments: { waiting: 0, longest_wait_s: 0, service_level: 0.98 },
      complaints: { waiting: 2, longest_wait_s: 33 + tick, service_level: 0.8 },
    },
    agents: {
      A1001: { name: '박지훈', shown: 'on_call', device_state: 'INUSE' },
      A1002: { name: '최수아', shown: 'ready', device_state: 'NOT_INUSE' },
      A1003: { name: '정예린', shown: 'ringing', device_state: 'RINGING' },
      A1004: { name: '강도윤', shown: 'not_ready: lunch', device_state: 'NOT_INUSE' },
      A1005: { name: '서하은', shown: 'wrap_up', device_state: 'NOT_INUSE' },
      A1006: { name: '임도현', shown: 'ready (phone not registered)', device_state: 'UNAVAILABLE' },
      A1007: { name: '조민서', shown: 'not_ready: training', device_state: 'NOT_INUSE' },
      F2001: { name: '윤재호', shown: 'on_call', device_state: 'INUSE' },
      F2002: { name: '한지민', shown: 'offline', device_state: 'UNAVAILABLE' },
      A1008: { name: '배서준', shown: 'ready', device_state: 'NOT_INUSE' },
    },
    ivr: { main_menu: 5, confirm_intent: 2, balance: 1, complaint_callback: 1, not_understood: 1 },
  };
}

const NOT_FOUND = Object.assign(new Error('No such call'), { status: 404 });

/** The backend (see lib/backend.js) for page `page` ("agent", "field", "supervisor"), in `variant`. */
export function demoBackend({ page, variant = '' }) {
  const me = person(page);
  let presence = { status: 'ready', reason: '', activity: '', call_id: '' };
  let listener = null;
  document.body.classList.add('is-demo'); // shows the "Demo data" flag in the top bar

  const emit = (message) => {
    if (listener) listener(message);
  };
  const setPresence = (change) => {
    presence = { ...presence, ...change };
    emit({ type: 'presence', agent: me.agent_id, ...change });
  };

  async function api(path, { method = 'GET', body } = {}) {
    await new Promise((resolve) => setTimeout(resolve, 150));
    if (path === '/api/me') return me;
    if (path === '/api/agents/me') {
      return { id: me.agent_id, name: me.name, role: me.role, device: 'PJSIP/1001', skills: {}, ...presence };
    }
    if (path === '/api/ticket-templates') {
      const response = await fetch('/static/demo/ticket-templates.json', { cache: 'no-store' });
      return response.json();
    }
    if (path === '/api/wall') return wall();
    if (path === '/api/phone/config') {
      return { enabled: false, device: 'PJSIP/1001', reason: 'Demo: calls ring a desk phone; no page phone here' };
    }
    if (path.endsWith('/presence') && method === 'POST') {
      setPresence({ status: body.status, reason: body.reason || '' });
      return null;
    }
    if (path.endsWith('/decline')) {
      setTimeout(() => setPresence({ activity: '', call_id: '' }), 300);
      return { accepted: true };
    }
    if (path.endsWith('/disposition')) {
      return { ticket_id: body.ticket ? `T-${new Date().getFullYear()}-000417` : null };
    }
    if (path.endsWith('/pop')) throw NOT_FOUND;
    return null;
  }

  function connectSocket({ onMessage, onOpen, onStatus }) {
    listener = onMessage;
    setTimeout(() => {
      onStatus('live');
      onOpen();
      if (page === 'supervisor') {
        let tick = 0;
        setInterval(() => { tick += 1; emit({ type: 'wall', wall: wall(tick) }); }, 1000);
        return;
      }
      if (variant === 'idle') return;
      const pop = variant === 'unknown' ? unknownPop(me.agent_id) : knownPop(me.agent_id);
      setTimeout(() => {
        setPresence({ activity: 'ringing', call_id: pop.call_id });
        emit({ type: 'pop', pop });
        if (variant === 'oncall' || variant === 'after') {
          setPresence({ activity: 'on_call' });
          emit({ type: 'call', call_id: pop.call_id, event: 'call.answered' });
        }
        if (variant === 'after') {
          setPresence({ activity: 'wrap_up', call_id: '' });
          emit({ type: 'call', call_id: pop.call_id, event: 'call.ended' });
        }
      }, 300);
    }, 200);
    return { send() {}, close() {} };
  }

  // The demo person stays signed in: signing out reloads into the demo again.
  const session = { get: () => me, set() {}, clear() {} };

  return { api, connectSocket, session };
}
