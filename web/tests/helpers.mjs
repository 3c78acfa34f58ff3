// Shared by the browser tests: Debian's chromium through playwright-core, one fresh browser
// context (a fresh anonymous user) per test, screenshots in $SCREENSHOT_DIR, and small helpers
// for the chat page. run.sh sets GATEHOUSE_URL and GATEHOUSE_ADMIN_KEY.

import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const BASE = process.env.GATEHOUSE_URL || 'http://127.0.0.1:8080';
export const ADMIN_KEY = process.env.GATEHOUSE_ADMIN_KEY || '';
const SHOTS = process.env.SCREENSHOT_DIR
  || join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'target', 'ui-screenshots');
mkdirSync(SHOTS, { recursive: true });

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A browser for one test file. */
export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ARGS,
  });
}

/** A fresh context (own cookies, storage, service worker) and page; collects page errors. */
export async function open(browser, path = '/', { width = 1280, height = 820 } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, baseURL: BASE });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('dialog', (d) => d.accept());
  await page.goto(path);
  await page.waitForSelector('body[data-ready="true"]');
  return { context, page };
}

export async function shot(page, name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: false });
}

/** Type a message in the chat and send it with Enter. */
export async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/** The latest assistant message once it reached `status` (done by default). */
export async function lastReply(page, status = 'done') {
  const reply = page.locator(`gh-message[data-role="assistant"][data-status="${status}"]`).last();
  await reply.waitFor();
  return reply;
}

/** A message's rendered text, without the trailing line break of its last paragraph. */
export async function bodyText(message) {
  return (await message.locator('.msg-body').innerText()).trim();
}

export async function pickTarget(page, value) {
  await page.selectOption('#target', value);
}

/** GET from the page (its cookies), parsed JSON. */
export async function pageJson(page, path) {
  return page.evaluate(async (p) => (await fetch(p, { credentials: 'same-origin' })).json(), path);
}

/** A valid 1×1 PNG. */
export const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
  'base64',
);

/** A short silent WAV (8 kHz, mono, 16-bit, 100 samples). */
export function wav() {
  const samples = 100;
  const b = Buffer.alloc(44 + samples * 2);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + samples * 2, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(8000, 24);
  b.writeUInt32LE(16000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(samples * 2, 40);
  return b;
}
