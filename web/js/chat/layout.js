// The page around the chat: the conversation drawer on small screens (with focus moved in and
// back out), and the invite-code gate when the chat needs one.

import { api, setBearer } from '../api.js';
import { describeError } from '../errors.js';

const $ = (id) => document.getElementById(id);

export function openDrawer() {
  $('sidebar').classList.add('open');
  $('scrim').hidden = false;
  $('menu-toggle').setAttribute('aria-expanded', 'true');
  const first = $('sidebar').querySelector('button');
  if (first) first.focus();
}

export function closeDrawer() {
  if (!$('sidebar').classList.contains('open')) return;
  $('sidebar').classList.remove('open');
  $('scrim').hidden = true;
  $('menu-toggle').setAttribute('aria-expanded', 'false');
  $('menu-toggle').focus();
}

export const KEY_STORAGE = 'gatehouse-api-key';

function showKeyGate() {
  $('gate').innerHTML = `
    <form class="card" id="key-form">
      <div><label for="api-key">API key</label>
      <p class="muted small">This chat is for holders of a Gatehouse API key. It is kept in this browser.</p>
      <input id="api-key" type="password" autocomplete="off" required></div>
      <button class="btn btn-primary" type="submit">Continue</button>
      <p class="form-error" role="alert" id="key-error"></p>
    </form>`;
  $('gate').querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const key = $('api-key').value.trim();
    setBearer(key);
    try {
      await api('/web/api/usage');
      localStorage.setItem(KEY_STORAGE, key);
      window.location.reload();
    } catch (err) {
      setBearer(null);
      $('key-error').textContent = describeError(err).detail || 'That key did not work.';
    }
  });
}

export function showGate(session) {
  $('gate').hidden = false;
  $('composer').hidden = true;
  if (session.access === 'key') {
    showKeyGate();
    return;
  }
  $('gate').innerHTML = `
    <form class="card" id="invite-form">
      <div><label for="invite-code">Invite code</label>
      <p class="muted small">This chat is open to invited people. Enter the code you were given.</p>
      <input id="invite-code" autocomplete="one-time-code" required></div>
      <button class="btn btn-primary" type="submit">Continue</button>
      <p class="form-error" role="alert" id="invite-error"></p>
    </form>`;
  $('gate').querySelector('form').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await api('/web/api/session/invite', { method: 'POST', body: { code: $('invite-code').value } });
      window.location.reload();
    } catch (err) {
      $('invite-error').textContent = describeError(err).detail || 'That code did not work.';
    }
  });
}
