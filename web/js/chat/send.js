// One exchange with the server: the conversation so far goes out as OpenAI messages (images as
// image parts), the reply streams back as SSE chunks, and afterwards the server's usage records
// say what it cost. Aborting the request (Stop) closes the connection, which makes Gatehouse
// cancel the upstream call.

import { api, errorFromEvent, errorFromResponse, send, sseEvents } from '../api.js';

/** Stored messages → OpenAI chat messages. Only finished turns are history. */
export function toOpenAiMessages(history) {
  const out = [];
  for (const m of history) {
    if (m.role !== 'user' && m.role !== 'assistant') continue;
    if (m.role === 'assistant' && !['done', 'stopped'].includes(m.status)) continue;
    if (m.role === 'assistant' && !m.content) continue;
    if (m.role === 'user' && m.images && m.images.length) {
      const parts = [];
      if (m.content) parts.push({ type: 'text', text: m.content });
      for (const img of m.images) parts.push({ type: 'image_url', image_url: { url: img.url } });
      out.push({ role: 'user', content: parts });
    } else {
      out.push({ role: m.role, content: m.content });
    }
  }
  return out;
}

/**
 * POST `path` with `body` and read the stream. `onDelta(textSoFar)` is called as tokens
 * arrive; `onComment(text)` for SSE comments. Resolves to {content, usage, finishReason,
 * comments}; rejects with ApiError (HTTP error, error event, network) or an AbortError.
 */
export async function streamReply({ path, body, requestId, conversationId, signal, onDelta, onComment }) {
  const headers = { 'content-type': 'application/json', accept: 'text/event-stream', 'x-request-id': requestId };
  // A chat completion (used for messages with images) stored in a server conversation.
  if (conversationId) headers['x-gatehouse-conversation-id'] = String(conversationId);
  const resp = await send(path, {
    method: 'POST',
    headers,
    body: JSON.stringify(body),
    signal,
  });
  if (!resp.ok) throw await errorFromResponse(resp);
  let content = '';
  let usage = null;
  let finishReason = null;
  let done = false;
  const comments = [];
  for await (const ev of sseEvents(resp)) {
    if (ev.comment !== undefined) {
      comments.push(ev.comment);
      if (onComment) onComment(ev.comment);
      continue;
    }
    if (ev.data === '[DONE]') {
      done = true;
      break;
    }
    let chunk;
    try {
      chunk = JSON.parse(ev.data);
    } catch {
      continue;
    }
    if (chunk.error) throw errorFromEvent(chunk, requestId);
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices && chunk.choices[0];
    if (choice) {
      if (choice.delta && choice.delta.content) {
        content += choice.delta.content;
        if (onDelta) onDelta(content);
      }
      if (choice.finish_reason) finishReason = choice.finish_reason;
    }
  }
  if (!done) {
    const err = errorFromEvent({ error: { code: 'stream_error', message: 'The reply ended before it was complete' } }, requestId);
    err.partial = content;
    throw err;
  }
  return { content, usage, finishReason, comments };
}

/** Today's usage of this browser's user (GET /web/api/usage). */
export function fetchUsage() {
  return api('/web/api/usage');
}

/**
 * The server's record of `requestId` in `usage.recent`; the usage of a stopped request is
 * written when the server notices the disconnect, so this polls a few times.
 */
export async function usageFor(requestId, { tries = 6, delayMs = 250 } = {}) {
  let usage = null;
  for (let i = 0; i < tries; i += 1) {
    usage = await fetchUsage();
    const hit = usage.recent.find((r) => r.request_id === requestId);
    if (hit) return { usage, record: hit };
    await new Promise((r) => setTimeout(r, delayMs));
  }
  return { usage, record: null };
}
