// vnrit e2e: one viewer against the real server — the page starts the video by itself
// (muted autoplay, no click), decodes the desktop's colour, and follows a colour change.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { recordFirstFrame, status, waitForColour, watchConsole } from './lib/page.mjs';

let h;
/** Uncaught exceptions and console errors of every page of this file; must stay empty. */
const pageErrors = [];

function watch(page) {
  const problems = watchConsole(page);
  page.on('close', () => pageErrors.push(...problems));
  return page;
}

before(async () => {
  h = await Harness.start('video');
});

after(async () => {
  await h?.close();
});

test('video starts without a click within 5 s of page load', { timeout: 60000 }, async () => {
  h.setRoot('#20a040');
  const page = watch(await h.browser.newPage({ viewport: { width: 960, height: 720 } }));
  await page.addInitScript(recordFirstFrame);
  const started = Date.now();
  await page.goto(h.server.url, { timeout: 15000 });
  const firstData = await waitFor(() => page.evaluate(() => window.__vnritFirstData), {
    timeoutMs: 15000,
    what: 'the first decoded frame (loadeddata)',
  });
  const wall = Date.now() - started;
  assert.ok(firstData < 5000, `first frame ${Math.round(firstData)} ms after navigation start, want < 5000`);
  const playing = await page.evaluate(() => {
    const v = document.getElementById('screen');
    return { paused: v.paused, muted: v.muted, width: v.videoWidth, height: v.videoHeight };
  });
  assert.equal(playing.paused, false, 'video should play without a user gesture');
  assert.equal(playing.muted, true);
  assert.deepEqual([playing.width, playing.height], [1280, 720]);
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 5000, what: 'status connected' });
  await waitForColour(page, '#20a040');
  await h.screenshot(page, 'autoplay');
  console.log(`# first frame: ${Math.round(firstData)} ms after navigation start (${wall} ms wall)`);
  await page.close();
});

test('the page decodes red, then blue after the root window changes', { timeout: 60000 }, async () => {
  h.setRoot('#ff0000');
  const page = watch(await h.browser.newPage());
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, '#ff0000', { timeoutMs: 15000 });
  await h.screenshot(page, 'red');

  h.setRoot('#0000ff');
  await waitForColour(page, '#0000ff', { timeoutMs: 5000 });
  await h.screenshot(page, 'blue');

  const { state } = await status(page);
  assert.equal(state, 'connected');
  // The 'input' data channel the page creates must open (later features send input on it).
  await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: "the 'input' data channel to open",
  });
  await page.close();
  assert.deepEqual(pageErrors, []);
});
