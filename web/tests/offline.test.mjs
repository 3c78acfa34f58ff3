// Offline-first: the service worker keeps the app shell, IndexedDB keeps the conversations, so a
// reload without network still shows them; a message written offline is queued and delivered,
// in order, when the connection returns. Also the fallback page for pages never cached.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, lastReply, open, send, shot } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

async function controlled(page) {
  await page.evaluate(async () => { await navigator.serviceWorker.ready; });
  await page.waitForFunction(() => Boolean(navigator.serviceWorker.controller));
}

test('offline: a reload shows the conversations and queued messages go out on reconnect', async () => {
  const { context, page } = await open(browser);
  await controlled(page);
  await send(page, '[mock:echo] saved for later');
  await lastReply(page);
  const title = await page.locator('.conv-item.active .conv-title').innerText();

  await context.setOffline(true);
  await page.reload();
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.isVisible('#offline-banner'), true);
  assert.deepEqual(await page.locator('.conv-title').allInnerTexts(), [title]);
  assert.equal((await page.locator('gh-message[data-role="assistant"] .msg-body').innerText()).trim(), 'saved for later');

  // Two messages written offline wait, in order.
  await send(page, '[mock:echo] queued one');
  await send(page, '[mock:echo] queued two');
  await page.waitForFunction(() => document.querySelectorAll('gh-message[data-role="user"][data-status="queued"]').length === 2);
  assert.match(await page.locator('gh-message[data-status="queued"] .msg-status').first().innerText(), /Waiting for the connection/);
  assert.match(await page.locator('.conv-item.active .conv-meta').innerText(), /waiting to send/);
  await shot(page, 'chat-offline-queued');

  await context.setOffline(false);
  await page.waitForFunction(() => {
    const replies = [...document.querySelectorAll('gh-message[data-role="assistant"][data-status="done"] .msg-body')];
    return replies.length === 3;
  }, null, { timeout: 20000 });
  assert.equal(await page.isVisible('#offline-banner'), false);
  const replies = (await page.locator('gh-message[data-role="assistant"] .msg-body').allInnerTexts()).map((t) => t.trim());
  assert.deepEqual(replies, ['saved for later', 'queued one', 'queued two']);
  // The server got them, in order, in the same conversation.
  const list = await page.evaluate(async () => (await (await fetch('/web/api/conversations')).json()).data);
  assert.equal(list.length, 1);
  const conv = await page.evaluate(async (id) => (await fetch(`/web/api/conversations/${id}`)).json(), list[0].id);
  assert.deepEqual(conv.messages.map((m) => m.content), [
    '[mock:echo] saved for later', 'saved for later',
    '[mock:echo] queued one', 'queued one',
    '[mock:echo] queued two', 'queued two',
  ]);
  await context.close();
});

test('offline: a page never visited gets the fallback page', async () => {
  const { context, page } = await open(browser);
  await controlled(page);
  await context.setOffline(true);
  await page.goto('/never-visited');
  assert.equal(await page.locator('h1').innerText(), 'You are offline');
  assert.equal(await page.getAttribute('a.btn', 'href'), '/');
  await shot(page, 'offline-fallback');
  await context.setOffline(false);
  await context.close();
});
