// Building blocks of the console's screens: an element builder that only ever sets text (never
// HTML), tables, form fields, notices, and the admin API client (the session cookie goes
// along; writes carry the CSRF token; a 401 sends the reader back to sign-in).

import { api, ApiError } from '../api.js';
import { describeError } from '../errors.js';

let csrfToken = null;
let onSignedOut = () => {};

export function setCsrf(token) {
  csrfToken = token;
}

export function whenSignedOut(fn) {
  onSignedOut = fn;
}

/** The admin API: like api(), plus the CSRF header on writes and sign-in on 401. */
export async function admin(path, options = {}) {
  const method = (options.method || 'GET').toUpperCase();
  const headers = { ...(options.headers || {}) };
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  try {
    return await api(path, { ...options, method, headers });
  } catch (err) {
    if (err instanceof ApiError && err.status === 401 && !path.endsWith('/session')) onSignedOut();
    throw err;
  }
}

/** Whether an error means the endpoint does not exist on this server (an older build). */
export function isMissing(err) {
  return err instanceof ApiError && (err.status === 404 || err.status === 405) && /route/i.test(err.message);
}

/** h('tag.class', {attr: value, onClick: fn}, child, …): children are nodes or text. */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** A table: columns [{label, value: row => node|text, className}]. */
export function table(columns, rows, { caption, empty = 'Nothing yet.' } = {}) {
  if (!rows.length) return h('p.muted', {}, empty);
  return h('div.table-wrap', {},
    h('table', {},
      caption ? h('caption.visually-hidden', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c.label)))),
      h('tbody', {}, rows.map((r) => h('tr', {}, columns.map((c) => h(`td${c.className ? `.${c.className}` : ''}`, {}, c.value(r))))))));
}

let fieldSeq = 0;

/** A labelled input; `control` is an element (input, select, textarea). */
export function field(label, control, hint) {
  fieldSeq += 1;
  if (!control.id) control.id = `f-${fieldSeq}`;
  const hintEl = hint ? h('p.hint.muted.small', { id: `${control.id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div.field', {}, h('label', { for: control.id }, label), control, hintEl);
}

export function errorBox(err, prefix = '') {
  const info = describeError(err instanceof ApiError ? err : new ApiError({ message: String(err) }));
  const text = err instanceof ApiError && err.message ? err.message : info.detail;
  return h('div.alert', { role: 'alert' }, h('strong', {}, prefix || info.title), h('p', {}, text),
    err && err.param ? h('p.small', {}, `Field: ${err.param}`) : null);
}

export function unavailable(what, endpoint) {
  return h('div.card.unavailable', { role: 'status' },
    h('h2', {}, `${what}: not available on this server`),
    h('p', {}, 'This Gatehouse build does not have ', h('code', {}, endpoint), '. It comes with a newer version.'));
}

/** Run `load()`, showing a spinner text, then `render(result)` or the error into `box`. */
export async function loadInto(box, load, render, { what, endpoint } = {}) {
  box.replaceChildren(h('p.muted', { role: 'status' }, 'Loading…'));
  try {
    const result = await load();
    box.replaceChildren(render(result));
  } catch (err) {
    box.replaceChildren(isMissing(err) && what ? unavailable(what, endpoint) : errorBox(err));
  }
}

export function badge(text, kind = '') {
  return h(`span.badge${kind ? `.badge-${kind}` : ''}`, {}, text);
}

/** A dialog-like panel; resolves when closed. */
export function notice(box, text, kind = 'ok') {
  const el = h(`p.notice.badge-${kind}`, { role: 'status' }, text);
  box.prepend(el);
  setTimeout(() => el.remove(), 6000);
}
