// vnrit e2e: the viewer page on its own, against a stand-in server that serves web/ but
// refuses the WebSocket. Checks the reconnect schedule (1 s doubling), the status pill and
// that the page throws nothing. Needs no vnrit binary.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser } from './lib/harness.mjs';
import { startStaticServer } from './lib/static.mjs';
import { status } from './lib/page.mjs';
import { waitFor, ARTIFACTS } from './lib/harness.mjs';
import { join } from 'node:path';

/** Console errors Chromium itself prints for the refused requests; anything else is a bug. */
const EXPECTED_NETWORK_ERRORS = /WebSocket connection to .* failed|Failed to load resource/;

let browser;
let stand;

before(async () => {
  stand = await startStaticServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await stand?.close();
});

test('without a server the page retries with backoff 1 s, 2 s, 4 s and says so', { timeout: 40000 }, async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !EXPECTED_NETWORK_ERRORS.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  await page.goto(`${stand.base}/`, { timeout: 15000 });

  const seen = await waitFor(
    async () => {
      const s = await status(page);
      return s && s.state === 'reconnecting' ? s : null;
    },
    { timeoutMs: 5000, what: 'the reconnecting state' },
  );
  assert.match(seen.text, /^reconnecting in \d+ s/);
  await page.screenshot({ path: join(ARTIFACTS, 'page-reconnecting.png') });

  await waitFor(() => stand.wsAttempts.length >= 4, { timeoutMs: 20000, what: '4 WebSocket attempts' });
  const [t0, t1, t2, t3] = stand.wsAttempts;
  const gaps = [t1 - t0, t2 - t1, t3 - t2];
  // Each gap is the backoff delay plus a failed handshake and an auth probe on loopback
  // (slack for a busy machine); the bounds still tell doubling from constant or linear.
  assert.ok(gaps[0] >= 900 && gaps[0] < 1900, `first gap ${gaps[0]} ms, want about 1 s`);
  assert.ok(gaps[1] >= 1900 && gaps[1] < 3400, `second gap ${gaps[1]} ms, want about 2 s`);
  assert.ok(gaps[2] >= 3900 && gaps[2] < 5900, `third gap ${gaps[2]} ms, want about 4 s`);

  const video = await page.evaluate(() => {
    const v = document.getElementById('screen');
    return { muted: v.muted, autoplay: v.autoplay, playsInline: v.playsInline, fit: getComputedStyle(v).objectFit };
  });
  assert.deepEqual(video, { muted: true, autoplay: true, playsInline: true, fit: 'contain' });
  assert.deepEqual(problems, []);
  await page.close();
});

test('without WebRTC the page says so in a full-page message and does not connect', { timeout: 30000 }, async () => {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  await page.addInitScript(() => {
    delete window.RTCPeerConnection;
  });
  const before = stand.wsAttempts.length;
  await page.goto(`${stand.base}/`, { timeout: 15000 });
  const notice = page.locator('#notice');
  await waitFor(() => notice.isVisible(), { timeoutMs: 5000, what: 'the no-WebRTC message' });
  assert.equal(await notice.getAttribute('data-kind'), 'webrtc');
  assert.match(await page.locator('#notice-text').textContent(), /WebRTC/);
  assert.equal((await status(page)).state, 'error');
  assert.equal(stand.wsAttempts.length, before, 'no connection attempt without WebRTC');
  await page.screenshot({ path: join(ARTIFACTS, 'page-no-webrtc.png') });
  assert.deepEqual(problems, []);
  await page.close();
});
