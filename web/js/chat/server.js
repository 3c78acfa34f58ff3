// Server-side conversations (when the server offers them: session.features.conversations).
// The server is the source of truth for conversations, messages, costs and ratings; IndexedDB
// keeps a copy for offline reading and for messages written offline. Images are kept in the
// local copy (the server stores the text of a message).

import { api } from '../api.js';
import * as db from '../db.js';

const BASE = '/web/api/conversations';

/** The `: gatehouse {…}` comment that ends a conversation's stream, parsed. */
export function gatehouseNote(comment) {
  if (!comment.startsWith('gatehouse ')) return null;
  try {
    return JSON.parse(comment.slice('gatehouse '.length));
  } catch {
    return null;
  }
}

function targetBody(target) {
  return target.startsWith('assistant/') ? { assistant: target.slice('assistant/'.length) } : { model: target };
}

export async function createConversation(target, title) {
  return api(BASE, { method: 'POST', body: { ...targetBody(target), title: title ? title.slice(0, 200) : undefined } });
}

export async function renameConversation(serverId, title) {
  return api(`${BASE}/${serverId}`, { method: 'PATCH', body: { title } });
}

export async function deleteConversation(serverId) {
  return api(`${BASE}/${serverId}`, { method: 'DELETE' });
}

/** Delete the server's messages from `fromMessageId` on (regenerate, edit and resend). */
export async function truncate(serverId, fromMessageId) {
  return api(`${BASE}/${serverId}/messages?from=${fromMessageId}`, { method: 'DELETE' });
}

export async function rate(serverId, messageId, rating) {
  return api(`${BASE}/${serverId}/messages/${messageId}/rating`, { method: 'POST', body: { rating } });
}

export function messagesPath(serverId) {
  return `${BASE}/${serverId}/messages`;
}

async function listAll() {
  const out = [];
  let before = null;
  for (let page = 0; page < 20; page += 1) {
    const q = before ? `?limit=100&before=${before}` : '?limit=100';
    const res = await api(`${BASE}${q}`);
    out.push(...res.data);
    if (!res.has_more || !res.data.length) break;
    before = res.data[res.data.length - 1].id;
  }
  return out;
}

const ms = (iso) => {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? Date.now() : t;
};

/** Bring the local list in line with the server's; returns the local conversations. */
export async function syncConversations() {
  const remote = await listAll();
  const local = await db.listConversations();
  const byServer = new Map(local.filter((c) => c.serverId).map((c) => [c.serverId, c]));
  const seen = new Set();
  for (const r of remote) {
    seen.add(r.id);
    const mine = byServer.get(r.id);
    const merged = {
      ...(mine || { id: db.newId(), createdAt: ms(r.created_at) }),
      serverId: r.id,
      title: r.title || (mine && mine.title) || 'Untitled',
      target: r.model,
      costMicros: r.cost_micros,
      messageCount: r.message_count,
      updatedAt: Math.max(ms(r.updated_at), mine ? mine.updatedAt : 0),
    };
    await db.putConversation(merged);
  }
  for (const c of local) {
    if (!c.serverId || seen.has(c.serverId)) continue;
    const pending = (await db.listMessages(c.id)).some((m) => m.status === 'queued');
    if (!pending) await db.deleteConversation(c.id);
  }
  return db.listConversations();
}

/** Replace the local copy of a conversation's messages with the server's. */
export async function syncMessages(conv) {
  if (!conv.serverId) return db.listMessages(conv.id);
  const remote = await api(`${BASE}/${conv.serverId}`);
  const local = await db.listMessages(conv.id);
  const images = new Map(local.filter((m) => m.serverId && m.images).map((m) => [m.serverId, m.images]));
  // Messages the server does not have: queued, failed, stopped, and the questions they answer.
  const keep = local.filter((m) => !m.serverId);
  await db.deleteMessages(local.map((m) => m.id));
  for (const r of remote.messages || []) {
    if (r.role !== 'user' && r.role !== 'assistant') continue;
    await db.putMessage({
      conversationId: conv.id,
      serverId: r.id,
      role: r.role,
      content: r.content,
      images: images.get(r.id) || null,
      status: 'done',
      model: r.model || null,
      requestId: r.request_id || null,
      costMicros: r.role === 'assistant' ? r.cost_micros : undefined,
      promptTokens: r.prompt_tokens,
      completionTokens: r.completion_tokens,
      rating: r.rating || null,
      createdAt: ms(r.created_at),
      pos: ms(r.created_at) + (r.role === 'assistant' ? 0.5 : 0),
    });
  }
  for (const m of keep) {
    delete m.id;
    await db.putMessage(m);
  }
  await db.putConversation({ ...conv, costMicros: remote.cost_micros, title: remote.title || conv.title });
  return db.listMessages(conv.id);
}
