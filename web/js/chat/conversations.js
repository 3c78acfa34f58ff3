// <gh-conversation-list>: new conversation, search by title, and the list (newest first) with
// rename and delete on each entry. Emits gh-new, gh-open {id}, gh-rename {id, title},
// gh-delete {id}; the app owns the data.

import { shortTime } from '../format.js';
import { decorate, icon } from '../icons.js';

export class GhConversationList extends HTMLElement {
  constructor() {
    super();
    this.items = [];
    this.active = null;
    this.query = '';
    this.renaming = null;
  }

  connectedCallback() {
    if (this.list) return;
    this.innerHTML = `
      <div class="conv-tools">
        <button type="button" class="btn btn-primary new-conv" data-icon="plus">New conversation</button>
        <label class="visually-hidden" for="conv-search">Search conversations</label>
        <input id="conv-search" type="search" placeholder="Search conversations" autocomplete="off">
      </div>
      <ul class="conv-list" aria-label="Your conversations"></ul>`;
    decorate(this);
    this.list = this.querySelector('ul');
    this.querySelector('.new-conv').addEventListener('click', () => this.emit('gh-new'));
    this.querySelector('input').addEventListener('input', (e) => {
      this.query = e.target.value.trim().toLowerCase();
      this.render();
    });
  }

  emit(name, detail = {}) {
    this.dispatchEvent(new CustomEvent(name, { bubbles: true, detail }));
  }

  set(items, active) {
    this.items = items;
    this.active = active;
    this.render();
  }

  render() {
    if (!this.list) return;
    const shown = this.items.filter((c) => !this.query || (c.title || '').toLowerCase().includes(this.query));
    if (!shown.length) {
      const li = document.createElement('li');
      li.className = 'conv-empty';
      li.textContent = this.query ? 'No conversation matches.' : 'No conversations yet.';
      this.list.replaceChildren(li);
      return;
    }
    this.list.replaceChildren(...shown.map((c) => this.item(c)));
  }

  item(c) {
    const li = document.createElement('li');
    li.className = `conv-item${c.id === this.active ? ' active' : ''}`;
    li.dataset.id = c.id;
    if (this.renaming === c.id) {
      li.append(this.renameForm(c));
      return li;
    }
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'conv-open';
    if (c.id === this.active) open.setAttribute('aria-current', 'true');
    const title = document.createElement('span');
    title.className = 'conv-title';
    title.textContent = c.title || 'Untitled';
    const meta = document.createElement('span');
    meta.className = 'conv-meta';
    meta.textContent = `${shortTime(c.updatedAt)}${c.pending ? ' · waiting to send' : ''}`;
    open.append(title, meta);
    open.addEventListener('click', () => this.emit('gh-open', { id: c.id }));
    const actions = document.createElement('span');
    actions.className = 'conv-actions';
    const rename = document.createElement('button');
    rename.type = 'button';
    rename.className = 'btn btn-ghost';
    rename.append(icon('edit'));
    rename.setAttribute('aria-label', `Rename “${c.title || 'Untitled'}”`);
    rename.addEventListener('click', () => { this.renaming = c.id; this.render(); });
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'btn btn-ghost';
    del.append(icon('trash'));
    del.setAttribute('aria-label', `Delete “${c.title || 'Untitled'}”`);
    del.addEventListener('click', () => {
      // eslint-disable-next-line no-alert
      if (window.confirm(`Delete “${c.title || 'Untitled'}”? This cannot be undone.`)) this.emit('gh-delete', { id: c.id });
    });
    actions.append(rename, del);
    li.append(open, actions);
    return li;
  }

  renameForm(c) {
    const form = document.createElement('form');
    form.className = 'conv-rename';
    const label = document.createElement('label');
    label.className = 'visually-hidden';
    label.textContent = 'New title';
    const input = document.createElement('input');
    input.id = `rename-${c.id}`;
    label.htmlFor = input.id;
    input.value = c.title || '';
    input.maxLength = 200;
    const save = document.createElement('button');
    save.type = 'submit';
    save.className = 'btn btn-small';
    save.textContent = 'Save';
    form.append(label, input, save);
    const done = (title) => {
      this.renaming = null;
      if (title !== null && title !== c.title) this.emit('gh-rename', { id: c.id, title });
      this.render();
    };
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const t = input.value.trim();
      done(t || c.title);
    });
    input.addEventListener('keydown', (e) => { if (e.key === 'Escape') done(null); });
    queueMicrotask(() => { input.focus(); input.select(); });
    return form;
  }
}

customElements.define('gh-conversation-list', GhConversationList);
