// The chat's local store (IndexedDB), so conversations can be read offline and messages written
// offline wait, in order, for the connection:
//   conversations {id, title, target, serverId, costMicros, createdAt, updatedAt}
//   messages      {id (auto, = send order), conversationId, role, content, images, status,
//                  requestId, serverId, costMicros, promptTokens, completionTokens, rating,
//                  error, createdAt}   status: done | queued | sending | streaming | stopped | error
//   meta          {key, value}          the last session info, the open conversation, …

const DB_NAME = 'gatehouse-chat';
const VERSION = 1;
let opening = null;

function promised(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

function open() {
  if (opening) return opening;
  opening = new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, VERSION);
    req.onupgradeneeded = () => {
      const db = req.result;
      const conv = db.createObjectStore('conversations', { keyPath: 'id' });
      conv.createIndex('updatedAt', 'updatedAt');
      const msgs = db.createObjectStore('messages', { keyPath: 'id', autoIncrement: true });
      msgs.createIndex('conversationId', 'conversationId');
      msgs.createIndex('status', 'status');
      db.createObjectStore('meta', { keyPath: 'key' });
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  return opening;
}

async function tx(stores, mode, fn) {
  const db = await open();
  const t = db.transaction(stores, mode);
  const result = await fn(t);
  await new Promise((resolve, reject) => {
    t.oncomplete = resolve;
    t.onerror = () => reject(t.error);
    t.onabort = () => reject(t.error);
  });
  return result;
}

export function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

/** Newest first. */
export async function listConversations() {
  const all = await tx(['conversations'], 'readonly', (t) => promised(t.objectStore('conversations').getAll()));
  return all.sort((a, b) => b.updatedAt - a.updatedAt);
}

export function getConversation(id) {
  return tx(['conversations'], 'readonly', (t) => promised(t.objectStore('conversations').get(id)));
}

export function putConversation(c) {
  return tx(['conversations'], 'readwrite', (t) => promised(t.objectStore('conversations').put(c)));
}

export async function deleteConversation(id) {
  await tx(['conversations', 'messages'], 'readwrite', async (t) => {
    t.objectStore('conversations').delete(id);
    const store = t.objectStore('messages');
    const keys = await promised(store.index('conversationId').getAllKeys(id));
    for (const k of keys) store.delete(k);
  });
}

/** In send order. */
export async function listMessages(conversationId) {
  const all = await tx(['messages'], 'readonly',
    (t) => promised(t.objectStore('messages').index('conversationId').getAll(conversationId)));
  return all.sort((a, b) => a.id - b.id);
}

/** Stores a message; resolves to its id. */
export function putMessage(m) {
  return tx(['messages'], 'readwrite', (t) => promised(t.objectStore('messages').put(m)));
}

export function getMessage(id) {
  return tx(['messages'], 'readonly', (t) => promised(t.objectStore('messages').get(id)));
}

export async function deleteMessages(ids) {
  await tx(['messages'], 'readwrite', (t) => {
    const store = t.objectStore('messages');
    for (const id of ids) store.delete(id);
  });
}

/** Messages waiting for the connection, oldest first (across conversations). */
export async function queuedMessages() {
  const all = await tx(['messages'], 'readonly',
    (t) => promised(t.objectStore('messages').index('status').getAll('queued')));
  return all.sort((a, b) => a.id - b.id);
}

/**
 * After a reload in the middle of an exchange: questions that were being sent wait again in the
 * queue, and replies that were streaming keep what arrived, marked stopped.
 */
export async function recoverInterrupted() {
  await tx(['messages'], 'readwrite', async (t) => {
    const store = t.objectStore('messages');
    for (const status of ['sending', 'streaming']) {
      const rows = await promised(store.index('status').getAll(status));
      for (const m of rows) store.put({ ...m, status: status === 'sending' ? 'queued' : 'stopped' });
    }
  });
}

export async function getMeta(key) {
  const row = await tx(['meta'], 'readonly', (t) => promised(t.objectStore('meta').get(key)));
  return row ? row.value : undefined;
}

export function setMeta(key, value) {
  return tx(['meta'], 'readwrite', (t) => promised(t.objectStore('meta').put({ key, value })));
}
