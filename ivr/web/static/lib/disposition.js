// After the call: the disposition form, with the ticket the call's intent needs (agent desktop) or case notes
// only (field page).

import { api } from './backend.js';
import { el, fill } from './dom.js';
import { intentLabel } from './format.js';

export const DISPOSITIONS = [
  ['resolved', 'Resolved'], ['follow_up', 'Follow-up needed'], ['escalated', 'Escalated'], ['no_action', 'No action'],
];

/**
 * The ticket template for a pop's intent: the server's template named after the intent (GET /api/ticket-templates
 * is the one list of them, and which intents need a ticket), else "general".
 */
export function templateFor(intent, templates) {
  return intent && intent !== 'general' && templates && Object.hasOwn(templates, intent) ? intent : 'general';
}

let formCount = 0;

/**
 * The disposition form for a call. templates: GET /api/ticket-templates (or null: no ticket part).
 * Calls onSaved({ticket_id}) after the POST succeeded.
 */
export function renderDisposition(pop, { templates = null, notesLabel = 'Notes', onSaved = () => {} } = {}) {
  formCount += 1;
  const uid = `d${formCount}`;
  const intent = pop.ivr ? pop.ivr.intent : null;
  const key = templateFor(intent, templates);
  const template = templates ? templates[key] || null : null;
  const needsTicket = Boolean(template) && key !== 'general';

  const options = el('fieldset', { class: 'choices' },
    el('legend', { text: 'Outcome' }),
    DISPOSITIONS.map(([value, label]) => el('label', { class: 'choice' },
      el('input', { type: 'radio', name: `${uid}-disposition`, value, required: true, testid: `disposition-${value}` }),
      el('span', { text: label }))));

  const notes = el('textarea', {
    id: `${uid}-notes`, name: 'notes', rows: 4, maxlength: 2000, testid: 'disposition-notes',
    placeholder: 'What was agreed, what happens next. Never type a full card number.',
  });
  const counter = el('span', { class: 'counter muted', 'aria-live': 'polite', text: '0 / 2000' });
  notes.addEventListener('input', () => { counter.textContent = `${notes.value.length} / 2000`; });

  let ticketBox = null;
  let ticketToggle = null;
  if (template) {
    const fields = (template.fields || []).map((field) => {
      const id = `${uid}-t-${field.name}`;
      const long = /desc|detail|summary|note|reason/i.test(field.name);
      const input = el(long ? 'textarea' : 'input', {
        id, name: field.name, type: long ? null : 'text', rows: long ? 3 : null, required: Boolean(field.required),
        testid: `ticket-field-${field.name}`, autocomplete: 'off', maxlength: 500,
        inputmode: /last4|amount|digits/i.test(field.name) ? 'numeric' : null,
        data: { label: field.label || field.name },
      });
      return el('div', { class: 'field' },
        el('label', { for: id }, field.label || field.name,
          field.required ? el('span', { class: 'req', text: ' *' }) : el('span', { class: 'muted', text: ' (optional)' })),
        input);
    });
    ticketBox = el('fieldset', {
      class: 'ticket', testid: 'ticket-form', data: { template: key },
    }, el('legend', { text: `Ticket: ${template.title || key}` }), fields);
    if (!needsTicket) {
      ticketBox.hidden = true;
      ticketToggle = el('input', { type: 'checkbox', id: `${uid}-ticket`, testid: 'ticket-toggle' });
      ticketToggle.addEventListener('change', () => {
        ticketBox.hidden = !ticketToggle.checked;
        ticketBox.disabled = !ticketToggle.checked;
      });
      ticketBox.disabled = true;
    }
  }

  const error = el('p', { class: 'form-error', role: 'alert', testid: 'disposition-error', hidden: true });
  const submit = el('button', { type: 'submit', class: 'btn btn-primary btn-lg', testid: 'disposition-submit' },
    'Save disposition');
  const done = el('div', { class: 'confirmation', testid: 'disposition-confirmation', hidden: true, tabindex: -1 });

  const form = el('form', { class: 'disposition card', testid: 'disposition-form', novalidate: true },
    el('h2', { text: 'After the call' }),
    options,
    el('div', { class: 'field' }, el('label', { for: notes.id, text: notesLabel }), notes, counter),
    ticketToggle ? el('label', { class: 'check', for: ticketToggle.id }, ticketToggle,
      `Open a ticket (${template.title || 'general'})`) : null,
    needsTicket ? el('p', { class: 'hint', text: `A ${intentLabel(intent).toLowerCase()} call needs a ticket.` }) : null,
    ticketBox,
    error,
    el('div', { class: 'actions' }, submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const choice = form.querySelector(`input[name="${uid}-disposition"]:checked`);
    const missing = [];
    if (!choice) missing.push('an outcome');
    let ticket = null;
    if (ticketBox && !ticketBox.disabled) {
      const values = {};
      for (const input of ticketBox.querySelectorAll('input, textarea')) {
        values[input.name] = input.value.trim();
        if (input.required && !values[input.name]) missing.push(input.dataset.label);
      }
      ticket = { template: ticketBox.dataset.template, fields: values };
    }
    if (missing.length) {
      error.textContent = `Please fill in ${missing.join(', ')}.`;
      error.hidden = false;
      const first = choice
        ? [...ticketBox.querySelectorAll('[required]')].find((input) => !input.value.trim())
        : form.querySelector('input[type=radio]');
      if (first) first.focus();
      return;
    }
    submit.disabled = true;
    form.setAttribute('aria-busy', 'true');
    try {
      const result = await api(`/api/calls/${encodeURIComponent(pop.call_id)}/disposition`, {
        method: 'POST', quiet: true, body: { disposition: choice.value, notes: notes.value.trim(), ticket },
      });
      const ticketId = result && result.ticket_id;
      for (const control of form.querySelectorAll('input, textarea, select')) control.disabled = true;
      submit.hidden = true;
      fill(done, el('strong', { text: 'Saved.' }),
        ` ${DISPOSITIONS.find(([value]) => value === choice.value)[1]}`,
        ticketId ? el('span', {}, ' — ticket ', el('span', { class: 'mono', testid: 'ticket-id', text: ticketId }),
          ' opened.') : null);
      done.hidden = false;
      done.focus();
      onSaved(result || {});
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      submit.disabled = false;
    } finally {
      form.removeAttribute('aria-busy');
    }
  });
  form.append(done);
  return form;
}
