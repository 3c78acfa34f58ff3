// Assistants: the list, create and edit (every save is a new version), a live token count of
// the system prompt against the lint limit, the version history, and enable/disable.

import { usd } from '../format.js';
import { admin, badge, errorBox, field, h, isMissing, loadInto, notice, table } from './ui.js';

const ENDPOINT = '/admin/api/assistants';
const SPEC_KEYS = ['slug', 'name', 'description', 'system_prompt', 'model', 'temperature', 'top_p', 'max_tokens',
  'summary_model', 'context_window', 'conversation_ceiling_micros', 'daily_ceiling_micros', 'at_ceiling',
  'downgrade_model', 'enabled'];

/** The definition part of an assistant view (the API refuses unknown fields). */
export function specOf(view) {
  const spec = {};
  for (const k of SPEC_KEYS) if (view[k] !== undefined && view[k] !== null) spec[k] = view[k];
  return spec;
}

const dollarsToMicros = (v) => (v === '' ? undefined : Math.round(Number(v) * 1_000_000));
const microsToDollars = (m) => (m === undefined || m === null ? '' : String(m / 1_000_000));

async function modelNames() {
  try {
    const s = await fetch('/web/api/session', { credentials: 'same-origin' }).then((r) => r.json());
    return s.models || [];
  } catch {
    return [];
  }
}

export async function assistantsScreen(box) {
  const list = h('div');
  const editor = h('div');
  box.replaceChildren(
    h('p', {}, h('button.btn.btn-primary', { type: 'button', onClick: () => edit(editor, null, refresh) }, 'New assistant')),
    editor,
    list,
  );
  const refresh = () => loadInto(list, () => admin(ENDPOINT), (res) => render(res.data, editor, refresh),
    { what: 'Assistants', endpoint: 'GET /admin/api/assistants' });
  await refresh();
}

function render(rows, editor, refresh) {
  return table([
    { label: 'Assistant', value: (a) => h('span', {}, h('strong', {}, a.name), h('br'), h('code.small', {}, a.slug)) },
    { label: 'Model', value: (a) => h('code', {}, a.model) },
    { label: 'Version', value: (a) => `v${a.version}` },
    { label: 'Status', value: (a) => (a.enabled === false ? badge('disabled', 'warn') : badge('enabled', 'ok')) },
    {
      label: 'Actions',
      value: (a) => h('div.actions', {},
        h('button.btn.btn-small', { type: 'button', onClick: () => edit(editor, a, refresh), 'aria-label': `Edit ${a.name}` }, 'Edit'),
        h('button.btn.btn-small', { type: 'button', onClick: () => history(editor, a), 'aria-label': `Version history of ${a.name}` }, 'History'),
        h('button.btn.btn-small', {
          type: 'button',
          'aria-label': `${a.enabled === false ? 'Enable' : 'Disable'} ${a.name}`,
          onClick: async (e) => {
            e.target.disabled = true;
            try {
              await admin(`${ENDPOINT}/${encodeURIComponent(a.slug)}`, { method: 'PUT', body: { ...specOf(a), enabled: a.enabled === false } });
              await refresh();
            } catch (err) {
              editor.replaceChildren(errorBox(err, 'Could not change the status'));
              e.target.disabled = false;
            }
          },
        }, a.enabled === false ? 'Enable' : 'Disable'),
        h('a.btn.btn-small', { href: `#/experiments?assistant=${encodeURIComponent(a.slug)}` }, 'Experiments')),
    },
  ], rows, { caption: 'Assistants', empty: 'No assistants yet. Create one to give people a ready-made helper.' });
}

/** The live token counter: counts on the server (the encoding of the model that will read it). */
function tokenCounter(promptEl, modelEl) {
  const out = h('p.token-count.small', { 'aria-live': 'polite', role: 'status' }, '—');
  let timer = null;
  let seq = 0;
  const count = async () => {
    seq += 1;
    const mine = seq;
    try {
      const r = await admin('/admin/api/tokens', { method: 'POST', body: { text: promptEl.value, model: modelEl.value || undefined } });
      if (mine !== seq) return;
      const over = r.limit !== null && r.limit !== undefined && r.tokens > r.limit;
      out.textContent = r.limit ? `${r.tokens.toLocaleString()} / ${r.limit.toLocaleString()} tokens (${r.encoding})${over ? ' — over the lint limit' : ''}`
        : `${r.tokens.toLocaleString()} tokens (${r.encoding})`;
      out.className = `token-count small ${over ? 'over' : ''}`;
      out.dataset.tokens = String(r.tokens);
    } catch (err) {
      out.textContent = isMissing(err) ? 'Token counting is not available on this server.' : 'Could not count tokens.';
    }
  };
  const schedule = () => { clearTimeout(timer); timer = setTimeout(count, 250); };
  promptEl.addEventListener('input', schedule);
  modelEl.addEventListener('change', schedule);
  count();
  return out;
}

async function edit(box, current, refresh) {
  const a = current || { enabled: true, at_ceiling: 'refuse' };
  const models = await modelNames();
  const input = (name, value, extra = {}) => h('input', { name, value: value ?? '', ...extra });
  const slug = input('slug', a.slug, { required: true, pattern: '[a-z0-9_-]{1,64}', readOnly: Boolean(current) });
  const name = input('name', a.name, { required: true, maxLength: 200 });
  const description = input('description', a.description);
  const model = input('model', a.model, { required: true, list: 'model-names' });
  const prompt = h('textarea', { name: 'system_prompt', rows: 8, value: a.system_prompt || '' });
  const temperature = input('temperature', a.temperature, { type: 'number', step: '0.1', min: '0', max: '2' });
  const maxTokens = input('max_tokens', a.max_tokens, { type: 'number', min: '1' });
  const convCeiling = input('conversation_ceiling', microsToDollars(a.conversation_ceiling_micros), { type: 'number', step: '0.000001', min: '0' });
  const dailyCeiling = input('daily_ceiling', microsToDollars(a.daily_ceiling_micros), { type: 'number', step: '0.000001', min: '0' });
  const atCeiling = h('select', { name: 'at_ceiling' }, h('option', { value: 'refuse' }, 'Refuse'), h('option', { value: 'downgrade' }, 'Use the downgrade model'));
  atCeiling.value = a.at_ceiling || 'refuse';
  const downgrade = input('downgrade_model', a.downgrade_model, { list: 'model-names' });
  const enabled = h('input', { type: 'checkbox', name: 'enabled', checked: a.enabled !== false });
  const force = h('input', { type: 'checkbox', name: 'force' });
  const status = h('div');
  const form = h('form.card.editor', { 'aria-label': current ? `Edit ${a.name}` : 'New assistant' },
    h('h2', {}, current ? `Edit ${a.name} (v${a.version})` : 'New assistant'),
    h('datalist', { id: 'model-names' }, models.map((m) => h('option', { value: m }))),
    h('div.grid', {},
      field('Slug', slug, 'Clients use model "assistant/<slug>".'),
      field('Name', name),
      field('Model', model, 'A model alias, provider/model or tier.'),
      field('Description', description)),
    field('System prompt', prompt),
    tokenCounter(prompt, model),
    h('div.grid', {},
      field('Temperature', temperature),
      field('Max output tokens', maxTokens),
      field('Conversation ceiling (USD)', convCeiling),
      field('Daily ceiling (USD)', dailyCeiling),
      field('At a ceiling', atCeiling),
      field('Downgrade model', downgrade)),
    h('label.check', {}, enabled, ' Enabled'),
    h('label.check', {}, force, ' Save even if the prompt is over the token limit'),
    status,
    h('div.actions', {},
      h('button.btn.btn-primary', { type: 'submit' }, current ? 'Save new version' : 'Create'),
      h('button.btn', { type: 'button', onClick: () => box.replaceChildren() }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const num = (el) => (el.value === '' ? undefined : Number(el.value));
    const spec = {
      slug: slug.value.trim(),
      name: name.value.trim(),
      description: description.value.trim() || undefined,
      model: model.value.trim(),
      system_prompt: prompt.value,
      temperature: num(temperature),
      max_tokens: num(maxTokens),
      conversation_ceiling_micros: dollarsToMicros(convCeiling.value),
      daily_ceiling_micros: dollarsToMicros(dailyCeiling.value),
      at_ceiling: atCeiling.value,
      downgrade_model: downgrade.value.trim() || undefined,
      enabled: enabled.checked,
    };
    if (current) {
      for (const k of ['top_p', 'summary_model', 'context_window']) if (current[k] !== undefined) spec[k] = current[k];
    }
    const q = force.checked ? '?force=true' : '';
    try {
      const saved = current
        ? await admin(`${ENDPOINT}/${encodeURIComponent(current.slug)}${q}`, { method: 'PUT', body: spec })
        : await admin(`${ENDPOINT}${q}`, { method: 'POST', body: spec });
      box.replaceChildren();
      await refresh();
      notice(box, `Saved ${saved.name} as version ${saved.version}.`);
    } catch (err) {
      status.replaceChildren(errorBox(err, 'Not saved'));
    }
  });
  box.replaceChildren(form);
  name.focus();
}

async function history(box, a) {
  const panel = h('div');
  box.replaceChildren(h('section.card', { 'aria-label': `History of ${a.name}` },
    h('h2', {}, `Version history: ${a.name}`),
    panel,
    h('button.btn', { type: 'button', onClick: () => box.replaceChildren() }, 'Close')));
  await loadInto(panel, () => admin(`${ENDPOINT}/${encodeURIComponent(a.slug)}/versions`), (res) => table([
    { label: 'Version', value: (v) => `v${v.version}` },
    { label: 'Saved', value: (v) => new Date(v.created_at).toLocaleString() },
    { label: 'Model', value: (v) => h('code', {}, v.spec.model || '') },
    { label: 'Ceilings', value: (v) => [v.spec.conversation_ceiling_micros, v.spec.daily_ceiling_micros].map((m) => (m ? usd(m) : '—')).join(' / ') },
    { label: 'Definition', value: (v) => h('details', {}, h('summary', {}, 'Show'), h('pre.json', {}, JSON.stringify(v.spec, null, 2))) },
  ], res.data.slice().reverse(), { caption: 'Versions' }), { what: 'Version history', endpoint: 'GET /admin/api/assistants/{slug}/versions' });
}

