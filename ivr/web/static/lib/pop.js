// The screen pop (agent desktop and field page): the caller, what the IVR heard, why this agent, cases, history.

import { el } from './dom.js';
import { ago, bar, dateTime, dialectLabel, duration, intentLabel, languageLabel } from './format.js';

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
