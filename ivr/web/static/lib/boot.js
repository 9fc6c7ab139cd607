// Every page's entry starts here: choose the backend, then start the page.
//
// `#demo` in the URL (documented in docs/web_testids.md, for layout checks without a server) swaps in the demo's
// built-in samples. This is the only place that knows demo mode exists: the demo lives in ../demo/ and is
// loaded only when asked for, and the page modules run the same code against either backend.

import { serverBackend, useBackend } from './backend.js';

const DEMO_HASH = /^#demo(?:=([\w-]+))?$/;

export async function boot(start) {
  const demo = location.hash.match(DEMO_HASH);
  if (demo) {
    const { demoBackend } = await import('../demo/backend.js');
    useBackend(demoBackend({ page: document.body.dataset.page, variant: demo[1] || '' }));
  } else {
    useBackend(serverBackend);
  }
  start();
}
