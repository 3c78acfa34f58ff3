// The admin console: sign in with the admin key (the server answers with an HttpOnly session
// cookie and a CSRF token), then one screen per hash route. Each screen asks the server for
// what it shows and says so when this server does not have that API.

import { api, ApiError } from '../api.js';
import { describeError } from '../errors.js';
import { registerServiceWorker, watchConnection } from '../offline.js';
import { admin, h, setCsrf, whenSignedOut } from './ui.js';
import { assistantsScreen } from './assistants.js';
import { experimentsScreen } from './experiments.js';
import { usageScreen } from './usage.js';
import { keysScreen } from './keys.js';
import { healthScreen } from './health.js';
import { auditScreen } from './audit.js';

const $ = (id) => document.getElementById(id);
const SCREENS = {
  assistants: ['Assistants', assistantsScreen],
  experiments: ['Experiments', experimentsScreen],
  usage: ['Usage', usageScreen],
  keys: ['API keys', keysScreen],
  health: ['Health', healthScreen],
  audit: ['Audit log', auditScreen],
};

let expiryTimer = null;

function showSignIn(message) {
  clearTimeout(expiryTimer);
  setCsrf(null);
  $('console').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  $('admin-key').focus();
}

function signedIn(session) {
  setCsrf(session.csrf_token);
  $('signin').hidden = true;
  $('console').hidden = false;
  $('admin-key').value = '';
  clearTimeout(expiryTimer);
  if (session.expires_at_ms) {
    const left = session.expires_at_ms - Date.now();
    expiryTimer = setTimeout(() => showSignIn('Your session has expired. Sign in again.'), Math.max(0, Math.min(left, 2 ** 31 - 1)));
  }
  route();
}

async function route() {
  if ($('console').hidden) return;
  const name = (window.location.hash.match(/^#\/(\w+)/) || [])[1] || 'assistants';
  const [title, render] = SCREENS[name] || SCREENS.assistants;
  for (const a of $('admin-nav').querySelectorAll('a')) {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${title} · Gatehouse admin`;
  const main = $('admin-main');
  const body = h('div.screen-body');
  main.replaceChildren(h('h1', {}, title), body);
  main.focus({ preventScroll: true });
  try {
    await render(body, { params: new URLSearchParams(window.location.hash.split('?')[1] || '') });
  } catch (err) {
    body.replaceChildren(h('div.alert', { role: 'alert' }, h('strong', {}, 'This screen failed'), h('p', {}, String(err && err.message))));
  }
}

async function main() {
  watchConnection($('offline-banner'));
  registerServiceWorker($('update-banner'), $('update-reload'));
  whenSignedOut(() => showSignIn('Your session ended. Sign in again.'));
  window.addEventListener('hashchange', route);
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const button = e.target.querySelector('button');
    button.disabled = true;
    try {
      signedIn(await api('/admin/api/session', { method: 'POST', body: { key: $('admin-key').value } }));
    } catch (err) {
      showSignIn(err instanceof ApiError && err.status === 401 ? 'That is not the admin key.' : describeError(err).detail || err.message);
    } finally {
      button.disabled = false;
    }
  });
  $('signout').addEventListener('click', async () => {
    try {
      await admin('/admin/api/session', { method: 'DELETE' });
    } catch {
      // Signed out already (or the server is unreachable): the cookie is dropped either way.
    }
    showSignIn('You are signed out.');
  });
  try {
    signedIn(await api('/admin/api/session'));
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) showSignIn(err.message);
    else showSignIn(err instanceof ApiError && err.status === 401 ? '' : `Gatehouse could not be reached (${describeError(err).title}).`);
  }
  document.body.dataset.ready = 'true';
}

main();
