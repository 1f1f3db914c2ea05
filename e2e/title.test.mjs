// vnrit e2e: the page's small things against the real server: the tab's title names the
// display and its size ("vnrit · :N · 1280x720"), the page has a favicon that loads (no 404,
// which Chromium would otherwise log on every load), and nothing on the page fails to load or
// logs an error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { openPage } from './lib/page.mjs';

let h;

before(async () => {
  h = await Harness.start('title');
});

after(async () => {
  await h?.close();
});

test('the title shows the display and its size; the favicon loads; no request fails', { timeout: 60000 }, async () => {
  h.setRoot('#2050a0');
  const context = await h.browser.newContext();
  const failed = [];
  context.on('response', (res) => {
    if (res.status() >= 400) failed.push(`${res.status()} ${res.url()}`);
  });
  context.on('requestfailed', (req) => {
    // A reload aborts what the old page still had in flight; that is not a missing file.
    const why = req.failure()?.errorText ?? '';
    if (!why.includes('ERR_ABORTED')) failed.push(`failed ${req.url()}: ${why}`);
  });
  const { page, problems } = await openPage(context, h.server.url, '#2050a0');

  const want = `vnrit · ${h.display} · 1280x720`;
  await waitFor(async () => (await page.title()) === want, { timeoutMs: 5000, what: `the title "${want}"` });

  const icon = await page.evaluate(async () => {
    const link = document.querySelector('link[rel="icon"]');
    if (!link) return null;
    const res = await fetch(link.href);
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type'), svg: text.includes('<svg') };
  });
  assert.deepEqual(icon, { status: 200, type: 'image/svg+xml', svg: true });

  // A reload is a second page load: still no 404 and no console error.
  await page.reload({ timeout: 15000 });
  await waitFor(async () => (await page.title()) === want, { timeoutMs: 10000, what: 'the title after a reload' });
  assert.deepEqual(failed, []);
  assert.deepEqual(problems, []);
  await context.close();
});
