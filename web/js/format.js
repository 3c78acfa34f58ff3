// Numbers for people: money from integer micro-dollars (tiny amounts keep their significant
// digits instead of rounding to $0.00), counts, sizes and dates.

/** $12.34 · $0.1234 · $0.000026 · $0.00 — from integer micro-USD, without float rounding. */
export function usd(micros) {
  const m = Math.trunc(Number(micros) || 0);
  const sign = m < 0 ? '-' : '';
  const abs = Math.abs(m);
  const whole = Math.floor(abs / 1_000_000);
  let frac = String(abs % 1_000_000).padStart(6, '0');
  // Two decimals from a dollar up, four from a cent up, all six below a cent.
  const keep = abs >= 1_000_000 ? 2 : abs >= 10_000 ? 4 : 6;
  frac = frac.slice(0, keep);
  while (frac.length > 2 && frac.endsWith('0')) frac = frac.slice(0, -1);
  return `${sign}$${whole.toLocaleString('en-US')}.${frac}`;
}

/** The exact value for a tooltip: "26 micro-dollars ($0.000026)". */
export function usdExact(micros) {
  return `${Number(micros).toLocaleString('en-US')} micro-dollars (${usd(micros)})`;
}

export function int(n) {
  return Number(n || 0).toLocaleString('en-US');
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

export function dateTime(ms) {
  if (ms === null || ms === undefined || ms === '') return '—';
  const d = typeof ms === 'number' ? new Date(ms) : new Date(String(ms));
  return Number.isNaN(d.getTime()) ? String(ms) : d.toLocaleString();
}

export function shortTime(ms) {
  const d = new Date(ms);
  const today = new Date();
  return d.toDateString() === today.toDateString()
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString();
}

export function percent(x) {
  return x === null || x === undefined ? '—' : `${(x * 100).toFixed(1)}%`;
}
