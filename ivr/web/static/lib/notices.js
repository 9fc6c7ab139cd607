// The error banner and the short confirmations of every page.

import { byTestId, el, fill } from './dom.js';

export function showError(message) {
  const banner = byTestId('error-banner');
  if (!banner) return;
  fill(banner, el('span', { text: message }),
    el('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss message', onclick: hideError }, '×'));
  banner.hidden = false;
}

export function hideError() {
  const banner = byTestId('error-banner');
  if (banner) banner.hidden = true;
}

/** A short confirmation that fades (also read by screen readers: the region is aria-live). */
export function toast(message) {
  const region = byTestId('toast');
  if (!region) return;
  const item = el('div', { class: 'toast', text: message });
  region.append(item);
  setTimeout(() => item.remove(), 4000);
}
