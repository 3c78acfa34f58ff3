// What an error means to a person: a title, one sentence of detail, and what to do about it.
// Every error code of Gatehouse's contract has an entry; unknown codes fall back on the
// server's own message.

const RETRY = 'retry';
const NEW_CONVERSATION = 'new-conversation';
const RELOAD = 'reload';
const PICK = 'pick-target';
const REMOVE_IMAGES = 'remove-images';

const TABLE = {
  network_error: ['Cannot reach Gatehouse', 'The connection failed. Your message is kept and is sent when the connection returns.', RETRY],
  rate_limit_exceeded: ['Too many messages', 'You are sending faster than this server allows.', RETRY],
  provider_rate_limited: ['The model provider is busy', 'The provider asked Gatehouse to slow down.', RETRY],
  budget_exceeded: ['Daily budget reached', 'You have used today\'s budget for this chat. It renews at midnight UTC.', null],
  budget_unavailable: ['Budgets cannot be checked right now', 'Gatehouse refuses requests while it cannot check budgets. Try again shortly.', RETRY],
  assistant_ceiling_reached: ['This assistant reached its spending limit', 'Try again tomorrow, or pick another assistant.', PICK],
  queue_timeout: ['Gatehouse is busy', 'Your request waited too long for a free slot.', RETRY],
  provider_error: ['The model provider failed', 'The provider returned an error or could not be reached.', RETRY],
  no_healthy_provider: ['No model provider is available', 'Every provider for this model is failing right now; Gatehouse is waiting for one to recover.', RETRY],
  no_viable_model: ['No model can take this request', 'No model of the requested tier can serve it right now.', RETRY],
  upstream_timeout: ['The model took too long', 'The provider did not answer in time.', RETRY],
  shutting_down: ['Gatehouse is restarting', 'Try again in a moment.', RETRY],
  context_length_exceeded: ['This conversation is too long for the model', 'Start a new conversation, or shorten your message.', NEW_CONVERSATION],
  content_filter: ['Blocked by the content filter', 'The provider refused this request or its answer.', null],
  request_too_large: ['Too large', 'The message or an attachment is over the size limit.', null],
  unsupported_media_type: ['Unsupported file', 'That kind of file cannot be used here.', null],
  invalid_api_key: ['Not signed in', 'Your chat session is missing or expired. Reload the page to start a new one.', RELOAD],
  forbidden: ['Not allowed', 'This server does not allow that request.', null],
  model_not_allowed: ['Model not allowed', 'Your key may not use this model. Pick another one.', PICK],
  model_not_found: ['Unknown assistant or model', 'It may have been removed. Pick another one.', PICK],
  not_found: ['Not found', 'It may have been deleted.', null],
  invalid_request: ['The request was not accepted', '', null],
  invalid_json: ['The request was not accepted', '', null],
  internal_error: ['Something went wrong in Gatehouse', 'The error was logged on the server.', RETRY],
  stream_error: ['The answer broke off', 'The connection to the provider failed mid-answer.', RETRY],
};

/** Whether the error is about an image the model cannot take. */
export function isImageRefusal(err) {
  const param = err.param || '';
  return /content\[\d+\]/.test(param) && /image/i.test(err.message || '');
}

/**
 * {title, detail, action, retryAfter, requestId} for an ApiError. `action` is one of retry,
 * new-conversation, reload, pick-target, remove-images or null.
 */
export function describeError(err) {
  if (isImageRefusal(err)) {
    if (err.code === 'request_too_large') {
      return { title: 'Image too large', detail: err.message, action: REMOVE_IMAGES, retryAfter: null, requestId: err.requestId };
    }
    return {
      title: 'This model cannot see images',
      detail: 'The assistant\'s model does not accept image input. Remove the image, or pick a vision-capable assistant or model.',
      action: REMOVE_IMAGES,
      retryAfter: null,
      requestId: err.requestId,
    };
  }
  const [title, detail, action] = TABLE[err.code] || ['Something went wrong', '', RETRY];
  let text = detail;
  const server = err.message && err.message !== err.code ? err.message : '';
  if ((!text || ['invalid_request', 'invalid_json', 'forbidden', 'request_too_large', 'budget_exceeded',
    'rate_limit_exceeded', 'unsupported_media_type', 'content_filter'].includes(err.code)) && server) {
    text = text ? `${text} (${server})` : server;
  }
  if (err.code === 'forbidden' && /invite/i.test(server)) {
    return { title: 'Invite code needed', detail: server, action: RELOAD, retryAfter: null, requestId: err.requestId };
  }
  return { title, detail: text, action, retryAfter: err.retryAfter, requestId: err.requestId };
}

/** "1 min 05 s" / "12 s" / "3 h 20 min". */
export function formatWait(seconds) {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
