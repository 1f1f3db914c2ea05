// vnrit e2e: Debian's Firefox ESR (headless, WebDriver BiDi through puppeteer-core) as a viewer
// next to Chromium. Firefox here decodes VP8, VP9 and AV1 only (no H.264 without its downloaded
// plugin). A page whose offer the server cannot take shows the server's own reason and keeps it
// through the retries.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { newFirefoxPage } from './lib/firefox.mjs';
import { status, watchConsole } from './lib/page.mjs';

const started = Date.now();
let h;
/** Uncaught exceptions and console errors of every page of this file; must stay empty. */
const pageErrors = [];

async function firefoxPage(opts) {
  const page = await newFirefoxPage(h.firefox, opts);
  const problems = watchConsole(page);
  page.on('close', () => pageErrors.push(...problems));
  return page;
}

before(async () => {
  h = await Harness.start('firefox', { browser: false, firefox: true });
});

after(async () => {
  await h?.close();
  console.log(`# firefox.test.mjs ran ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.deepEqual(pageErrors, [], 'no uncaught page errors or console errors');
});

/** An init script: the page's video transceiver offers AV1 only, which vnrit never sends. */
function offerOnlyAv1() {
  const add = RTCPeerConnection.prototype.addTransceiver;
  RTCPeerConnection.prototype.addTransceiver = function onlyAv1(kind, init) {
    const t = add.call(this, kind, init);
    if (kind === 'video') {
      t.setCodecPreferences(RTCRtpReceiver.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/AV1'));
    }
    return t;
  };
  const Ws = window.WebSocket;
  window.__attempts = 0;
  window.WebSocket = function counted(...args) {
    window.__attempts += 1;
    return new Ws(...args);
  };
  window.WebSocket.prototype = Ws.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
}

/** The notice's kind and text, and the status pill. */
function shown(page) {
  return page.evaluate(() => {
    const n = document.getElementById('notice');
    const s = document.getElementById('status');
    return {
      kind: n.hidden ? null : n.dataset.kind,
      notice: n.hidden ? '' : n.textContent,
      state: s.dataset.state,
      pill: s.textContent,
      attempts: window.__attempts,
    };
  });
}

test('an offer without a codec the server sends: the page shows the server\'s reason and keeps it', { timeout: 60000 }, async () => {
  const page = await firefoxPage();
  await page.evaluateOnNewDocument(offerOnlyAv1);
  await page.goto(h.server.url, { timeout: 15000 });
  const first = await waitFor(
    async () => {
      const s = await shown(page);
      if (s.kind === 'refused') return s;
      throw new Error(JSON.stringify(s));
    },
    { timeoutMs: 15000, what: 'the refusal notice' },
  );
  const reason = /said: “([^”]+)”/.exec(first.notice)?.[1];
  assert.ok(reason, `the notice quotes the server: ${first.notice}`);
  assert.match(reason, /codec/i, 'the reason names the codec');
  console.log(`# refusal shown: ${JSON.stringify(reason)}`);
  // Through the next attempts (1 s, then 2 s later), nothing replaces the reason.
  const seen = [];
  await waitFor(
    async () => {
      const s = await shown(page);
      seen.push(s);
      assert.equal(s.kind, 'refused', `the notice stays: ${JSON.stringify(s)}`);
      assert.ok(s.notice.includes(reason), `the notice keeps the reason: ${s.notice}`);
      if (s.state === 'error' || s.state === 'reconnecting') assert.ok(s.pill.includes(reason) || s.state === 'reconnecting', s.pill);
      return s.attempts >= 3 ? s : null;
    },
    { timeoutMs: 10000, intervalMs: 50, what: 'three refused attempts' },
  );
  const pills = new Set(seen.map((s) => s.pill.replace(/\d+ s/, 'N s')));
  for (const p of pills) assert.doesNotMatch(p, /ICE candidates/, 'no later error overwrites the reason');
  assert.ok(
    seen.some((s) => s.state === 'reconnecting' && s.pill.includes(reason)),
    `the status says why it reconnects: ${[...pills].join(' | ')}`,
  );
  assert.equal((await h.stats()).encoders, 0, 'no encoder ran for a refused viewer');
  await page.close();
});
