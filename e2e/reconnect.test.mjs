// vnrit e2e: the page survives a server restart — it shows "reconnecting", comes back by
// itself, decodes again, and leaves no stale session behind (the old one was closed). While
// the server is away a full-page message says so; it goes once the page is connected again.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { openPage, status, waitForColour } from './lib/page.mjs';

let h;

before(async () => {
  h = await Harness.start('reconnect');
});

after(async () => {
  await h?.close();
});

test('after a server restart the page reconnects by itself and decodes again', { timeout: 90000 }, async () => {
  h.setRoot('#ffff00');
  const { page, problems } = await openPage(h.browser, h.server.url, '#ffff00');

  await h.server.child.stop();
  const down = await waitFor(
    async () => {
      const s = await status(page);
      return s && s.state === 'reconnecting' ? s : null;
    },
    { timeoutMs: 15000, what: 'the page to notice the server went away' },
  );
  assert.match(down.text, /^reconnecting in \d+ s/);
  // Once an attempt cannot even reach the server, a full-page message says so.
  await waitFor(async () => (await page.locator('#notice').getAttribute('data-kind')) === 'gone', {
    timeoutMs: 15000,
    what: 'the full-page "server gone" message',
  });
  assert.match(await page.locator('#notice-text').textContent(), /not answering.*Trying again in \d+ s/s);
  assert.equal(await page.locator('#notice-action').textContent(), 'Retry now');
  await h.screenshot(page, 'server-down');

  h.setRoot('#ff00ff');
  await h.restartServer();
  // The page's backoff is at most a few seconds here; give it that plus a connect.
  await waitForColour(page, '#ff00ff', { timeoutMs: 20000 });
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 5000, what: 'status connected' });
  assert.equal(await page.locator('#notice').isVisible(), false, 'the message is gone once connected');
  await h.screenshot(page, 'reconnected');

  const s = await waitFor(
    async () => {
      const x = await h.stats();
      return x.viewers === 1 ? x : null;
    },
    { timeoutMs: 5000, what: 'exactly one viewer after the reconnect' },
  );
  assert.equal(s.sessions.length, 1, JSON.stringify(s));
  await page.close();
  assert.deepEqual(problems, []);
});

test('a page whose scripts failed to load reloads itself with backoff and then decodes', { timeout: 60000 }, async () => {
  h.setRoot('#00ff00');
  const page = await h.browser.newPage();
  // The first two fetches of one imported module fail, as on a network blip mid-load.
  let refused = 0;
  await page.route('**/clipboard.js', (route) => (refused++ < 2 ? route.abort('failed') : route.continue()));
  const warnings = [];
  page.on('console', (m) => {
    if (m.type() === 'warning' && m.text().startsWith('vnrit: app.js did not start')) warnings.push(m.text());
  });
  await page.goto(h.server.url, { timeout: 15000 });
  const stuck = await waitFor(
    async () => {
      const s = await status(page);
      return s?.state === 'error' ? s : null;
    },
    { timeoutMs: 5000, what: 'the page to say its scripts did not load' },
  );
  assert.match(stuck.text, /^the viewer did not load; retrying in 1 s$/);
  await waitForColour(page, '#00ff00', { timeoutMs: 20000 });
  assert.equal(refused, 3, 'two refused fetches, then the one that loaded');
  // Backoff: the first retry waits 1 s, the second 2 s.
  assert.deepEqual(
    warnings.map((w) => w.match(/in (\d+) ms/)?.[1]),
    ['1000', '2000'],
    warnings.join('\n'),
  );
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 5000, what: 'status connected' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('vnrit-load-retries')), null, 'count cleared once loaded');
  await page.close();
});
