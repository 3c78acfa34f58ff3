// The chat against the real server and its mock provider: streaming, stop, hostile markdown,
// the cost widget, images, audio, errors with a countdown, regenerate, edit and rename.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { bodyText, PNG, launch, lastReply, open, pageJson, pickTarget, send, shot, wav } from './helpers.mjs';

/** The widget's format for amounts under a cent (all six decimals, trailing zeros dropped). */
function usd(micros) {
  assert.ok(micros > 0 && micros < 10_000, `an amount under a cent: ${micros}`);
  return `$0.${String(micros).padStart(6, '0').replace(/0+$/, '')}`;
}

let browser;
before(async () => { browser = await launch(); });
after(async () => { await browser.close(); });

test('a reply streams in and is rendered as markdown with highlighted, copyable code', async () => {
  const { context, page } = await open(browser);
  await shot(page, 'chat-empty');
  await pickTarget(page, 'slow-1');
  await send(page, '[mock:echo] Here is **bold** and code:\n\n```rust\nfn main() { println!("hi"); }\n```');
  // While streaming, the message grows and the button says Stop.
  const streaming = page.locator('gh-message[data-role="assistant"][data-status="streaming"]');
  await streaming.waitFor();
  await page.waitForFunction(() => {
    const el = document.querySelector('gh-message[data-role="assistant"] .msg-body');
    return el && el.textContent.length > 0 && el.textContent.length < 20;
  });
  assert.equal(await page.getAttribute('gh-composer .send', 'aria-label'), 'Stop the reply');
  const reply = await lastReply(page);
  assert.equal(await reply.locator('strong').innerText(), 'bold');
  assert.equal(await reply.locator('code.hljs').count(), 1);
  assert.ok(await reply.locator('.hljs-keyword').count() >= 1, 'rust keywords are highlighted');
  assert.equal(await reply.locator('.code-lang').innerText(), 'rust');
  // Once the server's cost is in (the last re-render), copy the code.
  await reply.locator('.msg-cost').waitFor();
  await context.grantPermissions(['clipboard-read', 'clipboard-write']);
  await reply.locator('.copy-code').click();
  await reply.locator('.copy-code', { hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), 'fn main() { println!("hi"); }\n');
  assert.equal(await page.getAttribute('gh-composer .send', 'aria-label'), 'Send the message');
  // The conversation is in the list, titled after the first message.
  assert.match(await page.locator('.conv-item.active .conv-title').innerText(), /^\[mock:echo\] Here is \*\*bold\*\*/);
  await shot(page, 'chat-reply');
  assert.deepEqual(page.errors, []);
  await context.close();
});

test('stop ends the reply mid-stream and the server cancels the upstream call', async () => {
  const { context, page } = await open(browser);
  await pickTarget(page, 'slow-1');
  const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
  await send(page, `[mock:echo] ${words}`);
  await page.waitForFunction(() => {
    const el = document.querySelector('gh-message[data-role="assistant"][data-status="streaming"] .msg-body');
    return el && el.textContent.split(' ').length >= 3;
  });
  await page.click('gh-composer .send');
  const reply = await lastReply(page, 'stopped');
  const text = await bodyText(reply);
  assert.ok(text.startsWith('w0 w1'), text);
  assert.ok(text.split(/\s+/).length < 40, `stopped early: ${text}`);
  assert.match(await reply.locator('.msg-status').innerText(), /Stopped/);
  // The server recorded the request as cancelled by the client (status 499), with what it cost.
  const requestId = await page.evaluate(() => {
    const els = document.querySelectorAll('gh-message[data-role="assistant"]');
    return els[els.length - 1].message.requestId;
  });
  let record = null;
  for (let i = 0; i < 40 && !record; i += 1) {
    const usage = await pageJson(page, '/web/api/usage');
    record = usage.recent.find((r) => r.request_id === requestId) || null;
    if (!record) await page.waitForTimeout(100);
  }
  assert.ok(record, 'the stopped request is in the usage records');
  assert.equal(record.status, 499);
  assert.ok(record.completion_tokens < 40, JSON.stringify(record));
  await context.close();
});

test('a hostile markdown reply runs no script and keeps no dangerous link', async () => {
  const { context, page } = await open(browser);
  const hostile = [
    '[mock:echo] <img src=x onerror="window.__pwned=1">',
    '<script>window.__pwned=2</script>',
    '[click me](javascript:window.__pwned=3)',
    '<a href="javascript:window.__pwned=4">raw link</a>',
    '<div onmouseover="window.__pwned=5" style="position:fixed;inset:0">hover</div>',
    '<iframe src="javascript:window.parent.__pwned=6"></iframe>',
    '<svg><script>window.__pwned=7</script></svg>',
    '![pixel](https://tracker.example/p.png)',
    '<form action="/admin/api/session"><button>go</button></form>',
  ].join('\n\n');
  await send(page, hostile);
  const reply = await lastReply(page);
  await reply.locator('a', { hasText: 'click me' }).click();
  await reply.locator('.msg-body').hover();
  await page.waitForTimeout(300);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const report = await reply.evaluate((el) => {
    const body = el.querySelector('.msg-body');
    const attrs = [...body.querySelectorAll('*')].flatMap((n) => [...n.attributes].map((a) => a.name));
    return {
      scripts: body.querySelectorAll('script, iframe, form, svg, img, button').length,
      handlers: attrs.filter((a) => a.startsWith('on')),
      styles: attrs.filter((a) => a === 'style'),
      hrefs: [...body.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      text: body.textContent,
    };
  });
  assert.equal(report.scripts, 0);
  assert.deepEqual(report.handlers, []);
  assert.deepEqual(report.styles, []);
  assert.ok(report.hrefs.every((h) => h === null || /^https:\/\//.test(h)), JSON.stringify(report.hrefs));
  assert.ok(report.hrefs.includes('https://tracker.example/p.png'), 'the remote image became a link');
  assert.match(report.text, /click me/);
  // The user's own message is shown as text, not markup.
  const mine = await page.locator('gh-message[data-role="user"] .msg-body').innerText();
  assert.match(mine, /<script>window.__pwned=2<\/script>/);
  await shot(page, 'chat-hostile-markdown');
  await context.close();
});

test('the cost widget shows the server\'s numbers', async () => {
  const { context, page } = await open(browser);
  await send(page, '[mock:echo] one two three four');
  await lastReply(page);
  await send(page, '[mock:echo] five six');
  await lastReply(page);
  await page.waitForFunction(() => document.querySelectorAll('gh-message[data-role="assistant"] .msg-cost').length === 2);
  const usage = await pageJson(page, '/web/api/usage');
  assert.equal(usage.requests, 2);
  await page.click('.cost-toggle');
  assert.equal(await page.getAttribute('.cost-toggle', 'aria-expanded'), 'true');
  const exact = async (k) => page.getAttribute(`.cost-panel [data-k="${k}"]`, 'title');
  assert.equal(await exact('today'), `${usage.cost_micros.toLocaleString('en-US')} micro-dollars (${usd(usage.cost_micros)})`);
  assert.equal(await page.innerText('.cost-panel [data-k="messages"]'), '2');
  assert.equal(await page.innerText('.cost-panel [data-k="tokens"]'), String(usage.total_tokens));
  assert.equal(await exact('average'), `${usage.average_cost_per_message_micros} micro-dollars (${usd(usage.average_cost_per_message_micros)})`);
  assert.equal(await page.innerText('.cost-panel [data-k="budget"]'), '$1.00');
  // This conversation is every request so far; its cost comes from the server's record.
  const conv = await page.evaluate(async () => {
    const r = await fetch('/web/api/conversations', { credentials: 'same-origin' });
    return (await r.json()).data[0];
  });
  assert.equal(await exact('conversation'), `${conv.cost_micros} micro-dollars (${usd(conv.cost_micros)})`);
  assert.equal(conv.cost_micros, usage.cost_micros);
  assert.equal(await page.innerText('.cost-summary'), usd(conv.cost_micros));
  await shot(page, 'chat-cost-widget');
  // Collapsible with the keyboard.
  await page.keyboard.press('Escape');
  assert.equal(await page.getAttribute('.cost-toggle', 'aria-expanded'), 'false');
  await context.close();
});

test('images: preview, remove, send; non-images refused; a text-only model says it cannot see', async () => {
  const { context, page } = await open(browser);
  await page.setInputFiles('gh-composer .image-input', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.locator('.attachment img[alt="Preview of dot.png"]').waitFor();
  await page.click('button[aria-label="Remove image dot.png"]');
  assert.equal(await page.locator('.attachment').count(), 0);
  // Bad input: a text file.
  await page.setInputFiles('gh-composer .image-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
  assert.match(await page.innerText('.composer-note'), /“notes\.txt” is not an image \(text\/plain\)\. Only PNG, JPEG, GIF and WebP/);
  assert.equal(await page.locator('.attachment').count(), 0);
  await page.setInputFiles('gh-composer .image-input', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.locator('.attachment img').waitFor();
  await shot(page, 'chat-image-preview');
  await send(page, '[mock:echo] what is in this picture?');
  const reply = await lastReply(page);
  assert.equal(await bodyText(reply), 'what is in this picture?');
  assert.equal(await page.locator('gh-message[data-role="user"] .msg-images img').count(), 1);
  // The same with a model without vision: a clear message, and the way out.
  await page.click('.new-conv');
  await pickTarget(page, 'text-only');
  await page.setInputFiles('gh-composer .image-input', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.locator('.attachment img').waitFor();
  await send(page, 'describe it');
  const failed = await lastReply(page, 'error');
  assert.equal(await failed.locator('.alert strong').innerText(), 'This model cannot see images');
  assert.equal(await failed.locator('.alert button').innerText(), 'Edit the message');
  await shot(page, 'chat-image-refused');
  await context.close();
});

test('audio is transcribed by the server and inserted as the message', async () => {
  const { context, page } = await open(browser);
  const audio = wav();
  await page.setInputFiles('gh-composer .audio-input', { name: 'hello.wav', mimeType: 'audio/wav', buffer: audio });
  await page.waitForFunction((n) => document.querySelector('#composer-input').value === `Transcript of hello.wav (${n} bytes)`, audio.length);
  assert.match(await page.innerText('.composer-note'), /Transcript inserted/);
  await page.press('#composer-input', 'Enter');
  const reply = await lastReply(page);
  assert.equal(await bodyText(reply), `This is the Gatehouse mock provider. You said: Transcript of hello.wav (${audio.length} bytes)`);
  // Bad input: an image given as audio is refused before upload.
  await page.setInputFiles('gh-composer .audio-input', { name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  assert.match(await page.innerText('.composer-note'), /“dot\.png” is not an audio file/);
  await context.close();
});

test('an upstream 429 shows what happened and counts down to the retry', async () => {
  const { context, page } = await open(browser);
  await send(page, 'please fail [mock:status=429]');
  const failed = await lastReply(page, 'error');
  assert.equal(await failed.locator('.alert strong').innerText(), 'The model provider is busy');
  const countdown = failed.locator('.countdown');
  assert.match(await countdown.innerText(), /^(Retry possible in \d+ s|You can retry now\.)$/);
  await page.waitForFunction(() => document.querySelector('.countdown').textContent === 'You can retry now.', null, { timeout: 15000 });
  assert.equal(await failed.locator('.alert button').isEnabled(), true);
  await shot(page, 'chat-error-retry');
  await context.close();
});

test('regenerate, edit and resend, rename and search', async () => {
  const { context, page } = await open(browser);
  await send(page, '[mock:echo] first answer');
  await lastReply(page);
  await page.click('gh-message[data-role="assistant"] button[aria-label="Regenerate this reply"]');
  await page.waitForFunction(() => document.querySelectorAll('gh-message').length === 2
    && document.querySelector('gh-message[data-role="assistant"]').dataset.status === 'done');
  await page.click('gh-message[data-role="user"] button[aria-label="Edit and resend this message"]');
  await page.fill('gh-message[data-role="user"] textarea', '[mock:echo] edited answer');
  await page.click('gh-message[data-role="user"] button:has-text("Save and resend")');
  await page.waitForFunction(() => {
    const r = document.querySelector('gh-message[data-role="assistant"][data-status="done"] .msg-body');
    return r && r.textContent.trim() === 'edited answer' && document.querySelectorAll('gh-message').length === 2;
  });
  // The server's copy was cut back and resent too.
  const conv = (await pageJson(page, '/web/api/conversations')).data[0];
  const full = await pageJson(page, `/web/api/conversations/${conv.id}`);
  assert.deepEqual(full.messages.map((m) => m.content), ['[mock:echo] edited answer', 'edited answer']);
  await page.click('.conv-item.active button[aria-label^="Rename"]');
  await page.fill('.conv-rename input', 'Renamed chat');
  await page.press('.conv-rename input', 'Enter');
  await page.locator('.conv-item.active .conv-title', { hasText: 'Renamed chat' }).waitFor();
  assert.equal((await pageJson(page, `/web/api/conversations/${conv.id}`)).title, 'Renamed chat');
  await page.click('.new-conv');
  await send(page, 'another topic');
  await lastReply(page);
  await page.fill('#conv-search', 'renamed');
  assert.deepEqual(await page.locator('.conv-title').allInnerTexts(), ['Renamed chat']);
  await context.close();
});
