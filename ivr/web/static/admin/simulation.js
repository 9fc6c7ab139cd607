// Simulated calls: the editor's text (nothing is published) run over typed answers, step by step.

import { api } from '../lib/backend.js';
import { byTestId, el, fill } from '../lib/dom.js';
import { editor, flowPath, state } from './state.js';

export async function runSimulation(event) {
  event.preventDefault();
  if (!state.flowId) return;
  const box = byTestId('sim-result');
  const inputs = byTestId('sim-inputs').value.split('\n').map((line) => line.trim()).filter(Boolean);
  const caller = byTestId('sim-caller').value.trim();
  const run = byTestId('sim-run');
  run.disabled = true;
  box.dataset.state = 'running';
  fill(box, el('p', { class: 'muted', text: 'Running…' }));
  try {
    const result = await api(flowPath('/simulate'), {
      method: 'POST', body: { text: editor().value, caller, inputs }, quiet: true,
    });
    renderSimulation(result);
  } catch (error) {
    box.dataset.state = 'error';
    const problems = (error.data && error.data.problems) || [];
    fill(box, el('p', { class: 'form-error', testid: 'sim-error', text: problems.length
      ? `Fix the flow's errors first (${problems.filter((p) => p.severity === 'error').length}): the simulation runs the editor's text.`
      : error.message }));
  } finally {
    run.disabled = false;
  }
}

function decisionText(decision) {
  if (!decision) return 'No decision';
  const { kind, queue, target } = decision;
  if (queue && (kind === 'route' || kind === 'queue' || kind === 'person')) return `To the ${queue} queue`;
  if (kind === 'transfer') return `Transferred to extension ${target}`;
  if (kind === 'callback' || kind === 'callback_offer') return `Callback${queue ? ` (keeps a place in ${queue})` : ''}`;
  if (kind === 'hangup') return 'The call ends';
  if (kind === 'self_service') return 'Served by the IVR';
  if (queue) return `${String(kind || 'route').replaceAll('_', ' ')}: queue ${queue}`;
  return String(kind || 'unknown').replaceAll('_', ' ');
}

function renderSimulation(result) {
  const box = byTestId('sim-result');
  box.dataset.state = 'done';
  const decision = result.decision || {};
  const steps = result.steps || [];
  fill(box,
    el('div', {
      class: 'sim-decision', testid: 'sim-decision',
      data: { kind: decision.kind || '', queue: decision.queue || '', target: decision.target || '' },
    },
    el('span', { class: 'sim-decision-label', text: 'Result' }),
    el('strong', { text: decisionText(decision) }),
    decision.reason ? el('span', { class: 'muted', text: ` — ${decision.reason}` }) : null),
    el('ol', { class: 'sim-steps' }, steps.map((step, index) => {
      const scores = Object.entries(step.scores || {}).sort(([, x], [, y]) => y - x).slice(0, 3);
      return el('li', { class: 'sim-step', testid: 'sim-step', data: { node: step.node, intent: step.intent || '' } },
        el('div', { class: 'sim-step-head' },
          el('span', { class: 'sim-step-no', text: String(index + 1) }),
          el('span', { class: 'mono sim-node', text: step.node }),
          el('span', { class: 'muted small', text: String(step.kind || '').replaceAll('_', ' ') }),
          step.intent ? el('span', { class: 'chip chip-intent', text: step.intent }) : null),
        step.prompt ? el('p', { class: 'sim-prompt' }, el('span', { class: 'sim-who', text: 'IVR' }), el('q', { text: step.prompt })) : null,
        step.kind !== 'say' || step.heard ? el('p', { class: 'sim-heard' },
          el('span', { class: 'sim-who', text: 'Caller' }),
          step.heard ? el('q', { text: step.heard }) : el('span', { class: 'muted', text: '(no input)' })) : null,
        scores.length ? el('p', { class: 'sim-scores' }, scores.map(([intent, score]) => el('span', { class: 'sim-score' },
          el('span', { class: 'mono', text: intent }), ' ', el('span', { class: 'muted', text: Number(score).toFixed(2) })))) : null);
    })));
}
