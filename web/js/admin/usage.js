// Usage dashboards from the ledger (GET /admin/api/usage): cost and requests per day (uPlot
// charts), and the same period by model, by assistant and by key; the cache hit rate from the
// /metrics counters when the server has a response cache.

import uPlot from '/assets/vendor/uplot/uPlot.esm.js';
import { int, percent, usd } from '../format.js';
import { admin, field, h, isMissing, table, unavailable, errorBox } from './ui.js';

const DAY_MS = 86_400_000;

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

function chart(title, days, values, { money = false, color }) {
  const holder = h('figure.chart', {}, h('figcaption', {}, title));
  const xs = days.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const plot = new uPlot({
    width: 600,
    height: 220,
    scales: { x: { time: true } },
    axes: [{}, { values: (u, vals) => vals.map((v) => (money ? usd(Math.round(v)) : int(v))), size: 70 }],
    series: [
      {},
      { label: title, stroke: color, fill: `${color}33`, width: 2, value: (u, v) => (v === null ? '—' : money ? usd(Math.round(v)) : int(v)) },
    ],
  }, [xs, values], holder);
  // Follow the card's width (it is laid out only once the screen is shown).
  new ResizeObserver(() => {
    const width = Math.max(240, holder.clientWidth - 24);
    if (Math.abs(width - plot.width) > 2) plot.setSize({ width, height: 220 });
  }).observe(holder);
  // The numbers behind the chart, for screen readers and for reading exact values.
  holder.append(h('details.small', {}, h('summary', {}, 'Data'), table([
    { label: 'Day', value: (r) => r.day },
    { label: title, value: (r) => (money ? usd(r.v) : int(r.v)) },
  ], days.map((day, i) => ({ day, v: values[i] })))));
  return holder;
}

function breakdown(title, key, rows, label) {
  const total = rows.reduce((s, r) => s + r.cost_micros, 0) || 1;
  return h('section.card', { 'aria-label': title }, h('h2', {}, title), table([
    { label, value: (r) => (r[key] === null || r[key] === undefined ? h('span.muted', {}, key === 'key_id' ? 'no key' : 'none') : String(r[key])) },
    { label: 'Requests', value: (r) => int(r.requests) },
    { label: 'Errors', value: (r) => int(r.errors) },
    { label: 'Tokens', value: (r) => int(r.prompt_tokens + r.completion_tokens) },
    {
      label: 'Cost',
      value: (r) => {
        const bar = h('span.bar', { 'aria-hidden': 'true' });
        bar.style.width = `${Math.round((r.cost_micros / total) * 100)}%`;
        return h('span.bar-cell', {}, h('span.bar-track', {}, bar), usd(r.cost_micros));
      },
    },
  ], rows.slice().sort((a, b) => b.cost_micros - a.cost_micros), { caption: title }));
}

/** Hits and misses of the response cache from the Prometheus text, or null without a cache. */
export function cacheHitRate(metrics) {
  let hits = 0;
  let misses = 0;
  let seen = false;
  for (const line of metrics.split('\n')) {
    const m = line.match(/^\w*cache_lookups(?:_total)?\{([^}]*)\}\s+([0-9.e+]+)/);
    if (!m) continue;
    seen = true;
    if (/result="hit"/.test(m[1])) hits += Number(m[2]);
    else if (/result="miss"/.test(m[1])) misses += Number(m[2]);
  }
  return seen ? { hits, misses, rate: hits + misses ? hits / (hits + misses) : null } : null;
}

async function cacheCard() {
  const card = h('section.card', { 'aria-label': 'Cache' }, h('h2', {}, 'Response cache'));
  try {
    const text = await fetch('/metrics', { credentials: 'same-origin' }).then((r) => r.text());
    const c = cacheHitRate(text);
    if (!c) {
      card.append(h('p.muted', {}, 'Cache hit rate: not available on this server (no response cache).'));
    } else {
      card.append(h('p.big', {}, percent(c.rate)), h('p.muted', {}, `${int(c.hits)} hits, ${int(c.misses)} misses since this instance started`));
    }
  } catch {
    card.append(h('p.muted', {}, 'Cache hit rate: the metrics could not be read.'));
  }
  return card;
}

export async function usageScreen(box) {
  const days = h('select', {}, [7, 14, 30, 90].map((n) => h('option', { value: String(n) }, `Last ${n} days`)));
  const area = h('div.usage');
  box.replaceChildren(h('div.toolbar', {}, field('Period', days)), area);
  const load = async () => {
    const n = Number(days.value);
    const today = Date.now() - (Date.now() % DAY_MS);
    const from = isoDay(today - (n - 1) * DAY_MS);
    const to = isoDay(today);
    area.replaceChildren(h('p.muted', { role: 'status' }, 'Loading…'));
    const q = (group) => admin(`/admin/api/usage?from=${from}&to=${to}&group_by=${group}`);
    let perDay;
    let byModel;
    let byAssistant;
    let byKey;
    try {
      [perDay, byModel, byAssistant, byKey] = await Promise.all([q('day'), q('model'), q('assistant'), q('key')]);
    } catch (err) {
      area.replaceChildren(isMissing(err) ? unavailable('Usage dashboards', 'GET /admin/api/usage') : errorBox(err));
      area.append(await cacheCard());
      return;
    }
    const dayList = [];
    for (let t = Date.parse(`${from}T00:00:00Z`); t <= today; t += DAY_MS) dayList.push(isoDay(t));
    const byDay = new Map(perDay.data.map((r) => [r.day, r]));
    const cost = dayList.map((d) => (byDay.get(d) || {}).cost_micros || 0);
    const requests = dayList.map((d) => (byDay.get(d) || {}).requests || 0);
    const totalCost = cost.reduce((a, b) => a + b, 0);
    const totalRequests = requests.reduce((a, b) => a + b, 0);
    area.replaceChildren(
      h('div.stats', {},
        h('div.card.stat', {}, h('span.muted', {}, 'Cost'), h('strong.big', { dataset: { k: 'cost' } }, usd(totalCost))),
        h('div.card.stat', {}, h('span.muted', {}, 'Requests'), h('strong.big', { dataset: { k: 'requests' } }, int(totalRequests)))),
      h('div.charts', {},
        chart('Cost per day', dayList, cost, { money: true, color: '#1f6fd1' }),
        chart('Requests per day', dayList, requests, { color: '#2f8f4e' })),
      breakdown('By model', 'model', byModel.data, 'Model'),
      breakdown('By assistant', 'assistant', byAssistant.data, 'Assistant'),
      breakdown('By key', 'key_id', byKey.data, 'Key'),
      await cacheCard(),
    );
  };
  days.addEventListener('change', load);
  await load();
}
