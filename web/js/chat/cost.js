// <gh-cost-widget>: what this conversation cost and what you spent today, from the server's
// usage records (never estimated in the browser): today's total, messages, tokens, the average
// per message, and a warning above the server's high-usage threshold or near the daily budget.
// Collapsed it is one button showing the conversation's cost; expanded, the details.

import { usd, usdExact, int } from '../format.js';

export class GhCostWidget extends HTMLElement {
  constructor() {
    super();
    this.conversationMicros = 0;
    this.usage = null;
    this.open = false;
  }

  connectedCallback() {
    if (this.toggle) return;
    this.innerHTML = `
      <button type="button" class="btn btn-small cost-toggle" aria-expanded="false" aria-controls="cost-panel">
        <span class="cost-summary">$0.00</span>
      </button>
      <div class="card cost-panel" id="cost-panel" role="region" aria-label="Cost" hidden>
        <dl>
          <dt>This conversation</dt><dd data-k="conversation">—</dd>
          <dt>Today (you)</dt><dd data-k="today">—</dd>
          <dt>Messages today</dt><dd data-k="messages">—</dd>
          <dt>Tokens today</dt><dd data-k="tokens">—</dd>
          <dt>Average per message</dt><dd data-k="average">—</dd>
          <dt>Daily budget</dt><dd data-k="budget">—</dd>
        </dl>
        <div class="alert warn cost-warning" role="status" hidden></div>
        <p class="muted small cost-source">Numbers from the server's usage records.</p>
      </div>`;
    this.toggle = this.querySelector('.cost-toggle');
    this.panel = this.querySelector('.cost-panel');
    this.toggle.addEventListener('click', () => this.setOpen(!this.open));
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.open) { this.setOpen(false); this.toggle.focus(); }
    });
    document.addEventListener('click', (e) => {
      if (this.open && !this.contains(e.target)) this.setOpen(false);
    });
    this.render();
  }

  setOpen(open) {
    this.open = open;
    this.panel.hidden = !open;
    this.toggle.setAttribute('aria-expanded', String(open));
  }

  /** `usage` is the body of GET /web/api/usage; either argument may be left undefined. */
  update({ conversationMicros, usage } = {}) {
    if (conversationMicros !== undefined) this.conversationMicros = conversationMicros;
    if (usage !== undefined) this.usage = usage;
    this.render();
  }

  set(key, text, title) {
    const dd = this.querySelector(`[data-k="${key}"]`);
    dd.textContent = text;
    if (title) dd.title = title;
  }

  render() {
    if (!this.toggle) return;
    const u = this.usage;
    const conv = this.conversationMicros;
    this.querySelector('.cost-summary').textContent = usd(conv);
    this.toggle.setAttribute('aria-label', `Cost of this conversation ${usd(conv)}; show details`);
    this.toggle.title = usdExact(conv);
    this.set('conversation', usd(conv), usdExact(conv));
    const warning = this.querySelector('.cost-warning');
    if (!u) {
      warning.hidden = true;
      return;
    }
    this.set('today', usd(u.cost_micros), usdExact(u.cost_micros));
    this.set('messages', int(u.messages));
    this.set('tokens', int(u.total_tokens));
    this.set('average', u.average_cost_per_message_micros === null ? '—' : usd(u.average_cost_per_message_micros),
      u.average_cost_per_message_micros === null ? '' : usdExact(u.average_cost_per_message_micros));
    this.set('budget', u.daily_budget_micros > 0 ? usd(u.daily_budget_micros) : 'none');
    const notes = [];
    if (u.high_usage_warning_micros > 0 && u.cost_micros >= u.high_usage_warning_micros) {
      notes.push(`High usage: you spent ${usd(u.cost_micros)} today, over the ${usd(u.high_usage_warning_micros)} mark.`);
    }
    if (u.daily_budget_micros > 0 && u.cost_micros >= u.daily_budget_micros * 0.8) {
      notes.push(u.cost_micros >= u.daily_budget_micros
        ? 'Today\'s budget is used up; it renews at midnight UTC.'
        : `${Math.round((u.cost_micros / u.daily_budget_micros) * 100)}% of today's budget is used.`);
    }
    warning.hidden = notes.length === 0;
    warning.textContent = notes.join(' ');
    this.toggle.classList.toggle('warn', notes.length > 0);
  }
}

customElements.define('gh-cost-widget', GhCostWidget);
