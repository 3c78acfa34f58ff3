// Health: readiness (database, ledger queue depth) from /ready and every deployment's circuit
// state, in-flight calls, latency and last error from /admin/api/deployments; refreshes every
// ten seconds while shown.

import { int } from '../format.js';
import { admin, badge, errorBox, h, isMissing, table, unavailable } from './ui.js';

const KIND = { healthy: 'ok', closed: 'ok', degraded: 'warn', half_open: 'warn', 'half-open': 'warn', unhealthy: 'danger', open: 'danger' };

async function ready() {
  const resp = await fetch('/ready', { credentials: 'same-origin' });
  return resp.json();
}

export async function healthScreen(box) {
  const area = h('div');
  const stamp = h('p.muted.small', { role: 'status' });
  box.replaceChildren(area, stamp);
  const load = async () => {
    let r;
    let deps;
    let depsError = null;
    try {
      r = await ready();
    } catch (err) {
      area.replaceChildren(errorBox(err, 'Readiness could not be read'));
      return;
    }
    try {
      deps = await admin('/admin/api/deployments');
    } catch (err) {
      depsError = err;
      deps = r.deployments || [];
    }
    area.replaceChildren(...[
      h('div.stats', {},
        h('div.card.stat', {}, h('span.muted', {}, 'Status'), h('strong.big', {}, badge(r.status, KIND[r.status]))),
        h('div.card.stat', {}, h('span.muted', {}, `Database (${r.database.backend})`),
          h('strong', {}, badge(r.database.status, KIND[r.database.status])), h('span.small.muted', {}, `${r.database.latency_ms} ms`)),
        h('div.card.stat', {}, h('span.muted', {}, 'Ledger queue depth'),
          h('strong.big', { dataset: { k: 'queue-depth' } }, int(r.ledger.queue_depth)),
          h('span.small.muted', {}, `of ${int(r.ledger.queue_capacity)} · ${int(r.ledger.dropped)} dropped`))),
      h('h2', {}, 'Deployments'),
      depsError && isMissing(depsError) ? unavailable('Deployments', 'GET /admin/api/deployments') : null,
      depsError && !isMissing(depsError) ? errorBox(depsError) : null,
      table([
        { label: 'Model', value: (d) => h('code', {}, d.model) },
        { label: 'Deployment', value: (d) => h('code', {}, d.deployment) },
        { label: 'Circuit', value: (d) => h('span', {}, badge(d.circuit, KIND[d.circuit]), d.cooling_down ? ' ' : null, d.cooling_down ? badge('cooling down', 'warn') : null) },
        { label: 'In flight', value: (d) => int(d.in_flight) },
        { label: 'Latency', value: (d) => `${Math.round(d.latency_ewma_ms)} ms` },
        { label: 'Last error', value: (d) => (d.last_error ? `${d.last_error} (${d.last_error_age_secs}s ago)` : '—') },
      ], deps, { caption: 'Deployments', empty: 'No deployments.' }),
    ].filter(Boolean));
    stamp.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  };
  await load();
  const timer = setInterval(() => {
    if (!box.isConnected) { clearInterval(timer); return; }
    load();
  }, 10000);
}
