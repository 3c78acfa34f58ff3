// Talking to Gatehouse: JSON requests whose failures become ApiError (the server's error
// contract: {"error": {message, type, code, param}} plus Retry-After and x-request-id), and a
// reader for Server-Sent Events that yields data events and comments in order.

export class ApiError extends Error {
  constructor({ status = 0, code = 'unknown', type = '', message = '', param = null,
    retryAfter = null, requestId = null, network = false }) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.type = type;
    this.param = param;
    this.retryAfter = retryAfter;
    this.requestId = requestId;
    this.network = network;
  }
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date). */
export function parseRetryAfter(value) {
  if (!value) return null;
  const n = Number(value);
  if (Number.isFinite(n)) return Math.max(0, Math.ceil(n));
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

export async function errorFromResponse(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const e = body && body.error ? body.error : {};
  return new ApiError({
    status: resp.status,
    code: e.code || `http_${resp.status}`,
    type: e.type || '',
    message: e.message || resp.statusText || `HTTP ${resp.status}`,
    param: e.param || null,
    retryAfter: parseRetryAfter(resp.headers.get('retry-after')),
    requestId: resp.headers.get('x-request-id'),
  });
}

/** An error thrown inside an SSE stream (`data: {"error": …}`). */
export function errorFromEvent(obj, requestId) {
  const e = obj.error || {};
  return new ApiError({
    status: 0, code: e.code || 'stream_error', type: e.type || '', message: e.message || 'The stream failed',
    param: e.param || null, requestId,
  });
}

export function networkError(cause) {
  return new ApiError({
    code: 'network_error', network: true,
    message: cause && cause.message ? cause.message : 'The server could not be reached',
  });
}

let bearer = null;

/** The API key the chat sends with its own API calls (`web.chat_access = "key"`). */
export function setBearer(key) {
  bearer = key || null;
}

/** fetch() that turns transport failures into ApiError({network: true}); aborts pass through. */
export async function send(path, options = {}) {
  const opts = { credentials: 'same-origin', ...options };
  if (bearer && path.startsWith('/web/api/')) {
    opts.headers = { ...(options.headers || {}), authorization: `Bearer ${bearer}` };
  }
  try {
    return await fetch(path, opts);
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw networkError(err);
  }
}

/**
 * A JSON request. `body` objects are sent as JSON, FormData as multipart. Resolves to the
 * parsed body (null for 204, text for non-JSON); rejects with ApiError.
 */
export async function api(path, { method = 'GET', body, headers = {}, signal } = {}) {
  const h = { accept: 'application/json', ...headers };
  let payload = body;
  if (body !== undefined && !(body instanceof FormData) && typeof body !== 'string') {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  const resp = await send(path, { method, headers: h, body: payload, signal });
  if (!resp.ok) throw await errorFromResponse(resp);
  if (resp.status === 204) return null;
  const type = resp.headers.get('content-type') || '';
  return type.includes('json') ? resp.json() : resp.text();
}

/**
 * Events of an SSE response body: {data: string} for `data:` lines, {comment: string} for
 * `:` lines (Gatehouse reports a conversation's cost in one).
 */
export async function* sseEvents(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
        else if (line.startsWith(':')) yield { comment: line.slice(1).trim() };
      }
      if (data.length) yield { data: data.join('\n') };
    }
  }
}

/** A fresh request id (sent as x-request-id, so usage can be matched to a message). */
export function newRequestId() {
  if (crypto.randomUUID) return `web-${crypto.randomUUID()}`;
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
