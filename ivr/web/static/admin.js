// Flow editor (/admin; admin role): the flows, an editor checked as you type (problems listed with their lines,
// the gutter marks them), the flow's diagram, simulated calls, publishing with a comment, the history with diffs and
// rollback, and the audit log. The server does every check; the parts live in admin/, this file wires them.
//
// Data is rendered with textContent / Text nodes only (flows carry free text), as on every page.

import { connectSocket } from './lib/backend.js';
import { boot } from './lib/boot.js';
import { byTestId } from './lib/dom.js';
import { startPage } from './lib/page.js';
import { loadAudit } from './admin/audit.js';
import { onEdit, redrawDiagram, revert } from './admin/check.js';
import { wireEditor } from './admin/editor.js';
import { loadFlows, openFlow, pollLive } from './admin/flows.js';
import { updatePublish } from './admin/gate.js';
import { loadHistory } from './admin/history.js';
import { publish } from './admin/publish.js';
import { runSimulation } from './admin/simulation.js';
import { dirty, onNewVersion, state } from './admin/state.js';

const POLL_MS = 15000;

boot(() => startPage({ roles: ['admin'], onReady }));

function onReady() {
  // The socket only keeps the "Live" pill and the session honest (sign-out elsewhere ends this page too).
  connectSocket({ onMessage() {} });
  wireEditor(onEdit);
  byTestId('publish-form').addEventListener('submit', publish);
  byTestId('publish-comment').addEventListener('input', updatePublish);
  byTestId('editor-revert').addEventListener('click', revert);
  byTestId('sim-form').addEventListener('submit', runSimulation);
  byTestId('history-refresh').addEventListener('click', () => loadHistory());
  byTestId('audit-refresh').addEventListener('click', loadAudit);
  byTestId('diagram-zoom').addEventListener('click', () => {
    state.zoomed = !state.zoomed;
    redrawDiagram();
  });
  window.addEventListener('beforeunload', (event) => {
    if (dirty()) event.preventDefault();
  });
  window.addEventListener('resize', redrawDiagram);
  onNewVersion((number) => {
    loadFlows();
    loadAudit();
    return loadHistory(number);
  });
  setInterval(pollLive, POLL_MS);
  loadFlows().then((flows) => {
    loadAudit(); // after the list: listing may record a flow file's first version
    const wanted = (location.hash.match(/^#flow=([\w-]+)$/) || [])[1];
    const first = flows.find((f) => f.id === wanted) || flows[0];
    if (first) openFlow(first.id);
  });
}
