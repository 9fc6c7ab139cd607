// Supervisor wall (/supervisor): queues, agents by state, calls in the IVR. Pushed over the socket
// ({"type":"wall"}); fetched once per (re)connect so nothing missed while offline stays wrong. No polling.

import { api, connectSocket } from './lib/backend.js';
import { boot } from './lib/boot.js';
import { byTestId, el, fill } from './lib/dom.js';
import { bar, duration, percent } from './lib/format.js';
import { showMedia } from './lib/media.js';
import { startPage } from './lib/page.js';

const GROUPS = [
  ['ready', 'Ready'], ['ringing', 'Ringing'], ['on_call', 'On call'], ['wrap_up', 'Wrap-up'],
  ['not_ready', 'Not ready'], ['offline', 'Offline'],
];
const LONG_WAIT_S = 60;
const SERVICE_TARGET = 80;

boot(() => startPage({ roles: ['supervisor', 'admin'], onReady }));

const NAVIGATION_REFRESH_MS = 5 * 60 * 1000;

function onReady() {
  // Navigation over the archive (drawn on the server): slow-moving numbers, refreshed every few minutes.
  const chart = () => showMedia(byTestId('wall-navigation-chart'), '/api/reports/navigation.svg?by=node&since=7d')
    .catch(() => {}); // the wall matters more than its chart
  chart();
  setInterval(chart, NAVIGATION_REFRESH_MS);
  connectSocket({
    onMessage(message) {
      if (message.type === 'wall' && message.wall) render(message.wall);
    },
    async onOpen() {
      try {
        render(await api('/api/wall', { quiet: true }));
      } catch {
        // the next push fills it in
      }
    },
  });
}

/** "not_ready: lunch" -> {group: "not_ready", detail: "lunch"}; "ready (phone not registered)" -> ready + warning. */
export function groupOf(shown) {
  const text = String(shown || 'offline');
  if (text.startsWith('not_ready')) return { group: 'not_ready', detail: text.split(':').slice(1).join(':').trim() };
  if (text.startsWith('ready')) {
    const note = text.match(/\((.*)\)/);
    return { group: 'ready', detail: note ? note[1] : '', warn: Boolean(note) };
  }
  for (const [group] of GROUPS) if (text === group) return { group, detail: '' };
  return { group: 'offline', detail: text };
}

function render(wall) {
  const queues = Object.entries(wall.queues || {}).sort(([a], [b]) => a.localeCompare(b));
  const agents = Object.entries(wall.agents || {});
  const ivr = Object.entries(wall.ivr || {}).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));

  renderSummary(queues, agents, ivr);
  renderQueues(queues);
  renderAgents(agents);
  renderIvr(ivr);
  renderDecisions(wall.decisions || []);
  const updated = byTestId('wall-updated');
  const at = wall.at ? new Date(Number(wall.at) * 1000) : new Date();
  updated.textContent = at.toLocaleTimeString('en-GB');
  updated.setAttribute('datetime', at.toISOString());
}

function renderSummary(queues, agents, ivr) {
  const waiting = queues.reduce((sum, [, q]) => sum + (Number(q.waiting) || 0), 0);
  const longest = queues.reduce((max, [, q]) => Math.max(max, Number(q.longest_wait_s) || 0), 0);
  const ready = agents.filter(([, a]) => groupOf(a.shown).group === 'ready' && !groupOf(a.shown).warn).length;
  const staffed = agents.filter(([, a]) => groupOf(a.shown).group !== 'offline').length;
  const inIvr = ivr.reduce((sum, [, count]) => sum + (Number(count) || 0), 0);
  fill(byTestId('wall-summary'),
    tile('Calls waiting', String(waiting), waiting > 0 ? 'warn' : '', 'wall-total-waiting'),
    tile('Longest wait', longest ? duration(longest, { short: true }) : '—', longest >= LONG_WAIT_S ? 'bad' : '', 'wall-total-longest'),
    tile('Agents ready', `${ready} / ${staffed}`, ready === 0 && waiting > 0 ? 'bad' : 'good', 'wall-total-ready'),
    tile('In the IVR', String(inIvr), '', 'wall-total-ivr'));
}

function tile(label, value, tone, testid) {
  return el('div', { class: `tile ${tone ? `tone-${tone}` : ''}`.trim(), testid },
    el('div', { class: 'tile-value', text: value }), el('div', { class: 'tile-label', text: label }));
}

function renderQueues(queues) {
  const box = byTestId('wall-queues');
  if (!queues.length) {
    fill(box, el('p', { class: 'muted', text: 'No queues reported.' }));
    return;
  }
  fill(box, queues.map(([name, q]) => {
    const waiting = Number(q.waiting) || 0;
    const longest = Number(q.longest_wait_s) || 0;
    const level = percent(q.service_level);
    const tone = longest >= LONG_WAIT_S || (level !== null && level < SERVICE_TARGET) ? 'bad' : waiting ? 'warn' : 'ok';
    return el('article', {
      class: `queue tone-${tone}`, testid: `wall-queue-${name}`,
      data: { queue: name, waiting, longestWait: longest, serviceLevel: level ?? '' },
      'aria-label': `Queue ${name}`,
    },
    el('h3', { class: 'queue-name', text: name }),
    el('div', { class: 'queue-main' },
      el('span', { class: 'queue-waiting', testid: 'queue-waiting', text: String(waiting) }),
      el('span', { class: 'muted', text: waiting === 1 ? ' caller waiting' : ' callers waiting' })),
    el('dl', { class: 'queue-stats' },
      el('div', {}, el('dt', { text: 'Longest wait' }),
        el('dd', { testid: 'queue-longest', class: longest >= LONG_WAIT_S ? 'bad' : '', text: waiting ? duration(longest, { short: true }) : '—' })),
      el('div', {}, el('dt', { text: 'Service level' }),
        el('dd', { testid: 'queue-sl', class: level !== null && level < SERVICE_TARGET ? 'bad' : '' },
          level === null ? '—' : `${level}%`,
          level === null ? null : bar(level / 100, level < SERVICE_TARGET ? 'bar-low' : 'bar-high'))),
      el('div', {}, el('dt', { text: 'First-contact resolution' }),
        el('dd', { testid: 'queue-fcr', text: percent(q.fcr) === null ? '—' : `${percent(q.fcr)}%` }))));
  }));
}

// Live routing decisions: the value estimate of each offer, and why a caller is held or widened.
function renderDecisions(decisions) {
  const box = byTestId('wall-decisions');
  if (!box) return;
  if (!decisions.length) {
    fill(box, el('p', { class: 'muted', text: 'No routing decisions in progress.' }));
    return;
  }
  fill(box, el('ul', { class: 'decisions' }, decisions.map((d) => el('li', {
    testid: `wall-decision-${d.call_id}`, data: { state: d.state || '', queue: d.queue || '' },
  },
  el('strong', { text: `${d.queue || 'general'} · ${d.state || ''}${d.agent ? ` → ${d.agent}` : ''}` }),
  el('span', { class: 'muted', text: ` waited ${duration(Number(d.waited_s) || 0, { short: true })}` }),
  d.value === null || d.value === undefined ? null
    : el('span', { testid: 'decision-value', text: ` · value ${Number(d.value).toFixed(2)} (resolution ${percent(d.fcr)}%)` }),
  el('div', { class: 'muted', testid: 'decision-why', text: d.why || '' })))));
}

function renderAgents(agents) {
  const grouped = new Map(GROUPS.map(([group]) => [group, []]));
  for (const [id, agent] of agents) {
    const { group, detail, warn } = groupOf(agent.shown);
    grouped.get(group).push({ id, agent, detail, warn });
  }
  fill(byTestId('wall-agents'), GROUPS.map(([group, label]) => {
    const members = grouped.get(group).sort((a, b) => String(a.agent.name).localeCompare(String(b.agent.name), 'ko'));
    return el('section', { class: `agent-group state-${group}`, testid: `wall-agents-${group}`, data: { count: members.length } },
      el('h3', {}, el('span', { class: 'dot', 'aria-hidden': 'true' }), label,
        el('span', { class: 'count', text: String(members.length) })),
      members.length
        ? el('ul', { class: 'agent-list' }, members.map(({ id, agent, detail, warn }) => el('li', {
          class: `agent-chip ${warn ? 'is-warn' : ''}`.trim(), testid: `wall-agent-${id}`, data: { state: group },
        },
        el('span', { class: 'agent-name', lang: 'ko', text: agent.name || id }),
        el('span', { class: 'agent-id mono', text: id }),
        detail ? el('span', { class: 'agent-detail', text: warn ? `⚠ ${detail}` : detail }) : null)))
        : el('p', { class: 'muted empty', text: 'none' }));
  }));
}

function renderIvr(nodes) {
  const box = byTestId('wall-ivr');
  if (!nodes.length) {
    fill(box, el('li', { class: 'muted', text: 'No calls in the IVR.' }));
    return;
  }
  const most = Math.max(...nodes.map(([, count]) => Number(count) || 0), 1);
  fill(box, nodes.map(([node, count]) => el('li', { class: 'ivr-node', testid: `wall-ivr-${node}`, data: { count } },
    el('span', { class: 'ivr-name', text: node.replaceAll('_', ' ') }),
    bar((Number(count) || 0) / most),
    el('span', { class: 'ivr-count', text: String(count) }))));
}
