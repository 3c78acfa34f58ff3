// The admin console: sign-in, an assistant created (with the live token counter) and chatted
// with, an experiment started with results and promotion, API keys created and revoked, the
// dashboards, health and audit screens, and sign-out.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { bodyText, ADMIN_KEY, launch, lastReply, open, pageJson, pickTarget, send, shot } from './helpers.mjs';

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

async function signIn(page) {
  await page.fill('#admin-key', ADMIN_KEY);
  await page.click('#signin-form button[type="submit"]');
  await page.locator('#console').waitFor();
}

async function screen(page, name) {
  await page.goto(`/admin#/${name}`);
  await page.waitForFunction((n) => document.querySelector(`#admin-nav a[href="#/${n}"]`).getAttribute('aria-current') === 'page', name);
  await page.waitForFunction(() => !document.querySelector('#admin-main [role="status"]')?.textContent.startsWith('Loading'));
}

test('sign-in: a wrong key is refused; the right one opens the console with an HttpOnly cookie', async () => {
  const { context, page } = await open(browser, '/admin');
  await shot(page, 'admin-signin');
  await page.fill('#admin-key', 'wrong-key');
  await page.click('#signin-form button[type="submit"]');
  await page.locator('#signin-error', { hasText: 'That is not the admin key.' }).waitFor();
  await signIn(page);
  const cookies = await context.cookies();
  const admin = cookies.find((c) => c.name === 'gh_admin');
  assert.equal(admin.httpOnly, true);
  assert.equal(admin.sameSite, 'Strict');
  assert.equal(admin.path, '/admin');
  assert.equal(await page.evaluate(() => document.cookie.includes('gh_admin')), false);
  assert.equal(await page.evaluate(async () => (await fetch('/admin/api/deployments')).status), 200);
  // Sign-out ends the session on the server too: the old cookie, put back, no longer works.
  await page.click('#signout');
  await page.locator('#signin').waitFor();
  assert.equal((await context.cookies()).some((c) => c.name === 'gh_admin'), false);
  await context.addCookies([admin]);
  assert.equal(await page.evaluate(async () => (await fetch('/admin/api/deployments')).status), 401);
  await context.close();
});

// Unique per run, so the tests also pass against a server that ran them before.
const RUN = Date.now().toString(36);
const HELPER = `helper-${RUN}`;
const TESTER = `tester-${RUN}`;
const NAME = `Helper ${RUN}`;

test('an assistant is created with a live token count, then chatted with', async () => {
  const { context, page } = await open(browser, '/admin');
  await signIn(page);
  await screen(page, 'assistants');
  await page.click('text=New assistant');
  await page.fill('input[name="slug"]', HELPER);
  await page.fill('input[name="name"]', NAME);
  await page.fill('input[name="model"]', 'mock-1');
  await page.fill('input[name="description"]', 'Answers briefly');
  const server = await page.evaluate(async () => {
    const s = await (await fetch('/admin/api/session')).json();
    const r = await fetch('/admin/api/tokens', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': s.csrf_token },
      body: JSON.stringify({ text: 'You are a helpful assistant.', model: 'mock-1' }),
    });
    return r.json();
  });
  // The counter follows the typing, with the server's count against the lint limit.
  await page.fill('textarea[name="system_prompt"]', 'You are a helpful assistant.');
  await page.waitForFunction((n) => document.querySelector('.token-count').dataset.tokens === String(n), server.tokens);
  assert.equal(await page.innerText('.token-count'), `${server.tokens} / 2,000 tokens (o200k_base)`);
  await shot(page, 'admin-assistant-editor');
  await page.click('button:has-text("Create")');
  const row = page.locator('tr', { hasText: NAME });
  await row.waitFor();
  assert.equal(await row.locator('td:nth-child(3)').innerText(), 'v1');
  await shot(page, 'admin-assistants');

  // Disable and enable again: each change is a version.
  await page.click(`button[aria-label="Disable ${NAME}"]`);
  await row.locator('.badge', { hasText: 'disabled' }).waitFor();
  await page.click(`button[aria-label="Enable ${NAME}"]`);
  await row.locator('.badge', { hasText: 'enabled' }).waitFor();
  await page.click(`button[aria-label="Version history of ${NAME}"]`);
  const history = page.locator(`section[aria-label="History of ${NAME}"]`);
  await history.locator('tbody tr').nth(2).waitFor();
  assert.deepEqual(await history.locator('tbody tr td:first-child').allInnerTexts(), ['v3', 'v2', 'v1']);

  await page.goto('/');
  await page.waitForSelector('body[data-ready="true"]');
  assert.equal(await page.locator(`#target optgroup[label="Assistants"] option[value="assistant/${HELPER}"]`).innerText(), NAME);
  await pickTarget(page, `assistant/${HELPER}`);
  await send(page, '[mock:echo] hello from the helper');
  const reply = await lastReply(page);
  assert.equal(await bodyText(reply), 'hello from the helper');
  const convs = await pageJson(page, '/web/api/conversations');
  assert.equal(convs.data[0].model, `assistant/${HELPER}`);
  await context.close();
});

test('an experiment is started, rated through the chat, shows results and is promoted', async () => {
  const { context, page } = await open(browser, '/admin');
  await signIn(page);
  const csrf = (await pageJson(page, '/admin/api/session')).csrf_token;
  await page.evaluate(async ([token, slug]) => {
    await fetch('/admin/api/assistants', {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': token },
      body: JSON.stringify({ slug, name: 'Tester', model: 'mock-1', system_prompt: 'Be brief.' }),
    });
  }, [csrf, TESTER]);
  await screen(page, 'experiments');
  await page.selectOption('#exp-assistant', TESTER);
  await page.click('text=New experiment');
  await page.fill('input[name="exp-name"]', 'brevity');
  await page.locator('fieldset.variant').nth(1).locator('textarea[name="system_prompt"]').fill('Be very brief.');
  await page.click('button:has-text("Start experiment")');
  await page.locator('tr:has-text("brevity") .badge', { hasText: 'running' }).waitFor();
  await shot(page, 'admin-experiments');

  // People chat with the assistant and rate replies.
  const chat = await context.newPage();
  chat.on('dialog', (d) => d.accept());
  await chat.goto('/');
  await chat.waitForSelector('body[data-ready="true"]');
  for (let i = 0; i < 3; i += 1) {
    await chat.click('.new-conv');
    await pickTarget(chat, `assistant/${TESTER}`);
    await send(chat, `[mock:echo] answer ${i}`);
    const reply = await lastReply(chat);
    await reply.locator('button[aria-label="Good reply"]').click();
    await chat.waitForFunction(() => document.querySelector('gh-message[data-role="assistant"] button[aria-label="Good reply"]').getAttribute('aria-pressed') === 'true');
  }
  await chat.close();

  await page.click('tr:has-text("brevity") button:has-text("Results")');
  const results = page.locator('section.results');
  await results.locator('tbody tr').nth(1).waitFor();
  const rows = await results.locator('tbody tr').allInnerTexts();
  const positives = rows.map((r) => Number(r.split('\t')[3].split(' / ')[0]));
  assert.equal(positives.reduce((a, b) => a + b, 0), 3);
  assert.match(await results.locator('td.ci').first().innerText(), /^(no ratings yet|\d+\.\d% \(95% CI \d+\.\d%–\d+\.\d%\))$/);
  assert.ok((await results.locator('td.ci').allInnerTexts()).some((t) => t.startsWith('100.0% (95% CI')));
  await shot(page, 'admin-experiment-results');
  await results.locator('button[aria-label="Promote B"]').click();
  await page.locator('tr:has-text("brevity") .badge', { hasText: 'stopped' }).waitFor();
  const tester = await pageJson(page, `/admin/api/assistants/${TESTER}`);
  assert.equal(tester.version, 2);
  assert.equal(tester.system_prompt, 'Be very brief.');
  await context.close();
});

test('API keys are created (shown once) and revoked', async () => {
  const { context, page } = await open(browser, '/admin');
  await signIn(page);
  await screen(page, 'keys');
  await page.click('text=New key');
  await page.fill('input[name="name"]', 'ci-bot');
  await page.fill('input[name="rpm"]', '60');
  await page.fill('input[name="daily_budget"]', '2.50');
  await page.click('button:has-text("Create key")');
  const secret = await page.locator('#new-key-secret').innerText();
  assert.ok(secret.length > 20, secret);
  await shot(page, 'admin-key-created');
  // The key works against the API, and is listed without its secret.
  const ok = await page.evaluate(async (k) => (await fetch('/v1/models', { headers: { authorization: `Bearer ${k}` } })).status, secret);
  assert.equal(ok, 200);
  await page.click('button:has-text("I have stored it")');
  const row = page.locator('tr:has-text("ci-bot")');
  assert.match(await row.innerText(), /60 req\/min/);
  assert.match(await row.innerText(), /\$2\.50\/day/);
  assert.equal(await page.locator(`text=${secret}`).count(), 0);
  await row.locator('button:has-text("Revoke")').click();
  await page.locator('tr:has-text("ci-bot")').waitFor({ state: 'detached' });
  await page.check('#show-revoked');
  await page.locator('tr:has-text("ci-bot") .badge', { hasText: 'revoked' }).waitFor();
  const denied = await page.evaluate(async (k) => (await fetch('/v1/models', { headers: { authorization: `Bearer ${k}` } })).status, secret);
  assert.equal(denied, 401);
  await shot(page, 'admin-keys');
  await context.close();
});

test('usage dashboards, health and the audit log', async () => {
  const { context, page } = await open(browser, '/admin');
  await signIn(page);
  await screen(page, 'usage');
  await page.locator('.chart canvas').first().waitFor();
  assert.equal(await page.locator('.chart').count(), 2);
  const report = await pageJson(page, '/admin/api/usage?group_by=none');
  assert.ok(report.data[0].requests > 0);
  assert.ok(await page.locator('section[aria-label="By model"] tr:has-text("mock-1")').count() === 1);
  assert.match(await page.locator('section[aria-label="Cache"]').innerText(), /Response cache/);
  await shot(page, 'admin-usage');
  await screen(page, 'health');
  await page.locator('td code', { hasText: 'slow/slow-1' }).waitFor();
  const ready = await pageJson(page, '/ready');
  assert.equal(await page.innerText('[data-k="queue-depth"]'), String(ready.ledger.queue_depth));
  await shot(page, 'admin-health');
  await screen(page, 'audit');
  await shot(page, 'admin-audit');
  assert.deepEqual(page.errors, []);
  await context.close();
});
