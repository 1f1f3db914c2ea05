// vnrit e2e: a viewer that can reach the server at more than one address stays connected.
//
// A server with several interfaces offers a host candidate on each, and Chromium checks a
// pair for each of them. It nominates the first pair that works, and may later move to
// another one it measured as better, nominating that one too. webrtc-rs keeps the first
// nominated pair as its own and ignores the later nomination. Media still flows on the
// server's pair and the page plays it, but the browser's receiver reports and its own ICE
// checks now go to the other pair, so the server's pair hears only the answers to the server's
// own checks. When those came every 5 s, just over the 5 s after which ICE calls a silent pair
// disconnected, the session fell to disconnected and back every 5 s, and each fall released the
// viewer's held keys (seen in e2e/slow-viewer.test.mjs, whose namespace has this shape).
//
// Here a veth pair into a second namespace gives vnrit's namespace a second address. The page
// is loaded until the browser's selected pair is not the one the server sends on (told apart
// by where the media bytes arrive), then a key is held for 16 s: it must stay held in X, and
// the session's `disconnects` counter must stay at 0.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, startServer, waitFor } from './lib/harness.mjs';
import { sideNamespace } from './lib/net.mjs';
import { waitForColour } from './lib/page.mjs';
import { heldInX, nothingHeld } from './lib/xheld.mjs';

/** This side's and the other side's address on the veth pair. */
const HERE = '10.217.0.1';
const THERE = '10.217.0.2';
/** Page loads tried to get the browser and the server onto different pairs. */
const TRIES = 8;
/** How long the key is held: three of ICE's 5 s disconnect windows. */
const HOLD_MS = 16000;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let h;
let side;

before(async () => {
  side = sideNamespace({ tag: 'ip', here: HERE, there: THERE });
  h = await Harness.start('icepaths', { server: false });
  const server = await startServer({ display: h.display, token: h.token, name: 'icepaths-vnrit', bind: '0.0.0.0' });
  h.server = { ...server, base: `http://127.0.0.1:${server.port}` };
  h.setRoot('#3060c0');
});

after(async () => {
  await h?.close();
  side?.remove();
});

/**
 * The page's candidate pairs that carried anything: addresses, whether the browser selected
 * it, media bytes received, and the ICE checks the server sent on it.
 */
function pairs(page) {
  return page.evaluate(async () => {
    const pc = window.vnrit?.session?.pc;
    if (!pc) return [];
    const stats = await pc.getStats();
    const byId = new Map();
    stats.forEach((s) => byId.set(s.id, s));
    let selected = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) selected = s.selectedCandidatePairId;
    });
    const out = [];
    stats.forEach((s) => {
      if (s.type !== 'candidate-pair' || !(s.bytesReceived > 0 || s.requestsReceived > 0)) return;
      const l = byId.get(s.localCandidateId);
      const r = byId.get(s.remoteCandidateId);
      out.push({
        local: `${l?.address}:${l?.port}`,
        remote: `${r?.address}:${r?.port}`,
        selected: s.id === selected,
        bytesReceived: s.bytesReceived ?? 0,
        requestsReceived: s.requestsReceived ?? 0,
      });
    });
    return out;
  });
}

/** The pair the media arrives on (the server's selected pair): the one with most bytes. */
const mediaPair = (ps) => ps.reduce((a, b) => (b.bytesReceived > (a?.bytesReceived ?? -1) ? b : a), null);

test('a viewer reachable over two paths keeps its held key; the session never falls to disconnected', { timeout: 170000 }, async () => {
  const url = `http://127.0.0.1:${h.server.port}/?token=${h.token}`;
  let page = null;
  let split = null;
  for (let i = 1; i <= TRIES && !split; i++) {
    await page?.close();
    page = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
    await page.goto(url, { timeout: 15000 });
    await waitForColour(page, '#3060c0', { timeoutMs: 20000 });
    // Let Chromium measure its pairs and settle on one (it switches within a few seconds).
    await sleep(4000);
    const ps = await pairs(page);
    const media = mediaPair(ps);
    const chosen = ps.find((p) => p.selected);
    console.log(`# load ${i}: ${JSON.stringify(ps)}`);
    if (media && chosen && media !== chosen) split = { media, chosen, load: i };
  }
  assert.ok(split, `in ${TRIES} page loads the browser always selected the pair the server sends on: nothing to test`);
  console.log(`# load ${split.load}: the server sends on ${split.media.local} <- ${split.media.remote}, the browser selected ${split.chosen.local} -> ${split.chosen.remote}`);

  await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: 'the input data channel to open',
  });
  const sessionId = (await h.stats()).sessions.find((s) => s.state === 'connected')?.id;
  assert.ok(sessionId !== undefined, 'a connected session');
  const before = (await h.stats()).sessions.find((s) => s.id === sessionId);

  await page.mouse.click(480, 300); // focus the video, which takes the keys
  await page.keyboard.down('KeyQ');
  await waitFor(() => heldInX(h.display).keys.length > 0, { timeoutMs: 10000, what: 'the key held in X' });
  const t0 = Date.now();
  const gaps = [];
  while (Date.now() - t0 < HOLD_MS) {
    await sleep(500);
    if (heldInX(h.display).keys.length === 0) gaps.push(Date.now() - t0);
  }
  const after = (await h.stats()).sessions.find((s) => s.id === sessionId);
  const ps = await pairs(page);
  console.log(`# after ${HOLD_MS} ms: session ${JSON.stringify({ state: after?.state, disconnects: after?.disconnects })}, pairs ${JSON.stringify(ps)}`);
  await page.keyboard.up('KeyQ');
  await waitFor(() => nothingHeld(h.display), { timeoutMs: 10000, what: 'the key released after keyup' });

  assert.deepEqual(gaps, [], `the held key was released in X at these ms while the viewer was connected: ${gaps}`);
  assert.equal(after?.state, 'connected', JSON.stringify(after));
  assert.equal(after.disconnects - before.disconnects, 0, `the session fell to disconnected: ${JSON.stringify(after)}`);
  // Still split at the end (the browser did not move back to the server's pair meanwhile).
  const media = mediaPair(ps);
  assert.ok(media && !media.selected, `the browser moved back to the server's pair: ${JSON.stringify(ps)}`);
  await page.close();
});
