// vnrit e2e: the desktop fits the viewer. vnrit starts its own virtual display (so --resize
// auto is on); a page asks for its size in device pixels and vnrit sets the X screen to it
// through RandR: a 1280x720 window makes a 1280x720 screen within a second, shown 1:1; a
// resized window follows; a devicePixelRatio of 2 gives a 2x screen and 192 DPI (xdpyinfo,
// and Xft.dpi merged into the resources that were there); a view-only page does not resize,
// even when it sends the message anyway; with --resize off the screen stays as it is, and
// with --resize on an existing display is put back to its own size when vnrit stops.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { launchBrowser, startChild, startServer, startXvfb, waitFor, xrun } from './lib/harness.mjs';
import { waitForColour, watchConsole } from './lib/page.mjs';

const viewToken = randomBytes(12).toString('hex');
let server;
let browser;

before(async () => {
  server = await startServer({
    display: null,
    token: randomBytes(12).toString('hex'),
    name: 'fit-vnrit',
    // A plain coloured desktop: no window manager or terminal over the colour checked below.
    extraArgs: ['--view-token', viewToken, '--no-session'],
  });
  browser = await launchBrowser();
  xrun(server.display, 'xsetroot', ['-solid', '#3366cc']);
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.child.stop();
});

/** The X screen's size and resolution, per xdpyinfo. */
function screen(display) {
  const r = spawnSync('xdpyinfo', ['-display', display], { encoding: 'utf8', timeout: 5000 });
  const dim = /dimensions:\s+(\d+)x(\d+) pixels/.exec(r.stdout ?? '');
  const res = /resolution:\s+(\d+)x(\d+) dots per inch/.exec(r.stdout ?? '');
  if (!dim || !res) throw new Error(`xdpyinfo on ${display}: ${r.stderr}`);
  return { w: +dim[1], h: +dim[2], dpi: +res[1] };
}

/** Waits (bounded) until the screen is `w`x`h`; returns when that was first seen (Date.now()). */
async function screenBecomes(display, w, h, timeoutMs = 5000) {
  await waitFor(
    () => {
      const s = screen(display);
      return s.w === w && s.h === h;
    },
    { timeoutMs, intervalMs: 20, what: `the X screen of ${display} at ${w}x${h}` },
  );
  return Date.now();
}

/**
 * Watches the root window's size with `xev` (ConfigureNotify), so the moment the screen
 * changes is taken when X reports it, not when a polling probe gets to run.
 * @returns {{ready: () => Promise<boolean>, when: (w: number, h: number, timeoutMs?: number) => Promise<number>, stop: () => Promise<void>}}
 */
function watchScreen(display) {
  const args = ['-display', display, '-root', '-event', 'structure', '-event', 'property'];
  const xev = startChild(`fit-xev-${display.slice(1)}`, 'xev', args);
  const seen = new Map(); // "WxH" -> Date.now() when first reported
  let text = '';
  let listening = false;
  xev.proc.stdout.on('data', (d) => {
    const now = Date.now();
    text += d;
    listening ||= text.includes('PropertyNotify');
    for (const m of text.matchAll(/width (\d+), height (\d+)/g)) {
      if (!seen.has(`${m[1]}x${m[2]}`)) seen.set(`${m[1]}x${m[2]}`, now);
    }
    text = text.slice(-200);
  });
  return {
    /** Resolves once xev provably listens: it reported a root property this test set. */
    ready: () =>
      waitFor(
        () => {
          if (!listening) xrun(display, 'xprop', ['-root', '-f', '_VNRIT_FIT_TEST', '8s', '-set', '_VNRIT_FIT_TEST', 'x']);
          return listening;
        },
        { timeoutMs: 5000, intervalMs: 50, what: 'xev to listen on the root window' },
      ),
    when: (w, h, timeoutMs = 5000) =>
      waitFor(() => seen.get(`${w}x${h}`), { timeoutMs, intervalMs: 20, what: `xev to report the root window at ${w}x${h}` }),
    stop: () => xev.stop(),
  };
}

/** The video's decoded size and its box on the page in device pixels. */
function shown(page) {
  return page.evaluate(() => {
    const v = document.getElementById('screen');
    const r = v.getBoundingClientRect();
    const dpr = devicePixelRatio;
    return { w: v.videoWidth, h: v.videoHeight, boxW: r.width * dpr, boxH: r.height * dpr };
  });
}

/** Waits until the page's video is `w`x`h` and drawn 1:1 (one video pixel per device pixel). */
async function shownOneToOne(page, w, h) {
  return waitFor(
    async () => {
      const s = await shown(page);
      return s.w === w && s.h === h && Math.abs(s.boxW - w) < 0.5 && Math.abs(s.boxH - h) < 0.5 ? s : null;
    },
    { timeoutMs: 10000, what: `the page's video at ${w}x${h} shown 1:1` },
  );
}

/** The RandR modes vnrit added that the output still lists. */
function vnritModes(display) {
  return xrun(display, 'xrandr', []).split('\n').filter((l) => /^\s+vnrit-/.test(l));
}

/**
 * Waits (bounded) until `of` has no viewer left, so the next test's page is the only one and
 * takes control at once (a page still leaving would hold control, and its size, a while).
 */
async function noViewers(of = server) {
  await waitFor(async () => ((await stats(of)).viewers === 0 ? true : null), { timeoutMs: 10000, what: 'the last page to leave' });
}

async function stats(of = server) {
  const res = await fetch(`${of.base}/api/stats?token=${of.token}`, { cache: 'no-store' });
  return res.json();
}

test('a 1280x720 page makes the desktop 1280x720 within a second, shown 1:1; a resized window follows', { timeout: 60000 }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  const problems = watchConsole(page);
  const watch = watchScreen(server.display);
  await watch.ready();
  await page.goto(server.url, { timeout: 15000 });
  const seen = await watch.when(1280, 720, 15000);
  const sentAt = await waitFor(() => page.evaluate(() => window.vnrit?.fit?.sentAt), { what: 'the page to have asked' });
  console.log(`# 1280x720: X screen set ${seen - sentAt} ms after the page asked (${new Date(sentAt).toISOString()} -> ${new Date(seen).toISOString()})`);
  assert.ok(seen - sentAt < 1000, `the screen followed within a second (${seen - sentAt} ms)`);
  await waitForColour(page, '#3366cc', { timeoutMs: 15000 });
  await shownOneToOne(page, 1280, 720);
  const s = await stats();
  assert.deepEqual([s.width, s.height], [1280, 720], JSON.stringify(s));

  const t0 = Date.now();
  await page.setViewportSize({ width: 1024, height: 768 });
  const followed = await watch.when(1024, 768);
  await watch.stop();
  await screenBecomes(server.display, 1024, 768);
  console.log(`# 1024x768: X screen set ${followed - t0} ms after the window changed (250 ms of it is the page's debounce)`);
  assert.ok(followed - t0 < 2000, `the screen followed the window (${followed - t0} ms)`);
  await shownOneToOne(page, 1024, 768);
  assert.equal(screen(server.display).dpi, 96);
  assert.ok(vnritModes(server.display).length <= 1, `modes do not pile up: ${vnritModes(server.display)}`);
  await page.close();
  await noViewers();
  assert.deepEqual(problems, []);
});

test('devicePixelRatio 2 gives a 2x screen at 192 DPI, other X resources kept', { timeout: 60000 }, async () => {
  spawnSync('xrdb', ['-display', server.display, '-merge'], { input: 'vnritTest.kept:\tyes\n', timeout: 5000 });
  const context = await browser.newContext({ viewport: { width: 640, height: 400 }, deviceScaleFactor: 2 });
  const page = await context.newPage();
  const problems = watchConsole(page);
  await page.goto(server.url, { timeout: 15000 });
  await screenBecomes(server.display, 1280, 800);
  await waitForColour(page, '#3366cc', { timeoutMs: 15000 });
  const s = await shownOneToOne(page, 1280, 800);
  assert.equal(s.boxW / 2, 640, 'CSS size = video size / devicePixelRatio');
  assert.equal(screen(server.display).dpi, 192, 'xdpyinfo resolution');
  const resources = xrun(server.display, 'xrdb', ['-query']);
  assert.match(resources, /^Xft\.dpi:\s+192$/m);
  assert.match(resources, /^vnritTest\.kept:\s+yes$/m, 'merged, not replaced');
  assert.equal(resources.match(/Xft\.dpi/g).length, 1);
  await context.close();
  await noViewers();
  assert.deepEqual(problems, []);
});

test('a view-only page does not resize the desktop, even when it asks', { timeout: 60000 }, async () => {
  const before = screen(server.display);
  const page = await browser.newPage({ viewport: { width: 900, height: 700 } });
  await page.goto(`${server.base}/?token=${viewToken}`, { timeout: 15000 });
  await waitForColour(page, '#3366cc', { timeoutMs: 15000 });
  assert.equal(await page.evaluate(() => window.vnrit.fit.offer), null, 'no resize offered to a view-only page');
  assert.equal(await page.evaluate(() => window.vnrit.fit.sent), 0, 'the page did not ask');
  // A page that asks anyway (an old or modified page) is refused by the server.
  assert.ok(await page.evaluate(() => window.vnrit.session.sendResize(900, 700, 1)));
  await waitFor(() => /refused a resize request: only a viewer who controls/.test(readFileSync(server.child.logPath, 'utf8')), {
    timeoutMs: 5000,
    what: 'the server to refuse the view-only request',
  });
  assert.deepEqual(screen(server.display), before);
  const s = await shown(page);
  assert.deepEqual([s.w, s.h], [before.w, before.h]);
  await page.close();
  await noViewers();
});

test('--resize off leaves vnrit\'s own display at its size; the page scales', { timeout: 60000 }, async () => {
  const off = await startServer({
    display: null,
    token: randomBytes(12).toString('hex'),
    name: 'fit-off-vnrit',
    extraArgs: ['--resize', 'off', '--virtual-size', '1600x900', '--no-session'],
  });
  try {
    xrun(off.display, 'xsetroot', ['-solid', '#cc6633']);
    assert.match(xrun(off.display, 'xrandr', []), /maximum 1600 x 900/, 'Xvfb started at --virtual-size, not --max-size');
    const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
    await page.goto(off.url, { timeout: 15000 });
    await waitForColour(page, '#cc6633', { timeoutMs: 15000 });
    assert.equal(await page.evaluate(() => window.vnrit.fit.offer), null);
    await page.evaluate(() => window.vnrit.session.sendResize(1280, 720, 1));
    await waitFor(() => /refused a resize request: this server does not resize/.test(readFileSync(off.child.logPath, 'utf8')), {
      timeoutMs: 5000,
      what: 'the server to refuse the request',
    });
    const now = screen(off.display);
    assert.deepEqual([now.w, now.h], [1600, 900]);
    const s = await shown(page);
    assert.deepEqual([s.w, s.h, Math.round(s.boxW), Math.round(s.boxH)], [1600, 900, 1280, 720], 'scaled to fit');
    await page.close();
  } finally {
    await off.child.stop();
  }
});

test('--resize on resizes an existing display and puts it back when vnrit stops', { timeout: 60000 }, async () => {
  const x = await startXvfb('fit-existing-xvfb', { screen: '1920x1080x24' });
  let on;
  try {
    on = await startServer({ display: x.display, token: randomBytes(12).toString('hex'), name: 'fit-on-vnrit', extraArgs: ['--resize', 'on'] });
    xrun(x.display, 'xsetroot', ['-solid', '#33cc66']);
    const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
    await page.goto(on.url, { timeout: 15000 });
    await screenBecomes(x.display, 1000, 600);
    await waitForColour(page, '#33cc66', { timeoutMs: 15000 });
    await shownOneToOne(page, 1000, 600);
    await page.close();
    await on.child.stop();
    assert.equal(on.child.exited?.code, 0);
    const now = screen(x.display);
    assert.deepEqual([now.w, now.h], [1920, 1080], 'back to its own size');
    assert.deepEqual(vnritModes(x.display), [], 'no vnrit mode left behind');
  } finally {
    await on?.child.stop();
    await x.child.stop();
  }
});
