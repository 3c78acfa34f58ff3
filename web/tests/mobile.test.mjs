// A 375-px phone: nothing scrolls sideways, the conversation list is a drawer reachable by
// keyboard, and the admin console fits too.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ADMIN_KEY, launch, lastReply, open, send, shot } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

const PHONE = { width: 375, height: 740 };

async function noSideScroll(page) {
  const { scroll, client } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(scroll <= client, `page is ${scroll}px wide in a ${client}px viewport`);
  assert.equal(client, 375);
}

test('the chat fits a 375-px screen without horizontal scrolling', async () => {
  const { context, page } = await open(browser, '/', PHONE);
  await send(page, '[mock:echo] A long line: ' + 'supercalifragilistic'.repeat(8) + '\n\n```\n' + 'x'.repeat(200) + '\n```');
  await lastReply(page);
  await page.click('.cost-toggle');
  const panel = await page.locator('.cost-panel').boundingBox();
  assert.ok(panel.x >= 0 && panel.x + panel.width <= 375, `the cost panel is on screen: ${JSON.stringify(panel)}`);
  await noSideScroll(page);
  await shot(page, 'mobile-chat');
  await page.keyboard.press('Escape');
  // The list opens as a drawer, takes the focus, and gives it back on Escape.
  assert.equal(await page.isVisible('#sidebar'), false);
  await page.click('#menu-toggle');
  await page.locator('#sidebar.open').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.id), 'sidebar-close');
  await noSideScroll(page);
  await shot(page, 'mobile-conversations');
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'menu-toggle');
  await context.close();
});

test('the admin console fits a 375-px screen', async () => {
  const { context, page } = await open(browser, '/admin', PHONE);
  await page.fill('#admin-key', ADMIN_KEY);
  await page.click('#signin-form button[type="submit"]');
  await page.locator('#console').waitFor();
  for (const name of ['assistants', 'usage', 'health']) {
    await page.goto(`/admin#/${name}`);
    await page.waitForTimeout(400);
    await noSideScroll(page);
    await shot(page, `mobile-admin-${name}`);
  }
  await context.close();
});

test('keyboard: the skip link and the composer are reachable, controls are labelled', async () => {
  const { context, page } = await open(browser, '/');
  // The message box has the focus on arrival; from the top of the page the skip link is first.
  assert.equal(await page.evaluate(() => document.activeElement.id), 'composer-input');
  await page.evaluate(() => {
    document.body.tabIndex = -1;
    document.body.focus();
    document.body.removeAttribute('tabindex');
  });
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to the message box');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'composer-input');
  // Every button and form control has an accessible name.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input:not([type=hidden]), select, textarea')]
    .filter((el) => el.offsetParent !== null && !el.getAttribute('aria-hidden'))
    .filter((el) => !(el.getAttribute('aria-label') || el.textContent.trim() || (el.id && document.querySelector(`label[for="${el.id}"]`)) || el.getAttribute('aria-labelledby')))
    .map((el) => el.outerHTML.slice(0, 80)));
  assert.deepEqual(unnamed, []);
  await context.close();
});
