// <gh-message>: one message of the conversation. User text is shown as typed; assistant text
// is rendered as sanitised markdown (streaming replies re-render as tokens arrive). Actions
// bubble up as events: gh-regenerate, gh-edit {content}, gh-rate {rating}, gh-retry,
// gh-error-action {action}. Errors show what happened and what to do, with a live countdown
// when the server said how long to wait (Retry-After).

import { renderMarkdown, copyText } from '../markdown.js';
import { describeError, formatWait } from '../errors.js';
import { usd, usdExact, int } from '../format.js';
import { icon } from '../icons.js';

const STATUS_TEXT = {
  queued: 'Waiting for the connection — it will be sent automatically.',
  sending: 'Sending…',
  stopped: 'Stopped.',
};

function button(label, { aria, pressed, onClick, className = 'btn btn-small btn-ghost' } = {}) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = label;
  if (aria) b.setAttribute('aria-label', aria);
  if (pressed !== undefined) b.setAttribute('aria-pressed', String(pressed));
  if (onClick) b.addEventListener('click', onClick);
  return b;
}

export class GhMessage extends HTMLElement {
  constructor() {
    super();
    this.message = null;
    this.options = {};
    this.timer = null;
    this.editing = false;
    this.pendingRender = false;
  }

  /**
   * options: {last: bool (latest assistant message), ratings: bool, ratingsNote: string,
   * busy: bool (a reply is streaming)}
   */
  set(message, options = {}) {
    this.message = message;
    this.options = options;
    this.dataset.id = String(message.id);
    this.dataset.role = message.role;
    this.dataset.status = message.status;
    // Re-rendering re-parses markdown and re-highlights code: only when something shown changed.
    const sig = JSON.stringify([message.content, message.status, message.costMicros, message.promptTokens,
      message.completionTokens, message.rating, message.error, (message.images || []).length, message.model, options]);
    if (sig === this.sig) return;
    this.sig = sig;
    if (!this.editing) this.render();
  }

  /** Cheap update while a reply streams in: only the text, at most once a frame. */
  stream(content) {
    this.message.content = content;
    if (this.pendingRender) return;
    this.pendingRender = true;
    requestAnimationFrame(() => {
      this.pendingRender = false;
      const body = this.querySelector('.msg-body');
      if (body) renderMarkdown(body, this.message.content, { final: false });
    });
  }

  emit(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(name, { bubbles: true, detail: { id: this.message.id, ...detail } }));
  }

  render() {
    clearInterval(this.timer);
    const m = this.message;
    const box = document.createElement('article');
    box.className = `msg msg-${m.role}`;
    box.setAttribute('aria-label', m.role === 'user' ? 'Your message' : 'Reply');
    const head = document.createElement('div');
    head.className = 'msg-head';
    const who = document.createElement('span');
    who.textContent = m.role === 'user' ? 'You' : (m.model || 'Assistant');
    head.append(who);
    if (m.role === 'assistant' && m.costMicros !== undefined && m.costMicros !== null) {
      const cost = document.createElement('span');
      cost.className = 'msg-cost';
      cost.textContent = `${usd(m.costMicros)} · ${int((m.promptTokens || 0) + (m.completionTokens || 0))} tokens`;
      cost.title = usdExact(m.costMicros);
      head.append(cost);
    }
    box.append(head);

    const body = document.createElement('div');
    body.className = 'msg-body';
    if (m.role === 'assistant') {
      renderMarkdown(body, m.content, { final: m.status !== 'streaming' });
      if (m.status === 'streaming') body.classList.add('typing');
    } else {
      const p = document.createElement('p');
      p.textContent = m.content;
      body.append(p);
    }
    box.append(body);

    if (m.images && m.images.length) {
      const imgs = document.createElement('div');
      imgs.className = 'msg-images';
      for (const img of m.images) {
        const el = document.createElement('img');
        el.src = img.url;
        el.alt = img.name ? `Attached image ${img.name}` : 'Attached image';
        imgs.append(el);
      }
      box.append(imgs);
    }
    if (STATUS_TEXT[m.status]) {
      const s = document.createElement('p');
      s.className = 'msg-status';
      s.textContent = STATUS_TEXT[m.status];
      box.append(s);
    }
    if (m.status === 'error' && m.error) box.append(this.renderError(m.error));
    if (m.status !== 'streaming' && m.status !== 'sending') box.append(this.renderActions());
    this.replaceChildren(box);
  }

  renderError(error) {
    const info = describeError(error);
    const alert = document.createElement('div');
    alert.className = info.action === 'retry' && info.retryAfter ? 'alert warn' : 'alert';
    alert.setAttribute('role', 'alert');
    const title = document.createElement('strong');
    title.textContent = info.title;
    const detail = document.createElement('p');
    detail.textContent = info.detail;
    alert.append(title, detail);
    const row = document.createElement('div');
    row.className = 'msg-actions';
    if (info.action === 'retry') {
      const retry = button('Retry', { className: 'btn btn-small', onClick: () => this.emit('gh-retry') });
      row.append(retry);
      const until = error.retryAt || 0;
      if (until > Date.now()) {
        retry.disabled = true;
        const wait = document.createElement('span');
        wait.className = 'countdown';
        wait.setAttribute('aria-live', 'off');
        const tick = () => {
          // Moved around the list it stays connected; removed for good, it stops counting.
          if (!this.isConnected) {
            setTimeout(() => { if (!this.isConnected) clearInterval(this.timer); }, 0);
          }
          const left = (until - Date.now()) / 1000;
          if (left <= 0) {
            clearInterval(this.timer);
            wait.textContent = 'You can retry now.';
            retry.disabled = false;
            return;
          }
          wait.textContent = `Retry possible in ${formatWait(left)}`;
        };
        tick();
        this.timer = setInterval(tick, 250);
        row.append(wait);
      }
    } else if (info.action) {
      const labels = {
        'new-conversation': 'Start a new conversation',
        reload: 'Reload the page',
        'pick-target': 'Pick another assistant or model',
        'remove-images': 'Edit the message',
      };
      row.append(button(labels[info.action], {
        className: 'btn btn-small',
        onClick: () => this.emit('gh-error-action', { action: info.action }),
      }));
    }
    if (info.requestId) {
      const rid = document.createElement('span');
      rid.className = 'muted small';
      rid.textContent = `Request ${info.requestId}`;
      row.append(rid);
    }
    alert.append(row);
    return alert;
  }

  renderActions() {
    const m = this.message;
    const o = this.options;
    const row = document.createElement('div');
    row.className = 'msg-actions';
    if (m.content) {
      const copy = button('Copy', { aria: m.role === 'user' ? 'Copy your message' : 'Copy the reply' });
      copy.addEventListener('click', async () => {
        copy.textContent = (await copyText(m.content)) ? 'Copied' : 'Copy failed';
        setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
      });
      row.append(copy);
    }
    if (m.role === 'user' && !o.busy) {
      row.append(button('Edit', { aria: 'Edit and resend this message', onClick: () => this.startEdit() }));
    }
    if (m.role === 'assistant') {
      if (o.last && !o.busy && m.status !== 'error') {
        row.append(button('Regenerate', { aria: 'Regenerate this reply', onClick: () => this.emit('gh-regenerate') }));
      }
      if (m.status === 'done' || m.status === 'stopped') {
        const up = button('', { aria: 'Good reply', pressed: m.rating === 'up' });
        const down = button('', { aria: 'Bad reply', pressed: m.rating === 'down' });
        up.append(icon('up'));
        down.append(icon('down'));
        if (!o.ratings) {
          for (const b of [up, down]) {
            b.disabled = true;
            b.title = o.ratingsNote || 'Ratings are not available on this server';
          }
        }
        up.addEventListener('click', () => this.emit('gh-rate', { rating: m.rating === 'up' ? null : 'up' }));
        down.addEventListener('click', () => this.emit('gh-rate', { rating: m.rating === 'down' ? null : 'down' }));
        row.append(up, down);
      }
      if ('speechSynthesis' in window && m.content) {
        const speak = button('Read aloud', { aria: 'Read this reply aloud' });
        speak.addEventListener('click', () => {
          if (speechSynthesis.speaking) {
            speechSynthesis.cancel();
            speak.textContent = 'Read aloud';
            return;
          }
          const text = this.querySelector('.msg-body').textContent;
          const u = new SpeechSynthesisUtterance(text);
          u.onend = () => { speak.textContent = 'Read aloud'; };
          speak.textContent = 'Stop reading';
          speechSynthesis.speak(u);
        });
        row.append(speak);
      }
    }
    return row;
  }

  startEdit() {
    this.editing = true;
    this.sig = null;
    const m = this.message;
    const form = document.createElement('form');
    form.className = 'msg msg-user msg-edit';
    const label = document.createElement('label');
    label.className = 'visually-hidden';
    label.textContent = 'Edit your message';
    const ta = document.createElement('textarea');
    ta.value = m.content;
    ta.id = `edit-${m.id}`;
    label.htmlFor = ta.id;
    const row = document.createElement('div');
    row.className = 'msg-actions';
    const save = button('Save and resend', { className: 'btn btn-small btn-primary' });
    save.type = 'submit';
    const cancel = button('Cancel', { className: 'btn btn-small' });
    cancel.addEventListener('click', () => { this.editing = false; this.render(); });
    row.append(save, cancel);
    form.append(label, ta, row);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const content = ta.value.trim();
      if (!content) return;
      this.editing = false;
      this.emit('gh-edit', { content });
    });
    form.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') cancel.click();
    });
    this.replaceChildren(form);
    ta.focus();
  }
}

customElements.define('gh-message', GhMessage);
