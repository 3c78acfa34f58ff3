// The audit log, newest first, filtered by action, actor or outcome, paged backwards.

import { dateTime } from '../format.js';
import { admin, badge, field, h, loadInto, table } from './ui.js';

const OUTCOME = { ok: 'ok', denied: 'danger', error: 'warn' };

export async function auditScreen(box) {
  const action = h('input', { name: 'action', placeholder: 'e.g. key.create' });
  const actor = h('input', { name: 'actor', placeholder: 'e.g. admin' });
  const outcome = h('select', { name: 'outcome' }, ['', 'ok', 'denied', 'error'].map((o) => h('option', { value: o }, o || 'any')));
  const list = h('div');
  const more = h('button.btn', { type: 'button', hidden: true }, 'Older entries');
  const form = h('form.toolbar', { 'aria-label': 'Filter the audit log' },
    field('Action', action), field('Actor', actor), field('Outcome', outcome),
    h('button.btn', { type: 'submit' }, 'Filter'));
  box.replaceChildren(form, list, more);
  let rows = [];
  const query = (before) => {
    const q = new URLSearchParams({ limit: '50' });
    if (action.value.trim()) q.set('action', action.value.trim());
    if (actor.value.trim()) q.set('actor', actor.value.trim());
    if (outcome.value) q.set('outcome', outcome.value);
    if (before) q.set('before_id', String(before));
    return admin(`/admin/api/audit?${q}`);
  };
  const render = () => table([
    { label: 'When', value: (e) => dateTime(e.ts_ms) },
    { label: 'Actor', value: (e) => h('code', {}, e.actor) },
    { label: 'Action', value: (e) => e.action },
    { label: 'Target', value: (e) => e.target || '—' },
    { label: 'Outcome', value: (e) => badge(e.outcome, OUTCOME[e.outcome]) },
    { label: 'Detail', value: (e) => (e.detail ? h('code.small', {}, JSON.stringify(e.detail)) : '—') },
  ], rows, { caption: 'Audit log', empty: 'No entries match.' });
  const load = async () => {
    await loadInto(list, () => query(null), (res) => {
      rows = res.data;
      more.hidden = res.data.length < 50;
      return render();
    }, { what: 'Audit log', endpoint: 'GET /admin/api/audit' });
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); load(); });
  more.addEventListener('click', async () => {
    const res = await query(rows[rows.length - 1].id);
    rows = rows.concat(res.data);
    more.hidden = res.data.length < 50;
    list.replaceChildren(render());
  });
  await load();
}
