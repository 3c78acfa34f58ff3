// Experiments on an assistant: define variants (prompt, model or temperature) with a traffic
// split, start, stop, read the results (positive-rating rate with its 95% confidence interval,
// cost, errors, latency), and promote the winner into the assistant's next version.

import { percent, usd, int } from '../format.js';
import { admin, badge, errorBox, field, h, loadInto, notice, table } from './ui.js';

const STATUS_KIND = { running: 'ok', scheduled: '', ended: 'warn', stopped: 'warn' };

export async function experimentsScreen(box, { params }) {
  const picker = h('select', { id: 'exp-assistant' });
  const area = h('div');
  box.replaceChildren(h('div.toolbar', {}, field('Assistant', picker)), area);
  let assistants;
  try {
    assistants = (await admin('/admin/api/assistants')).data;
  } catch (err) {
    await loadInto(area, () => Promise.reject(err), () => h('div'), { what: 'Experiments', endpoint: 'GET /admin/api/assistants/{slug}/experiments' });
    return;
  }
  if (!assistants.length) {
    area.replaceChildren(h('p.muted', {}, 'Create an assistant first: experiments compare variants of one.'));
    return;
  }
  for (const a of assistants) picker.append(h('option', { value: a.slug }, a.name));
  picker.value = params.get('assistant') || assistants[0].slug;
  const show = () => assistantExperiments(area, assistants.find((a) => a.slug === picker.value));
  picker.addEventListener('change', () => {
    window.history.replaceState(null, '', `#/experiments?assistant=${encodeURIComponent(picker.value)}`);
    show();
  });
  await show();
}

async function assistantExperiments(area, assistant) {
  const list = h('div');
  const panel = h('div');
  const base = `/admin/api/assistants/${encodeURIComponent(assistant.slug)}/experiments`;
  area.replaceChildren(
    h('p', {}, h('button.btn.btn-primary', { type: 'button', onClick: () => create(panel, assistant, base, refresh) }, 'New experiment')),
    panel,
    list,
  );
  const refresh = () => loadInto(list, () => admin(base), (res) => table([
    { label: 'Experiment', value: (x) => h('span', {}, h('strong', {}, x.name), h('br'), h('span.small.muted', {}, `#${x.id}`)) },
    { label: 'Status', value: (x) => badge(x.status, STATUS_KIND[x.status]) },
    { label: 'Split', value: (x) => x.variants.map((v) => `${v.name} ${v.weight}`).join(' · ') },
    { label: 'Started', value: (x) => new Date(x.starts_at).toLocaleString() },
    { label: 'Promoted', value: (x) => x.promoted_variant || '—' },
    {
      label: 'Actions',
      value: (x) => h('div.actions', {},
        h('button.btn.btn-small', { type: 'button', onClick: () => results(panel, x, refresh) }, 'Results'),
        x.status === 'running' || x.status === 'scheduled'
          ? h('button.btn.btn-small.btn-danger', { type: 'button', onClick: () => stop(panel, x, null, refresh) }, 'Stop') : null),
    },
  ], res.data, { caption: 'Experiments', empty: 'No experiments on this assistant yet.' }),
  { what: 'Experiments', endpoint: 'GET /admin/api/assistants/{slug}/experiments' });
  await refresh();
}

function variantRow(i, v = {}) {
  const row = h('fieldset.variant', {},
    h('legend', {}, `Variant ${i + 1}`),
    h('div.grid', {},
      field('Name', h('input', { name: 'name', value: v.name || String.fromCharCode(65 + i), required: true })),
      field('Weight', h('input', { name: 'weight', type: 'number', min: '0', value: v.weight ?? 1 })),
      field('Model (optional)', h('input', { name: 'model', value: v.model || '' })),
      field('Temperature (optional)', h('input', { name: 'temperature', type: 'number', step: '0.1', min: '0', max: '2' }))),
    field('System prompt (optional; empty keeps the assistant\'s)', h('textarea', { name: 'system_prompt', rows: 3 })));
  return row;
}

function create(panel, assistant, base, refresh) {
  const name = h('input', { name: 'exp-name', required: true, value: `${assistant.slug}-test` });
  const variants = h('div.variants', {}, variantRow(0), variantRow(1));
  const status = h('div');
  const form = h('form.card.editor', { 'aria-label': 'New experiment' },
    h('h2', {}, `New experiment on ${assistant.name}`),
    field('Name', name),
    variants,
    h('p', {}, h('button.btn.btn-small', {
      type: 'button',
      onClick: () => variants.append(variantRow(variants.children.length)),
    }, 'Add a variant')),
    status,
    h('div.actions', {},
      h('button.btn.btn-primary', { type: 'submit' }, 'Start experiment'),
      h('button.btn', { type: 'button', onClick: () => panel.replaceChildren() }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const specs = [...variants.children].map((fs) => {
      const get = (n) => fs.querySelector(`[name="${n}"]`).value.trim();
      const v = { name: get('name'), weight: Number(get('weight') || 1) };
      if (get('model')) v.model = get('model');
      if (get('temperature')) v.temperature = Number(get('temperature'));
      if (get('system_prompt')) v.system_prompt = get('system_prompt');
      return v;
    });
    try {
      const x = await admin(base, { method: 'POST', body: { name: name.value.trim(), variants: specs } });
      panel.replaceChildren();
      await refresh();
      notice(panel, `Experiment “${x.name}” is ${x.status}.`);
    } catch (err) {
      status.replaceChildren(errorBox(err, 'Not started'));
    }
  });
  panel.replaceChildren(form);
  name.focus();
}

async function stop(panel, x, promote, refresh) {
  const verb = promote ? `Stop and promote ${promote}` : 'Stop';
  if (!window.confirm(`${verb} “${x.name}”?`)) return;
  try {
    await admin(`/admin/api/experiments/${x.id}/stop`, { method: 'POST', body: promote ? { promote } : {} });
    await refresh();
    notice(panel, promote ? `Promoted ${promote}: the assistant has a new version.` : `Stopped “${x.name}”.`);
  } catch (err) {
    panel.replaceChildren(errorBox(err, 'Not stopped'));
  }
}

function interval(r) {
  if (r.positive_rate === null || r.positive_rate === undefined) return 'no ratings yet';
  return `${percent(r.positive_rate)} (95% CI ${percent(r.ci95_low)}–${percent(r.ci95_high)})`;
}

async function results(panel, x, refresh) {
  const body = h('div');
  panel.replaceChildren(h('section.card.results', { 'aria-label': `Results of ${x.name}` },
    h('h2', {}, `Results: ${x.name}`), body,
    h('button.btn', { type: 'button', onClick: () => panel.replaceChildren() }, 'Close')));
  await loadInto(body, () => admin(`/admin/api/experiments/${x.id}/results`), (r) => h('div', {},
    h('p.muted.small', {}, `From ${new Date(r.from).toLocaleString()} to ${new Date(r.to).toLocaleString()}`),
    table([
      { label: 'Variant', value: (v) => h('strong', {}, v.name) },
      { label: 'Conversations', value: (v) => int(v.conversations) },
      { label: 'Messages', value: (v) => int(v.messages) },
      { label: 'Positive ratings', value: (v) => `${int(v.ratings.positive)} / ${int(v.ratings.total)}` },
      { label: 'Positive rate', value: (v) => interval(v.ratings), className: 'ci' },
      { label: 'Cost / message', value: (v) => (v.cost_per_message_micros === null ? '—' : usd(v.cost_per_message_micros)) },
      { label: 'Errors', value: (v) => percent(v.error_rate) },
      { label: 'p50 / p95', value: (v) => `${v.latency_p50_ms ?? '—'} / ${v.latency_p95_ms ?? '—'} ms` },
      {
        label: 'Promote',
        value: (v) => (x.status === 'running' || x.status === 'scheduled' || x.status === 'ended') && !x.promoted_variant
          ? h('button.btn.btn-small', { type: 'button', onClick: () => stop(panel, x, v.name, refresh), 'aria-label': `Promote ${v.name}` }, 'Promote')
          : '—',
      },
    ], r.variants, { caption: 'Variants' }),
    r.comparisons.length ? h('ul.comparisons', {}, r.comparisons.map((c) => h('li', {},
      `${c.variant} vs ${c.baseline}: `,
      c.rate_difference === null ? 'not enough ratings' : `${(c.rate_difference * 100).toFixed(1)} points, p = ${c.p_value === null ? '—' : c.p_value.toFixed(3)} `,
      c.significant ? h('span.badge.badge-ok', {}, 'significant') : h('span.badge', {}, 'not significant')))) : null,
  ), { what: 'Experiment results', endpoint: 'GET /admin/api/experiments/{id}/results' });
}
