// Human labels for the raw codes the API sends, and number/time formatting.

import { el } from './dom.js';

const LANGUAGES = { ko: 'Korean · 한국어', en: 'English', zh: 'Chinese · 中文', ja: 'Japanese · 日本語', vi: 'Vietnamese' };
const DIALECTS = {
  gyeongsang: 'Gyeongsang · 경상', jeolla: 'Jeolla · 전라', chungcheong: 'Chungcheong · 충청',
  gangwon: 'Gangwon · 강원', jeju: 'Jeju · 제주', seoul: 'Seoul · 서울',
};
const INTENTS = {
  lost_card: 'Lost card', loan: 'Loan', complaint: 'Complaint', balance: 'Balance', transfer: 'Transfer',
  password: 'Password / PIN', agent: 'Asked for a person', finish: 'Finished',
};
export const REASONS = [
  ['lunch', 'Lunch'], ['training', 'Training'], ['meeting', 'Meeting'], ['personal', 'Personal'],
  ['phone', 'Phone not registered'], // set by the page phone (lib/phonebar.js), never chosen
];
const STATES = {
  ready: 'Ready', not_ready: 'Not ready', wrap_up: 'Wrap-up', offline: 'Offline', ringing: 'Ringing',
  on_call: 'On call',
};

export const languageLabel = (code) => (code ? LANGUAGES[code] || code : '');
export const dialectLabel = (code) => (code ? DIALECTS[code] || code : '');
export const intentLabel = (code) => (code ? INTENTS[code] || code.replaceAll('_', ' ') : 'Not understood');
export const stateLabel = (code) => STATES[code] || (code ? code.replaceAll('_', ' ') : 'Unknown');
export const reasonLabel = (code) => (REASONS.find(([value]) => value === code) || [code, code])[1];

/** 75 -> "1 min 15 s" (short: "1m 15s"); null -> "—". */
export function duration(seconds, { short = false } = {}) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  const total = Math.max(0, Math.round(Number(seconds)));
  const [s, m, h] = short ? ['s', 'm', 'h'] : [' s', ' min', ' h'];
  if (total < 60) return `${total}${s}`;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours}${h} ${minutes}${m}`;
  return secs ? `${minutes}${m} ${secs}${s}` : `${minutes}${m}`;
}

/** Unix seconds -> "2025-11-20 14:03" (local time). */
export function dateTime(unix) {
  if (!unix) return '—';
  const d = new Date(Number(unix) * 1000);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** Unix seconds -> "3 d ago". */
export function ago(unix, now = Date.now() / 1000) {
  if (!unix) return '';
  const s = Math.max(0, now - Number(unix));
  if (s < 90) return 'just now';
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/** A service level as given (0..1 or 0..100) -> a whole percentage, or null. */
export function percent(value) {
  if (value === null || value === undefined || Number.isNaN(Number(value))) return null;
  const n = Number(value);
  return Math.round(n <= 1 ? n * 100 : n);
}

/** A decorative bar (the number is always written next to it). */
export function bar(fraction, kind = '') {
  const fillNode = el('span', { class: 'bar-fill' });
  fillNode.style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%`; // CSSOM: allowed by the CSP
  return el('span', { class: `bar ${kind}`.trim(), 'aria-hidden': 'true' }, fillNode);
}
