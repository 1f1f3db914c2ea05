// vnrit e2e: a still desktop is kept alive with hand-written skip pictures (src/video/skip.rs)
// rather than re-encodes. Chromium must decode them as frames (its framesDecoded keeps
// rising with nothing on the screen changing), never need a keyframe for them (no PLI, no
// new keyframe decoded), and decode the next real picture after them correctly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { trackConnections, waitForColour, watchConsole } from './lib/page.mjs';

let h;

before(async () => {
  // With the hand-made pictures and refinement on (off by default), so they stay covered.
  h = await Harness.start('keepalive', { serverArgs: ['--lossless-updates'] });
});

after(async () => {
  await h?.close();
});

/** The page's inbound video counters. */
function videoStats(page) {
  return page.evaluate(async () => {
    for (const pc of window.__pcs) {
      const report = await pc.getStats();
      for (const s of report.values()) {
        if (s.type === 'inbound-rtp' && s.kind === 'video') {
          return {
            framesDecoded: s.framesDecoded,
            keyFramesDecoded: s.keyFramesDecoded,
            framesReceived: s.framesReceived,
            pliCount: s.pliCount,
            firCount: s.firCount,
          };
        }
      }
    }
    return null;
  });
}

test('skip pictures keep a still desktop decoding without keyframes', { timeout: 90000 }, async () => {
  h.setRoot('#3060c0');
  const page = await h.browser.newPage();
  const problems = watchConsole(page);
  await page.addInitScript(trackConnections);
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, '#3060c0', { timeoutMs: 15000 });
  // Let the first keyframe and OpenH264's refinement frames pass.
  const start = await waitFor(
    async () => {
      const s = await videoStats(page);
      return s && s.keyFramesDecoded >= 1 ? s : null;
    },
    { timeoutMs: 10000, what: 'a decoded keyframe' },
  );
  // Refinement pictures (lossless top-off of what the encoder coded lossy) come first.
  await waitFor(async () => ((await h.stats()).refine_pending === 0 ? true : null), {
    timeoutMs: 15000,
    intervalMs: 200,
    what: 'the refinement of the still screen to finish',
  });
  const s0 = await h.stats();
  // One keep-alive every 2 s: 4 more frames take about 8 s; allow a slow machine 20 s.
  const first = await videoStats(page);
  // Four keep-alives sent by the server, and as many more frames decoded by the page.
  const later = await waitFor(
    async () => {
      const s = await videoStats(page);
      const sent = (await h.stats()).frames_repeated - s0.frames_repeated;
      return s && sent >= 4 && s.framesDecoded >= first.framesDecoded + 4 ? s : null;
    },
    { timeoutMs: 20000, intervalMs: 500, what: 'four keep-alive frames decoded on a still screen' },
  );
  assert.equal(later.keyFramesDecoded, start.keyFramesDecoded, 'no keyframe was needed');
  assert.equal(later.pliCount, start.pliCount, 'Chromium asked for no keyframe');
  assert.equal(later.firCount, start.firCount);
  const s1 = await h.stats();
  const repeated = s1.frames_repeated - s0.frames_repeated;
  console.log(`# still screen: ${later.framesDecoded - first.framesDecoded} frames decoded; server: ${repeated} skip pictures, ${s1.frames_encoded - s0.frames_encoded} encodes, ${s1.frames_refined - s0.frames_refined} refinements, ${s1.frames_hand - s0.frames_hand} hand-made changes`);
  // The keep-alives were skip pictures, not encodes.
  assert.ok(repeated >= 3, `server sent ${repeated} skip pictures`);
  // At most one encode: when the last picture was a non-reference one (every second picture
  // with two temporal layers) the scene is encoded once more as a reference picture.
  const encodes = s1.frames_encoded - s0.frames_encoded;
  assert.ok(encodes <= 1, `${encodes} encodes on the still screen (at most 1 expected)`);
  // The next real picture after the skip pictures decodes right.
  h.setRoot('#c03020');
  await waitForColour(page, '#c03020', { timeoutMs: 5000 });
  const after = await videoStats(page);
  assert.equal(after.pliCount, start.pliCount, 'the change needed no keyframe request either');
  // Still again: the keep-alives must go on showing the new colour, not a picture from before
  // the change (a skip picture repeats the last *reference* picture).
  await waitFor(
    async () => {
      const s = await videoStats(page);
      return s && s.framesDecoded >= after.framesDecoded + 3 ? s : null;
    },
    { timeoutMs: 20000, intervalMs: 500, what: 'three keep-alive frames after the change' },
  );
  await waitForColour(page, '#c03020', { timeoutMs: 1000 });
  await h.screenshot(page, 'after-skips');
  await page.close();
  assert.deepEqual(problems, []);
});
