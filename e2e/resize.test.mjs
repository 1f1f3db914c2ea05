// vnrit e2e: the desktop changes size while a page watches (RandR, as a user's display
// settings or a VM's guest agent do). The page follows each new size without a reload and
// shows the new picture, /api/stats reports the new size from the same single pipeline, the
// pointer still lands where the page points, and the server never stops. Xvfb offers one
// fixed mode, so the desktop here is a resizable Xephyr inside a private Xvfb. Then a screen
// larger than the encoder takes (two 2560x1440 monitors side by side) streams scaled down to
// fit, with no flag, and the pointer still maps onto the whole screen.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { launchBrowser, startServer, startXephyr, startXvfb, waitFor, xPointer, xrun } from './lib/harness.mjs';
import { openPage, waitForColour } from './lib/page.mjs';

let x;
let server;
let browser;

before(async () => {
  x = await startXephyr('resize-xephyr', { screen: '1024x768' });
  server = await startServer({ display: x.display, token: randomBytes(12).toString('hex'), name: 'resize-vnrit' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.child.stop();
  await x?.child.stop();
  await x?.host.child.stop();
});

async function apiStats(of = server) {
  const res = await fetch(`${of.base}/api/stats?token=${of.token}`, { cache: 'no-store' });
  assert.equal(res.status, 200);
  return res.json();
}

/** The decoded picture's size, as the page's video element reports it. */
function videoSize(page) {
  return page.evaluate(() => {
    const v = document.getElementById('screen');
    return { w: v.videoWidth, h: v.videoHeight };
  });
}

/** Three quarters across and down the picture must be three quarters across the `w`x`h` screen. */
async function pointAtThreeQuarters(page, display, w, h) {
  const r = await page.evaluate(() => ({ ...window.vnrit.view.rect }));
  await page.mouse.move(r.left + r.width * 0.75, r.top + r.height * 0.75);
  const [wantX, wantY] = [Math.round(w * 0.75), Math.round(h * 0.75)];
  const slack = Math.max(3, Math.ceil(w / r.width)); // one page pixel covers this many screen pixels
  await waitFor(
    () => {
      const p = xPointer(display);
      return Math.abs(p.x - wantX) <= slack && Math.abs(p.y - wantY) <= slack ? p : null;
    },
    { timeoutMs: 5000, what: `the X pointer near (${wantX}, ${wantY}) on the ${w}x${h} screen` },
  );
}

test('the page follows the desktop through a shrink and a growth, pointer included', { timeout: 90000 }, async () => {
  xrun(x.display, 'xsetroot', ['-solid', '#ff0000']);
  const { page, problems } = await openPage(browser, server.url, '#ff0000', { viewport: { width: 1100, height: 900 } });
  assert.deepEqual(await videoSize(page), { w: 1024, h: 768 });

  for (const [w, h, colour] of [
    [800, 600, '#00ff00'],
    [1280, 1024, '#0000ff'],
  ]) {
    xrun(x.display, 'xrandr', ['-s', `${w}x${h}`]);
    xrun(x.display, 'xsetroot', ['-solid', colour]);
    await waitFor(
      async () => {
        const s = await videoSize(page);
        return s.w === w && s.h === h;
      },
      { timeoutMs: 10000, what: `the page's video at ${w}x${h}` },
    );
    await waitForColour(page, colour, { timeoutMs: 10000 });
    const stats = await apiStats();
    assert.deepEqual([stats.width, stats.height, stats.encoders, stats.viewers], [w, h, 1, 1], JSON.stringify(stats));

    await pointAtThreeQuarters(page, x.display, w, h);
  }

  assert.equal(server.child.exited, null, 'vnrit kept running');
  const log = readFileSync(server.child.logPath, 'utf8');
  assert.equal(log.match(/the screen was resized/g)?.length, 2, 'one resize logged per xrandr');
  assert.doesNotMatch(log, /ERROR|pipeline stopped/, 'no pipeline error or restart');
  assert.equal(await page.evaluate(() => performance.getEntriesByType('navigation').length), 1, 'no reload');
  await page.close();
  assert.deepEqual(problems, []);
});

test('a 5120x1440 screen streams scaled down to 3840x1080 with no flag, pointer included', { timeout: 90000 }, async () => {
  const wide = await startXvfb('resize-wide-xvfb', { screen: '5120x1440x24' });
  let wideServer;
  try {
    wideServer = await startServer({ display: wide.display, token: randomBytes(12).toString('hex'), name: 'resize-wide-vnrit' });
    xrun(wide.display, 'xsetroot', ['-solid', '#ffff00']);
    const viewport = { width: 1400, height: 600 };
    const { page, problems } = await openPage(browser, wideServer.url, '#ffff00', { viewport });
    assert.deepEqual(await videoSize(page), { w: 3840, h: 1080 });
    const stats = await apiStats(wideServer);
    assert.deepEqual([stats.width, stats.height], [3840, 1080], JSON.stringify(stats));
    await pointAtThreeQuarters(page, wide.display, 5120, 1440);
    const log = readFileSync(wideServer.child.logPath, 'utf8');
    assert.match(log, /larger than the encoder takes .* scaling it down to 3840x1080/);
    await page.close();
    assert.deepEqual(problems, []);
  } finally {
    await wideServer?.child.stop();
    await wide.child.stop();
  }
});

test('a VP8 page (?codec=vp8) follows a resize too', { timeout: 90000 }, async () => {
  xrun(x.display, 'xrandr', ['-s', '1024x768']);
  xrun(x.display, 'xsetroot', ['-solid', '#00ffff']);
  const url = new URL(server.url);
  url.searchParams.set('codec', 'vp8');
  const { page, problems } = await openPage(browser, url.href, '#00ffff', { viewport: { width: 1100, height: 900 } });
  assert.deepEqual(await videoSize(page), { w: 1024, h: 768 });
  xrun(x.display, 'xrandr', ['-s', '800x600']);
  xrun(x.display, 'xsetroot', ['-solid', '#ff00ff']);
  await waitFor(
    async () => {
      const s = await videoSize(page);
      return s.w === 800 && s.h === 600;
    },
    { timeoutMs: 10000, what: "the VP8 page's video at 800x600" },
  );
  await waitForColour(page, '#ff00ff', { timeoutMs: 10000 });
  const stats = await apiStats();
  const vp8 = stats.codecs.find((c) => c.codec === 'vp8');
  assert.deepEqual([stats.width, stats.height, vp8.encoders, stats.sessions.at(-1).codec], [800, 600, 1, 'vp8'], JSON.stringify(stats));
  await page.close();
  assert.deepEqual(problems, []);
});
