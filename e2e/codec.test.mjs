// vnrit e2e: every viewer gets a codec it can decode. A page that offers only VP8 (the page's
// ?codec=vp8, which is what Debian's Firefox offers too) gets the VP8 stream: it decodes the
// desktop's colour and a change, and its keys reach X. A page preferring H.264 and a VP8 page
// at once run one encoder per codec, and the VP8 one stops when its last page closes. A page
// whose offer shares no codec with the server (VP9 only) shows the server's reason, and the
// server logs it once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Harness, waitFor } from './lib/harness.mjs';
import { status, waitForColour, watchConsole } from './lib/page.mjs';
import { Xev } from './lib/xev.mjs';

let h;
const pageErrors = [];
const started = Date.now();

function watch(page) {
  const problems = watchConsole(page);
  page.on('close', () => pageErrors.push(...problems));
  return page;
}

before(async () => {
  h = await Harness.start('codec');
});

after(async () => {
  await h?.close();
  console.log(`# codec.test.mjs ran ${((Date.now() - started) / 1000).toFixed(1)} s`);
});

/** The page's own address with `?codec=NAME` added. */
function withCodec(name) {
  const url = new URL(h.server.url);
  url.searchParams.set('codec', name);
  return url.href;
}

/** The video codecs the page's offer listed (from its local description). */
function offeredCodecs(page) {
  return page.evaluate(() => {
    const sdp = window.vnrit.session?.pc?.localDescription?.sdp ?? '';
    const video = sdp.split('m=video')[1]?.split('m=audio')[0] ?? '';
    const names = [...video.matchAll(/a=rtpmap:\d+ ([^/]+)\//g)].map((m) => m[1]);
    return [...new Set(names)].filter((n) => !['rtx', 'red', 'ulpfec', 'flexfec-03'].includes(n));
  });
}

/** The encoders per codec in /api/stats, as {h264: n, vp8: n}. */
function encodersByCodec(stats) {
  return Object.fromEntries(stats.codecs.map((c) => [c.codec, c.encoders]));
}

test('a VP8-only page decodes the desktop, follows a change, and its keys reach X', { timeout: 90000 }, async () => {
  h.setRoot('#e02020');
  const page = watch(await h.browser.newPage({ viewport: { width: 960, height: 600 } }));
  await page.goto(withCodec('vp8'), { timeout: 15000 });
  await waitForColour(page, '#e02020', { timeoutMs: 15000 });
  assert.deepEqual(await offeredCodecs(page), ['VP8'], 'the page offered VP8 only');
  const inbound = await page.evaluate(async () => {
    const report = await window.vnrit.session.pc.getStats();
    for (const r of report.values()) {
      if (r.type === 'inbound-rtp' && r.kind === 'video') return report.get(r.codecId)?.mimeType;
    }
    return null;
  });
  assert.equal(inbound, 'video/VP8', 'the browser decodes VP8');
  const stats = await h.stats();
  assert.deepEqual(encodersByCodec(stats), { h264: 0, vp8: 1 }, JSON.stringify(stats.codecs));
  assert.deepEqual(
    stats.sessions.map((s) => s.codec),
    ['vp8'],
  );

  h.setRoot('#2040e0');
  await waitForColour(page, '#2040e0', { timeoutMs: 5000 });
  await h.screenshot(page, 'vp8');
  assert.equal((await status(page)).state, 'connected');

  // Keys: xev's window covers the screen and takes the focus of what is typed.
  const xev = await Xev.start(h.display);
  try {
    await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
      timeoutMs: 10000,
      what: "the 'input' data channel to open",
    });
    const from = xev.mark();
    await page.mouse.click(480, 300);
    await page.keyboard.type('vp8 ok');
    await waitFor(() => xev.typed(from) === 'vp8 ok', {
      timeoutMs: 10000,
      what: `xev to see "vp8 ok" (saw ${JSON.stringify(xev.typed(from))})`,
    });
  } finally {
    xev.stop();
  }
  await page.close();
  assert.deepEqual(pageErrors, []);
});

test('an H.264 page and a VP8 page at once run one encoder each; the VP8 one stops with its page', { timeout: 90000 }, async () => {
  h.setRoot('#20a060');
  const contexts = await Promise.all([0, 1].map(() => h.browser.newContext()));
  const [h264, vp8] = await Promise.all(contexts.map((c) => c.newPage()));
  await h264.goto(h.server.url, { timeout: 15000 });
  await vp8.goto(withCodec('vp8'), { timeout: 15000 });
  await Promise.all([h264, vp8].map((p) => waitForColour(p, '#20a060', { timeoutMs: 20000 })));
  h.setRoot('#a0a020');
  await Promise.all([h264, vp8].map((p) => waitForColour(p, '#a0a020', { timeoutMs: 5000 })));

  const both = await waitFor(
    async () => {
      const s = await h.stats();
      const sent = s.sessions.every((x) => x.frames_sent > 0);
      return s.encoders === 2 && s.viewers === 2 && s.sessions.length === 2 && sent ? s : null;
    },
    { timeoutMs: 5000, what: 'stats with 2 encoders, 2 viewers and frames sent to each' },
  );
  assert.deepEqual(encodersByCodec(both), { h264: 1, vp8: 1 }, JSON.stringify(both.codecs));
  assert.deepEqual(both.sessions.map((s) => s.codec).sort(), ['h264', 'vp8']);
  for (const c of both.codecs) assert.ok(c.frames_encoded > 0, JSON.stringify(c));

  await contexts[1].close();
  const after = await waitFor(
    async () => {
      const s = await h.stats();
      return s.encoders === 1 && s.viewers === 1 ? s : null;
    },
    { timeoutMs: 10000, what: 'the VP8 encoder to stop after its page closed' },
  );
  assert.deepEqual(encodersByCodec(after), { h264: 1, vp8: 0 });
  // The H.264 page keeps playing.
  h.setRoot('#c04080');
  await waitForColour(h264, '#c04080', { timeoutMs: 5000 });
  await contexts[0].close();
});

test('a page offering no codec of the server shows the real reason, and the log has one line', { timeout: 60000 }, async () => {
  const page = await h.browser.newPage();
  await page.goto(withCodec('vp9'), { timeout: 15000 });
  const want = 'no common video codec: your browser offers VP9; this server sends H.264 and VP8';
  const shown = await waitFor(
    async () => {
      const s = await status(page);
      return s?.text?.includes('no common video codec') ? s.text : null;
    },
    { timeoutMs: 10000, what: 'the page to show the refusal' },
  );
  assert.ok(shown.includes(want), shown);
  // Nothing overwrites it (no later error, no reconnect loop): still there 3 s later.
  await new Promise((r) => setTimeout(r, 3000));
  assert.ok((await status(page)).text.includes(want), JSON.stringify(await status(page)));
  const notice = await page.evaluate(() => document.getElementById('notice')?.textContent ?? '');
  assert.ok(notice.includes('VP9'), notice);
  await h.screenshot(page, 'refused');
  await page.close();

  const log = readFileSync(h.server.child.logPath, 'utf8');
  const lines = log.split('\n').filter((l) => l.includes('no common video codec'));
  assert.equal(lines.length, 1, lines.join('\n'));
  assert.ok(lines[0].includes('VP9'), lines[0]);
  assert.ok(!log.includes('send the offer before ICE candidates'), 'no misleading later error');
});
