// API keys: the list with limits and budgets, create (the secret is shown once, here, and
// never again), and revoke.

import { dateTime, int, usd } from '../format.js';
import { copyText } from '../markdown.js';
import { admin, badge, errorBox, field, h, loadInto, table } from './ui.js';

const ENDPOINT = '/admin/api/keys';

export async function keysScreen(box) {
  const panel = h('div');
  const list = h('div');
  const showRevoked = h('input', { type: 'checkbox', id: 'show-revoked' });
  box.replaceChildren(
    h('div.toolbar', {},
      h('button.btn.btn-primary', { type: 'button', onClick: () => create(panel, refresh) }, 'New key'),
      h('label.check', {}, showRevoked, ' Show revoked keys')),
    panel,
    list,
  );
  const refresh = () => loadInto(list, () => admin(`${ENDPOINT}${showRevoked.checked ? '?include_revoked=true' : ''}`),
    (rows) => render(rows, panel, refresh), { what: 'API keys', endpoint: 'GET /admin/api/keys' });
  showRevoked.addEventListener('change', refresh);
  await refresh();
}

const limit = (v, unit) => (v === null || v === undefined ? '—' : `${int(v)} ${unit}`);

function render(rows, panel, refresh) {
  return table([
    { label: 'Key', value: (k) => h('span', {}, h('strong', {}, k.name), h('br'), h('code.small', {}, `${k.prefix}…`)) },
    { label: 'Owner', value: (k) => [k.owner, k.team].filter(Boolean).join(' / ') || '—' },
    { label: 'Limits', value: (k) => `${limit(k.rpm, 'req/min')} · ${limit(k.tpm, 'tok/min')} · ${limit(k.max_concurrent, 'at once')}` },
    { label: 'Budgets', value: (k) => `${k.daily_budget_micros ? `${usd(k.daily_budget_micros)}/day` : '—'} · ${k.monthly_budget_micros ? `${usd(k.monthly_budget_micros)}/month` : '—'}` },
    { label: 'Models', value: (k) => (k.allowed_models ? k.allowed_models.join(', ') : 'all') },
    { label: 'Created', value: (k) => dateTime(k.created_at_ms) },
    { label: 'Status', value: (k) => (k.revoked_at_ms ? badge('revoked', 'danger') : k.expires_at_ms && k.expires_at_ms < Date.now() ? badge('expired', 'warn') : badge('active', 'ok')) },
    {
      label: 'Actions',
      value: (k) => (k.revoked_at_ms ? '—' : h('button.btn.btn-small.btn-danger', {
        type: 'button',
        'aria-label': `Revoke ${k.name}`,
        onClick: async () => {
          if (!window.confirm(`Revoke “${k.name}” (${k.prefix}…)? Requests with it fail at once.`)) return;
          try {
            await admin(`${ENDPOINT}/${k.id}/revoke`, { method: 'POST' });
            await refresh();
          } catch (err) {
            panel.replaceChildren(errorBox(err, 'Not revoked'));
          }
        },
      }, 'Revoke')),
    },
  ], rows, { caption: 'API keys', empty: 'No API keys. Without keys, Gatehouse runs in open mode on a loopback address only.' });
}

function create(panel, refresh) {
  const num = (name, extra = {}) => h('input', { name, type: 'number', min: '0', ...extra });
  const name = h('input', { name: 'name', required: true, maxLength: 200 });
  const owner = h('input', { name: 'owner' });
  const team = h('input', { name: 'team' });
  const models = h('input', { name: 'allowed_models', placeholder: 'all' });
  const rpm = num('rpm');
  const tpm = num('tpm');
  const conc = num('max_concurrent');
  const daily = num('daily_budget', { step: '0.01' });
  const monthly = num('monthly_budget', { step: '0.01' });
  const status = h('div');
  const form = h('form.card.editor', { 'aria-label': 'New API key' },
    h('h2', {}, 'New API key'),
    h('div.grid', {},
      field('Name', name), field('Owner', owner), field('Team', team),
      field('Allowed models', models, 'Comma-separated aliases; empty for all.'),
      field('Requests per minute', rpm), field('Tokens per minute', tpm), field('Concurrent requests', conc),
      field('Daily budget (USD)', daily), field('Monthly budget (USD)', monthly)),
    status,
    h('div.actions', {},
      h('button.btn.btn-primary', { type: 'submit' }, 'Create key'),
      h('button.btn', { type: 'button', onClick: () => panel.replaceChildren() }, 'Cancel')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = (el) => (el.value === '' ? undefined : Number(el.value));
    const micros = (el) => (el.value === '' ? undefined : Math.round(Number(el.value) * 1_000_000));
    const body = {
      name: name.value.trim(),
      owner: owner.value.trim() || undefined,
      team: team.value.trim() || undefined,
      allowed_models: models.value.trim() ? models.value.split(',').map((s) => s.trim()).filter(Boolean) : undefined,
      rpm: n(rpm),
      tpm: n(tpm),
      max_concurrent: n(conc),
      daily_budget_micros: micros(daily),
      monthly_budget_micros: micros(monthly),
    };
    try {
      const created = await admin(ENDPOINT, { method: 'POST', body });
      showOnce(panel, created);
      await refresh();
    } catch (err) {
      status.replaceChildren(errorBox(err, 'Not created'));
    }
  });
  panel.replaceChildren(form);
  name.focus();
}

function showOnce(panel, created) {
  const secret = h('code.secret', { id: 'new-key-secret' }, created.key);
  const copy = h('button.btn.btn-small', { type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => { copy.textContent = (await copyText(created.key)) ? 'Copied' : 'Copy failed'; });
  const card = h('section.card.once', { role: 'alert', 'aria-label': 'New key' },
    h('h2', {}, `Key “${created.name}” created`),
    h('p', {}, h('strong', {}, 'Copy it now: it is shown only once.'), ' Gatehouse keeps only a hash.'),
    h('p.secret-row', {}, secret, copy),
    h('button.btn', { type: 'button', onClick: () => panel.replaceChildren() }, 'I have stored it'));
  panel.replaceChildren(card);
  copy.focus();
}
