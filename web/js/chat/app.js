// The chat page: ties the conversation list, the messages, the composer and the cost widget to
// the local store and the server. Every message goes through one queue (IndexedDB, in send
// order): online it drains at once, offline it waits for the `online` event, so messages
// written offline are delivered in order when the connection returns.

import './message.js';
import './composer.js';
import './conversations.js';
import './cost.js';
import { api, ApiError, newRequestId, setBearer } from '../api.js';
import { decorate } from '../icons.js';
import * as db from '../db.js';
import { describeError } from '../errors.js';
import { isOnline, onConnectionChange, registerServiceWorker, watchConnection } from '../offline.js';
import { fetchUsage, streamReply, toOpenAiMessages, usageFor } from './send.js';
import * as server from './server.js';
import { KEY_STORAGE, closeDrawer, openDrawer, showGate } from './layout.js';

const $ = (id) => document.getElementById(id);
const ui = {
  list: $('conversations'),
  messages: $('messages'),
  composer: $('composer'),
  cost: $('cost'),
  title: $('chat-title'),
  target: $('target'),
  sidebar: $('sidebar'),
  scrim: $('scrim'),
  menu: $('menu-toggle'),
  gate: $('gate'),
};
const state = {
  session: null,
  conversations: [],
  current: null,
  messages: [],
  streaming: null,
  queueRunning: false,
  usage: null,
};

const serverMode = () => Boolean(state.session && state.session.features.conversations && !state.session.offline);
const byPosition = (a, b) => (a.pos - b.pos) || (a.id - b.id);

// ---- session and targets ------------------------------------------------------------------

async function loadSession() {
  try {
    const s = await api('/web/api/session');
    await db.setMeta('session', s);
    return s;
  } catch (err) {
    const cached = await db.getMeta('session');
    if (cached) return { ...cached, offline: true };
    throw err;
  }
}

function fillTargets() {
  const s = state.session;
  ui.target.replaceChildren();
  const assistants = s.assistants || [];
  if (assistants.length) {
    const group = document.createElement('optgroup');
    group.label = 'Assistants';
    for (const a of assistants) {
      const o = new Option(a.name || a.slug, `assistant/${a.slug}`);
      if (a.description) o.title = a.description;
      group.append(o);
    }
    ui.target.append(group);
  }
  const models = document.createElement('optgroup');
  models.label = 'Models';
  for (const m of s.models || []) models.append(new Option(m, m));
  ui.target.append(models);
}

function currentTarget() {
  return ui.target.value || state.session.default_model;
}

function showTarget(target) {
  if (![...ui.target.options].some((o) => o.value === target)) {
    ui.target.append(new Option(target, target));
  }
  ui.target.value = target;
}

// ---- conversations -----------------------------------------------------------------------

async function refreshList() {
  const convs = await db.listConversations();
  const queued = await db.queuedMessages();
  const pending = new Set(queued.map((m) => m.conversationId));
  state.conversations = convs.map((c) => ({ ...c, pending: pending.has(c.id) }));
  ui.list.set(state.conversations, state.current && state.current.id);
}

async function openConversation(id, { sync = true } = {}) {
  const conv = await db.getConversation(id);
  if (!conv) return;
  state.current = conv;
  await db.setMeta('current', id);
  ui.title.textContent = conv.title || 'Untitled';
  showTarget(conv.target);
  state.messages = (await db.listMessages(id)).sort(byPosition);
  renderMessages();
  await refreshList();
  closeDrawer();
  if (sync && serverMode() && conv.serverId && !state.streaming) {
    try {
      state.messages = (await server.syncMessages(conv)).sort(byPosition);
      state.current = await db.getConversation(id);
      renderMessages();
    } catch (err) {
      console.warn('could not refresh the conversation', err);
    }
  }
  updateCost();
}

function startNew() {
  state.current = null;
  state.messages = [];
  ui.title.textContent = 'New conversation';
  db.setMeta('current', null);
  renderMessages();
  refreshList();
  closeDrawer();
  ui.composer.focus();
}

async function createConversation(text, images) {
  const now = Date.now();
  const conv = {
    id: db.newId(),
    title: (text || (images.length ? 'Image' : 'Conversation')).replace(/\s+/g, ' ').slice(0, 60),
    target: currentTarget(),
    serverId: null,
    costMicros: 0,
    createdAt: now,
    updatedAt: now,
  };
  await db.putConversation(conv);
  await db.setMeta('target', conv.target);
  await db.setMeta('current', conv.id);
  state.current = conv;
  ui.title.textContent = conv.title;
  return conv;
}

async function renameConversation(id, title) {
  const conv = await db.getConversation(id);
  if (!conv) return;
  conv.title = title;
  await db.putConversation(conv);
  if (conv.serverId && serverMode()) {
    server.renameConversation(conv.serverId, title).catch((e) => console.warn('rename not saved on the server', e));
  }
  if (state.current && state.current.id === id) {
    state.current.title = title;
    ui.title.textContent = title;
  }
  await refreshList();
}

async function deleteConversation(id) {
  const conv = await db.getConversation(id);
  if (conv && conv.serverId && serverMode()) {
    try {
      await server.deleteConversation(conv.serverId);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'not_found')) {
        window.alert(`Could not delete: ${describeError(err).title}`);
        return;
      }
    }
  }
  await db.deleteConversation(id);
  if (state.current && state.current.id === id) startNew();
  await refreshList();
}

// ---- messages ----------------------------------------------------------------------------

function lastAssistantId() {
  for (let i = state.messages.length - 1; i >= 0; i -= 1) {
    if (state.messages[i].role === 'assistant') return state.messages[i].id;
  }
  return null;
}

function renderMessages() {
  const box = ui.messages;
  if (!state.messages.length) {
    const empty = document.createElement('div');
    empty.className = 'empty-state';
    empty.innerHTML = '<h2>Start a conversation</h2><p>Ask anything. Replies stream in as they are written; you can stop them at any time.</p>';
    box.replaceChildren(empty);
    return;
  }
  const existing = new Map([...box.querySelectorAll('gh-message')].map((el) => [el.dataset.id, el]));
  const last = lastAssistantId();
  const ratings = Boolean(serverMode() && state.session.features.ratings);
  const els = state.messages.map((m) => {
    const el = existing.get(String(m.id)) || document.createElement('gh-message');
    el.set(m, {
      last: m.id === last,
      busy: Boolean(state.streaming),
      ratings: ratings && Boolean(m.serverId),
      ratingsNote: ratings ? 'This reply was not saved on the server' : 'Ratings are not available on this server',
    });
    return el;
  });
  const same = els.length === box.children.length && els.every((el, i) => box.children[i] === el);
  if (!same) box.replaceChildren(...els);
  box.scrollTop = box.scrollHeight;
}

function messageElement(id) {
  return ui.messages.querySelector(`gh-message[data-id="${id}"]`);
}

async function saveMessage(m) {
  await db.putMessage(m);
  if (state.current && m.conversationId === state.current.id) {
    const i = state.messages.findIndex((x) => x.id === m.id);
    if (i >= 0) state.messages[i] = m;
    else state.messages.push(m);
    state.messages.sort(byPosition);
  }
}

async function onSend({ text, images }) {
  const conv = state.current || await createConversation(text, images);
  const now = Date.now();
  const msg = {
    conversationId: conv.id,
    role: 'user',
    content: text,
    images: images.length ? images : null,
    status: 'queued',
    pos: now,
    createdAt: now,
  };
  msg.id = await db.putMessage(msg);
  conv.updatedAt = now;
  await db.putConversation(conv);
  if (state.current && state.current.id === conv.id) state.messages.push(msg);
  renderMessages();
  await refreshList();
  drainQueue();
}

/** Send queued messages, oldest first, one at a time; stops at the first network failure. */
async function drainQueue() {
  if (state.queueRunning || !isOnline()) return;
  state.queueRunning = true;
  try {
    for (;;) {
      const [next] = await db.queuedMessages();
      if (!next) break;
      const conv = await db.getConversation(next.conversationId);
      if (!conv) {
        await db.deleteMessages([next.id]);
        continue;
      }
      if (!(await exchange(conv, next))) break;
    }
  } finally {
    state.queueRunning = false;
    await refreshList();
  }
}

async function ensureServerConversation(conv) {
  if (!serverMode() || conv.serverId) return conv;
  const created = await server.createConversation(conv.target, conv.title);
  conv.serverId = created.id;
  await db.putConversation(conv);
  return conv;
}

/** One exchange for a queued user message. False when the network failed (it stays queued). */
async function exchange(conv, userMsg) {
  const controller = new AbortController();
  const requestId = newRequestId();
  const reply = {
    conversationId: conv.id,
    role: 'assistant',
    content: '',
    status: 'streaming',
    requestId,
    model: conv.target,
    pos: userMsg.pos + 0.5,
    createdAt: Date.now(),
  };
  userMsg.status = 'sending';
  await saveMessage(userMsg);
  reply.id = await db.putMessage(reply);
  const visible = () => state.current && state.current.id === conv.id;
  if (visible()) state.messages.push(reply);
  state.streaming = controller;
  ui.composer.setBusy(true);
  ui.messages.setAttribute('aria-busy', 'true');
  renderMessages();
  let note = null;
  try {
    await ensureServerConversation(conv);
    const history = (await db.listMessages(conv.id)).sort(byPosition).filter((m) => m.pos < userMsg.pos);
    const withImages = Boolean(userMsg.images && userMsg.images.length);
    const viaConversation = serverMode() && !withImages;
    const result = await streamReply({
      path: viaConversation ? server.messagesPath(conv.serverId) : '/web/api/chat/completions',
      body: viaConversation
        ? { content: userMsg.content, stream: true, stream_options: { include_usage: true } }
        : {
          model: conv.target,
          messages: toOpenAiMessages([...history, { ...userMsg, status: 'done' }]),
          stream: true,
          stream_options: { include_usage: true },
        },
      conversationId: serverMode() && !viaConversation ? conv.serverId : null,
      requestId,
      signal: controller.signal,
      onDelta: (text) => {
        reply.content = text;
        const el = visible() && messageElement(reply.id);
        if (el) el.stream(text);
      },
      onComment: (c) => { note = server.gatehouseNote(c) || note; },
    });
    reply.content = result.content;
    reply.status = 'done';
    if (result.usage) {
      reply.promptTokens = result.usage.prompt_tokens;
      reply.completionTokens = result.usage.completion_tokens;
    }
  } catch (err) {
    if (err && err.name === 'AbortError') {
      reply.status = 'stopped';
    } else if (err instanceof ApiError && err.network && !reply.content) {
      // Nothing came back: keep the message queued for when the connection returns.
      await db.deleteMessages([reply.id]);
      state.messages = state.messages.filter((m) => m.id !== reply.id);
      userMsg.status = 'queued';
      await saveMessage(userMsg);
      finishStreaming();
      return false;
    } else {
      const e = err instanceof ApiError ? err : new ApiError({ code: 'internal_error', message: String(err) });
      if (err.partial) reply.content = err.partial;
      reply.status = 'error';
      reply.error = {
        code: e.code, message: e.message, param: e.param, requestId: e.requestId || requestId,
        retryAfter: e.retryAfter, retryAt: e.retryAfter ? Date.now() + e.retryAfter * 1000 : 0,
      };
    }
  }
  userMsg.status = 'done';
  if (note) {
    reply.serverId = note.message_id;
    userMsg.serverId = note.user_message_id;
    reply.costMicros = note.cost_micros;
    conv.costMicros = note.conversation_cost_micros;
  }
  await saveMessage(userMsg);
  await saveMessage(reply);
  conv.updatedAt = Date.now();
  await db.putConversation(conv);
  finishStreaming();
  await settleCost(conv, reply);
  return true;
}

function finishStreaming() {
  state.streaming = null;
  ui.composer.setBusy(false);
  ui.messages.setAttribute('aria-busy', 'false');
  renderMessages();
}

/** What the reply cost according to the server's usage records; updates the widget. */
async function settleCost(conv, reply) {
  try {
    const { usage, record } = await usageFor(reply.requestId, { tries: reply.status === 'stopped' ? 12 : 4 });
    state.usage = usage;
    if (record) {
      if (reply.costMicros === undefined || !reply.serverId) reply.costMicros = record.cost_micros;
      reply.promptTokens = record.prompt_tokens;
      reply.completionTokens = record.completion_tokens;
      await saveMessage(reply);
    }
    if (!serverMode() || !conv.serverId) {
      const all = await db.listMessages(conv.id);
      conv.costMicros = all.reduce((sum, m) => sum + (m.role === 'assistant' ? m.costMicros || 0 : 0), 0);
      await db.putConversation(conv);
    }
    if (state.current && state.current.id === conv.id) {
      state.current = conv;
      renderMessages();
    }
  } catch (err) {
    console.warn('usage not available', err);
  }
  updateCost();
}

function updateCost() {
  ui.cost.update({ conversationMicros: state.current ? state.current.costMicros || 0 : 0, usage: state.usage });
}

async function resend(userMsg, { content } = {}) {
  const conv = state.current;
  if (serverMode() && conv && conv.serverId && userMsg.serverId) {
    try {
      await server.truncate(conv.serverId, userMsg.serverId);
    } catch (err) {
      window.alert(`Could not change the conversation: ${describeError(err).title}`);
      return;
    }
  }
  const later = state.messages.filter((m) => m.pos > userMsg.pos);
  await db.deleteMessages(later.map((m) => m.id));
  state.messages = state.messages.filter((m) => m.pos <= userMsg.pos);
  if (content !== undefined) userMsg.content = content;
  userMsg.status = 'queued';
  userMsg.serverId = null;
  await saveMessage(userMsg);
  renderMessages();
  drainQueue();
}

function userMessageBefore(reply) {
  return [...state.messages].reverse().find((m) => m.role === 'user' && m.pos < reply.pos);
}

async function onMessageEvent(e) {
  const msg = state.messages.find((m) => m.id === e.detail.id);
  if (!msg) return;
  if (e.type === 'gh-edit') {
    await resend(msg, { content: e.detail.content });
  } else if (e.type === 'gh-regenerate' || e.type === 'gh-retry') {
    const asked = userMessageBefore(msg);
    if (asked) await resend(asked);
  } else if (e.type === 'gh-rate') {
    if (!msg.serverId || !state.current.serverId || !e.detail.rating) return;
    try {
      await server.rate(state.current.serverId, msg.serverId, e.detail.rating);
      msg.rating = e.detail.rating;
      await saveMessage(msg);
      renderMessages();
    } catch (err) {
      window.alert(`Rating not saved: ${describeError(err).title}`);
    }
  } else if (e.type === 'gh-error-action') {
    const action = e.detail.action;
    if (action === 'new-conversation') startNew();
    else if (action === 'reload') window.location.reload();
    else if (action === 'pick-target') ui.target.focus();
    else if (action === 'remove-images') {
      const asked = userMessageBefore(msg);
      const el = asked && messageElement(asked.id);
      if (el) el.startEdit();
    }
  }
}

// ---- start -------------------------------------------------------------------------------

async function main() {
  decorate(document.body);
  watchConnection($('offline-banner'));
  registerServiceWorker($('update-banner'), $('update-reload'));
  ui.list.addEventListener('gh-new', startNew);
  ui.list.addEventListener('gh-open', (e) => openConversation(e.detail.id));
  ui.list.addEventListener('gh-rename', (e) => renameConversation(e.detail.id, e.detail.title));
  ui.list.addEventListener('gh-delete', (e) => deleteConversation(e.detail.id));
  ui.composer.addEventListener('gh-send', (e) => onSend(e.detail));
  ui.composer.addEventListener('gh-stop', () => { if (state.streaming) state.streaming.abort(); });
  for (const name of ['gh-edit', 'gh-regenerate', 'gh-retry', 'gh-rate', 'gh-error-action']) {
    ui.messages.addEventListener(name, onMessageEvent);
  }
  ui.menu.addEventListener('click', openDrawer);
  ui.scrim.addEventListener('click', closeDrawer);
  document.getElementById('sidebar-close').addEventListener('click', closeDrawer);
  document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDrawer(); });
  ui.target.addEventListener('change', async () => {
    await db.setMeta('target', ui.target.value);
    if (!state.current) return;
    if (serverMode() && state.current.serverId) {
      startNew();
      return;
    }
    state.current.target = ui.target.value;
    await db.putConversation(state.current);
  });

  setBearer(localStorage.getItem(KEY_STORAGE));
  await db.recoverInterrupted();
  try {
    state.session = await loadSession();
  } catch (err) {
    ui.messages.innerHTML = '';
    const alert = document.createElement('div');
    alert.className = 'alert';
    alert.setAttribute('role', 'alert');
    alert.textContent = `Gatehouse could not be reached (${describeError(err).title}). Check the connection and reload.`;
    ui.messages.append(alert);
    document.body.dataset.ready = 'true';
    return;
  }
  fillTargets();
  showTarget((await db.getMeta('target')) || state.session.default_model);
  ui.composer.setSession(state.session);
  if (!state.session.authorized) {
    // A stored key the server no longer accepts is forgotten, and asked for again.
    if (state.session.access === 'key') localStorage.removeItem(KEY_STORAGE);
    showGate(state.session);
    document.body.dataset.ready = 'true';
    return;
  }
  if (serverMode()) {
    try {
      await server.syncConversations();
    } catch (err) {
      console.warn('could not load conversations from the server', err);
    }
  }
  await refreshList();
  const last = await db.getMeta('current');
  if (last && state.conversations.some((c) => c.id === last)) await openConversation(last);
  else startNew();
  onConnectionChange(async (online) => {
    if (!online) return;
    if (state.session.offline) {
      // Started offline: now the server can say what it offers (conversations, …).
      try {
        state.session = await loadSession();
        ui.composer.setSession(state.session);
      } catch {
        return;
      }
    }
    await drainQueue();
    fetchUsage().then((u) => { state.usage = u; updateCost(); }).catch(() => {});
  });
  document.body.dataset.ready = 'true';
}

main();
