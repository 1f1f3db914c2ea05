// vnrit e2e: the viewer page's features against the real server and X server — the page's
// size, the stats overlay (non-zero fps and bitrate), zoom and pan (toolbar, Alt+wheel, 1:1)
// with the remote cursor kept in view, the special-keys menu and keyboard reachability, the
// on-screen keyboard typing a shifted character and a locked-Ctrl combination into an X
// client, and the desktop and phone screenshots kept for the README (docs/screenshots/).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ARTIFACTS, Harness, ROOT, startChild, waitFor, xPointer, xrun } from './lib/harness.mjs';
import { allNear, hexToRgb, openPage, samplePixels, waitForColour } from './lib/page.mjs';

// 160 KB since large clipboard transfers (issue 22: clipstream.js and its wiring, about 7 KB).
const PAGE_LIMIT = 160 * 1024;

let h;

before(async () => {
  h = await Harness.start('ui');
});

after(async () => {
  await h?.close();
});

/** Saves a screenshot to e2e/artifacts/ui-<label>.png and copies it to docs/screenshots/. */
async function keepScreenshot(page, label) {
  const file = join(ARTIFACTS, `ui-${label}.png`);
  await page.screenshot({ path: file, timeout: 10000 });
  await copyFile(file, join(ROOT, 'docs', 'screenshots', `${label}.png`));
}

/** Puts a clock (ticking every second) and the X logo on the desktop; returns a stopper. */
function decorate() {
  const apps = [
    startChild('ui-xclock', 'xclock', ['-display', h.display, '-geometry', '260x260+140+120', '-update', '1']),
    startChild('ui-xlogo', 'xlogo', ['-display', h.display, '-geometry', '220x220+560+240']),
  ];
  return () => Promise.all(apps.map((a) => a.stop()));
}


/** The video box, the stage size and the view state, from inside the page. */
function viewState(page) {
  return page.evaluate(() => {
    const v = window.vnrit.view;
    const s = v.stageSize();
    return { zoom: v.zoom, mode: v.mode, rect: { ...v.rect }, W: s.width, H: s.height, cx: v.cx, cy: v.cy };
  });
}

/** Where the page last heard the desktop pointer, in stage CSS pixels (null before any). */
function cursorOnStage(page) {
  return page.evaluate(() => {
    const { x, y } = window.vnrit.input.cursor;
    if (x == null || y == null) return null;
    return { nx: x, ny: y, ...window.vnrit.view.toStage(x, y) };
  });
}

test('the page (HTML, CSS, JS) is under 160 KB', async () => {
  const dir = join(ROOT, 'web');
  let total = 0;
  const rows = [];
  for (const name of (await readdir(dir)).sort()) {
    if (!/\.(html|css|js)$/.test(name)) continue;
    const { size } = await stat(join(dir, name));
    total += size;
    rows.push(`${name} ${size}`);
  }
  console.log(`# page size: ${total} bytes (${(total / 1024).toFixed(1)} KB) = ${rows.join(', ')}`);
  assert.ok(total < PAGE_LIMIT, `the page is ${total} bytes, over ${PAGE_LIMIT}`);
});

test('desktop: the stats overlay shows non-zero fps and bitrate; screenshot', { timeout: 60000 }, async () => {
  h.setRoot('#2a5d8f');
  const context = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const { page, problems } = await openPage(context, h.server.url, '#2a5d8f');
  const undecorate = decorate();
  await page.locator('#tb-stats').click();
  assert.equal(await page.locator('#stats').isVisible(), true);
  // The screen changes a few times a second meanwhile, so frames keep flowing.
  const colours = ['#2a5d8f', '#2b5e90'];
  let i = 0;
  const flicker = setInterval(() => h.setRoot(colours[i++ % 2]), 150);
  let last;
  try {
    last = await waitFor(
      async () => {
        const s = await page.evaluate(() => window.vnrit.stats.last);
        return s && s.fps > 0 && s.kbps > 0 && s.width > 0 ? s : null;
      },
      { timeoutMs: 15000, intervalMs: 250, what: 'stats with fps > 0 and bitrate > 0' },
    );
  } finally {
    clearInterval(flicker);
  }
  const text = await page.locator('#stats').textContent();
  console.log(`# stats overlay: ${JSON.stringify(last)}`);
  assert.match(text, /state\s+connected/);
  assert.match(text, /fps\s+[1-9]/);
  assert.match(text, /bitrate\s+[0-9.]+ (k|M)bit\/s/);
  assert.match(text, /resolution\s+1280×720/);
  assert.match(text, /codec\s+H264/i);
  assert.equal(last.state, 'connected');
  await keepScreenshot(page, 'desktop');
  await undecorate();
  await context.close();
  assert.deepEqual(problems, []);
});

test('zoom and pan change the view and keep the remote cursor visible', { timeout: 60000 }, async () => {
  h.setRoot('#406040');
  const context = await h.browser.newContext({ viewport: { width: 960, height: 600 } });
  const { page, problems } = await openPage(context, h.server.url, '#406040');

  const fit = await viewState(page);
  assert.equal(fit.zoom, 1);
  assert.ok(Math.abs(fit.rect.width / fit.rect.height - 16 / 9) < 0.01, `fit keeps 16:9: ${JSON.stringify(fit.rect)}`);
  assert.ok(Math.abs(fit.rect.width - fit.W) < 1 || Math.abs(fit.rect.height - fit.H) < 1, 'fit touches two sides');

  // Toolbar: three steps in.
  for (let k = 0; k < 3; k++) await page.locator('#tb-zoom-in').click();
  const zoomed = await viewState(page);
  assert.ok(Math.abs(zoomed.zoom - 1.25 ** 3) < 1e-6, `zoom ${zoomed.zoom}`);
  assert.ok(Math.abs(zoomed.rect.width - fit.rect.width * zoomed.zoom) < 1, 'the video grew by the zoom');
  assert.ok(zoomed.rect.left < 0 && zoomed.rect.top < 0, 'the zoomed video overflows the stage on all sides');
  assert.equal(await page.locator('#tb-zoom-level').textContent(), '195%');

  // The desktop moves its pointer to a far corner: the view pans until the cursor shows.
  for (const [x, y, corner] of [
    [1275, 715, 'bottom-right'],
    [4, 4, 'top-left'],
  ]) {
    xrun(h.display, 'xdotool', ['mousemove', String(x), String(y)]);
    const seen = await waitFor(
      async () => {
        const c = await cursorOnStage(page);
        const v = await viewState(page);
        const near = c && Math.abs(c.nx - x / 1280) < 0.01 && Math.abs(c.ny - y / 720) < 0.01;
        if (near && c.x >= 0 && c.x <= v.W && c.y >= 0 && c.y <= v.H) return { c, v };
        throw new Error(`cursor ${JSON.stringify(c)}, view ${JSON.stringify(v)}`);
      },
      { timeoutMs: 10000, what: `the ${corner} cursor inside the zoomed view` },
    );
    assert.ok(seen.v.zoom > 1.9, 'still zoomed');
  }
  const panned = await viewState(page);
  assert.ok(panned.cx < 0.4 && panned.cy < 0.4, `panned to the top-left: ${JSON.stringify(panned)}`);
  await h.screenshot(page, 'zoomed');

  // Alt+wheel zooms around the pointer: the frame point under it stays put.
  await page.locator('#tb-zoom-reset').click();
  const px = 300;
  const py = 200;
  await page.mouse.move(px, py);
  const under = () => page.evaluate(([x, y]) => window.vnrit.view.toFrame(x, y), [px, py]);
  const before = await under();
  await page.keyboard.down('Alt');
  await page.mouse.wheel(0, -400);
  await page.keyboard.up('Alt');
  const wheeled = await waitFor(async () => ((await viewState(page)).zoom > 1.5 ? viewState(page) : null), {
    timeoutMs: 5000,
    what: 'Alt+wheel to zoom in',
  });
  const after = await under();
  assert.ok(Math.abs(after.x - before.x) < 0.005 && Math.abs(after.y - before.y) < 0.005, `${JSON.stringify({ before, after })}`);
  assert.ok(wheeled.rect.width > fit.rect.width * 1.5);

  // 1:1: one video pixel per device pixel, zoom back to 100 %.
  await page.locator('#tb-fit').click();
  const pixel = await viewState(page);
  const dpr = await page.evaluate(() => devicePixelRatio);
  assert.equal(pixel.mode, 'pixel');
  assert.equal(pixel.zoom, 1);
  assert.ok(Math.abs(pixel.rect.width - 1280 / dpr) < 0.5, `1:1 width ${pixel.rect.width}`);
  assert.equal(await page.locator('#tb-fit').getAttribute('aria-pressed'), 'false');

  // The layout follows the window.
  await page.locator('#tb-fit').click();
  await page.setViewportSize({ width: 600, height: 700 });
  const narrow = await waitFor(
    async () => {
      const v = await viewState(page);
      return Math.abs(v.rect.width - 600) < 1 ? v : null;
    },
    { timeoutMs: 5000, what: 'the video to refit a 600 px wide window' },
  );
  assert.ok(Math.abs(narrow.rect.height - (600 * 9) / 16) < 1);
  await context.close();
  assert.deepEqual(problems, []);
});

test('every control is reachable with Tab and has a label; the keys menu works by keyboard', { timeout: 60000 }, async () => {
  h.setRoot('#505050');
  const context = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const { page, problems } = await openPage(context, h.server.url, '#505050');
  const controls = await page.evaluate(() =>
    [...document.querySelectorAll('#toolbar button')]
      .filter((b) => !b.hidden && !b.disabled && b.offsetParent !== null)
      .map((b) => ({ id: b.id, label: b.getAttribute('aria-label') || b.textContent.trim() })),
  );
  assert.ok(controls.length >= 10, JSON.stringify(controls));
  for (const c of controls) assert.ok(c.label.length > 2, `${c.id} has no useful label`);
  const reached = new Set();
  for (let k = 0; k < controls.length + 4; k++) {
    await page.keyboard.press('Tab');
    reached.add(await page.evaluate(() => document.activeElement?.id));
  }
  for (const c of controls) assert.ok(reached.has(c.id), `${c.id} not reachable by Tab (${[...reached]})`);
  assert.ok(reached.has('screen'), 'the video (the desktop) is reachable by Tab');

  // Enter on the video hands it the keyboard; Ctrl+Alt+Shift gives the keyboard back.
  await page.locator('#screen').focus();
  assert.equal(await page.evaluate(() => window.vnrit.input.active), false, 'focus alone does not capture keys');
  await page.keyboard.press('Enter');
  assert.equal(await page.evaluate(() => window.vnrit.input.active), true);
  await page.keyboard.down('Control');
  await page.keyboard.down('Alt');
  await page.keyboard.down('Shift');
  await page.keyboard.up('Shift');
  await page.keyboard.up('Alt');
  await page.keyboard.up('Control');
  assert.equal(await page.evaluate(() => window.vnrit.input.active), false, 'Ctrl+Alt+Shift released the keyboard');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tb-toggle');

  // Fullscreen on and off from the toolbar; no audio track yet, so no audio control.
  await page.locator('#tb-fullscreen').click();
  const fsState = () => page.evaluate(() => [!!document.fullscreenElement, document.getElementById('tb-fullscreen').getAttribute('aria-pressed')].join());
  await waitFor(async () => (await fsState()) === 'true,true', { timeoutMs: 5000, what: 'fullscreen, shown as pressed' });
  await page.locator('#tb-fullscreen').click();
  await waitFor(async () => (await fsState()) === 'false,false', { timeoutMs: 5000, what: 'fullscreen to end' });
  const audio = await page.evaluate(() => {
    const b = document.getElementById('tb-audio');
    return { hidden: b.hidden, disabled: b.disabled, tracks: window.vnrit.session.stream.getAudioTracks().filter((t) => !t.muted).length };
  });
  assert.deepEqual(audio, { hidden: true, disabled: true, tracks: 0 });

  // The special-keys menu opens with Enter, moves with arrows, closes with Escape.
  await page.locator('#tb-keys').focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.locator('#keys-menu').isVisible(), true);
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Ctrl+Alt+Del');
  await page.keyboard.press('ArrowDown');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Ctrl+Alt+Backspace');
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#keys-menu').isVisible(), false);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'tb-keys');
  await context.close();
  assert.deepEqual(problems, []);
});

/**
 * Starts `xev` covering the screen with the pointer over it (so, with no window manager,
 * it gets the keyboard) and returns a reader of the key presses it printed.
 */
async function startKeyLogger() {
  const xev = startChild('ui-xev', 'stdbuf', ['-oL', 'xev', '-display', h.display, '-geometry', '1280x720+0+0', '-event', 'keyboard']);
  await waitFor(
    () => {
      const r = spawnSync('xdotool', ['search', '--name', 'Event Tester'], {
        env: { ...process.env, DISPLAY: h.display },
        encoding: 'utf8',
        timeout: 5000,
      });
      return r.status === 0 && r.stdout.trim();
    },
    { timeoutMs: 10000, what: 'the xev window' },
  );
  xrun(h.display, 'xdotool', ['mousemove', '640', '360']);
  const presses = () =>
    [...xev.stdout.matchAll(/KeyPress event[^]*?state (0x[0-9a-f]+), keycode \d+ \(keysym 0x[0-9a-f]+, ([^)]+)\)/g)].map(
      (m) => ({ state: parseInt(m[1], 16), sym: m[2] }),
    );
  return { xev, presses };
}

const SHIFT = 0x1;
const CONTROL = 0x4;
const ALT = 0x8; // Mod1

test('phone: the on-screen keyboard types a shifted character and a locked-Ctrl combination', { timeout: 90000 }, async () => {
  h.setRoot('#303030');
  const context = await h.browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
  });
  const { page, problems } = await openPage(context, h.server.url, '#303030');
  await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: 'the input channel',
  });
  await page.locator('#tb-osk').tap();
  assert.equal(await page.locator('#osk').isVisible(), true);
  const { xev, presses } = await startKeyLogger();
  try {
    const key = (k) => page.locator(`#osk button[data-key="${k}"]`);
    // Shift tapped once: the next letter is upper case, the one after is not.
    await key('Shift').tap();
    assert.equal(await key('Shift').getAttribute('data-state'), 'once');
    await key('A').tap();
    await key('b').tap();
    await waitFor(() => presses().some((p) => p.sym === 'b'), { timeoutMs: 10000, what: 'xev to see "b"' });
    const typed = presses().filter((p) => !/Shift|Control/.test(p.sym));
    assert.deepEqual(typed.slice(0, 2).map((p) => p.sym), ['A', 'b'], JSON.stringify(presses()));
    assert.ok(typed[0].state & SHIFT, 'A typed with Shift held');
    assert.ok(!(typed[1].state & SHIFT), 'b typed without Shift (tap = once)');

    // Ctrl long-pressed (a real touch held until the key shows "locked"): it stays for c and v.
    const box = await key('Ctrl').boundingBox();
    const cdp = await context.newCDPSession(page);
    const point = { x: box.x + box.width / 2, y: box.y + box.height / 2 };
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchStart', touchPoints: [point] });
    await waitFor(async () => (await key('Ctrl').getAttribute('data-state')) === 'locked', {
      timeoutMs: 3000,
      intervalMs: 50,
      what: 'Ctrl to lock under a long press',
    });
    await cdp.send('Input.dispatchTouchEvent', { type: 'touchEnd', touchPoints: [] });
    assert.equal(await key('Ctrl').getAttribute('data-state'), 'locked', 'still locked after lifting the finger');
    await key('c').tap();
    await key('v').tap();
    await key('Ctrl').tap(); // unlock
    assert.equal(await key('Ctrl').getAttribute('data-state'), null);
    await key('x').tap();
    await waitFor(() => presses().some((p) => p.sym === 'x'), { timeoutMs: 10000, what: 'xev to see "x"' });
    const after = presses().filter((p) => ['c', 'v', 'x'].includes(p.sym));
    assert.deepEqual(after.map((p) => p.sym), ['c', 'v', 'x'], JSON.stringify(presses()));
    assert.ok(after[0].state & CONTROL && after[1].state & CONTROL, 'c and v typed with Ctrl held (locked)');
    assert.ok(!(after[2].state & CONTROL), 'x typed after unlocking, without Ctrl');

    // Number layer: a symbol arrives as typed.
    await page.locator('#osk button[aria-label="Numbers and symbols"]').tap();
    await key('7').tap();
    await key('@').tap();
    await waitFor(() => presses().some((p) => p.sym === 'at'), { timeoutMs: 10000, what: 'xev to see "@"' });
    assert.deepEqual(
      presses().filter((p) => ['7', 'at'].includes(p.sym)).map((p) => p.sym),
      ['7', 'at'],
    );
    await page.locator('#osk button[aria-label="Letters"]').tap();

    // The toolbar's special keys: Ctrl+Alt+Del arrives as Delete with Control and Alt held.
    await page.locator('#tb-keys').tap();
    await page.locator('#keys-menu button', { hasText: 'Ctrl+Alt+Del' }).tap();
    const del = await waitFor(() => presses().find((p) => p.sym === 'Delete'), { timeoutMs: 10000, what: 'xev to see Delete' });
    assert.equal(del.state & (CONTROL | ALT), CONTROL | ALT, `Delete state 0x${del.state.toString(16)}`);
    assert.equal(await page.locator('#keys-menu').isVisible(), false, 'the menu closes after sending');
  } finally {
    await xev.stop();
  }
  h.setRoot('#303030');
  await waitForColour(page, '#303030', { timeoutMs: 10000 });
  const undecorate = decorate();
  // The clock covers the sample point at (20 %, 20 %): wait until the video shows it.
  await waitFor(async () => !allNear(await samplePixels(page), hexToRgb('#303030'), 40), {
    timeoutMs: 10000,
    what: 'the clock in the video',
  });
  await keepScreenshot(page, 'phone');
  await undecorate();
  await context.close();
  assert.deepEqual(problems, []);
});

test('phone: trackpad mode moves the pointer relatively, direct mode to the finger', { timeout: 60000 }, async () => {
  h.setRoot('#204020');
  const context = await h.browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const { page, problems } = await openPage(context, h.server.url, '#204020');
  await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: 'the input channel',
  });
  xrun(h.display, 'xdotool', ['mousemove', '640', '360']);
  await waitFor(() => page.evaluate(() => window.vnrit.input.cursor.x === 0.5), { timeoutMs: 5000, what: 'the page to hear of the X pointer' });
  const cdp = await context.newCDPSession(page);
  const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points });
  const v = await viewState(page);
  // Trackpad (the default): a finger dragged 60 px right anywhere moves the pointer right.
  assert.equal(await page.locator('#tb-touch').textContent(), 'Pad');
  const y0 = v.rect.top + v.rect.height / 2;
  await touch('touchStart', [{ x: 100, y: y0 }]);
  for (let dx = 10; dx <= 60; dx += 10) await touch('touchMove', [{ x: 100 + dx, y: y0 }]);
  await touch('touchEnd', []);
  const want = 640 + Math.round(((60 * 1.6) / v.rect.width) * 1280);
  const moved = await waitFor(
    () => {
      const p = xPointer(h.display);
      return Math.abs(p.x - want) <= 3 && Math.abs(p.y - 360) <= 3 ? p : null;
    },
    { timeoutMs: 5000, what: `the X pointer near (${want}, 360)` },
  );
  assert.ok(moved.x > 700, 'moved right, relative to where it was (not to the finger at x=160)');

  // Direct: a tap puts the pointer under the finger.
  await page.locator('#tb-touch').tap();
  assert.equal(await page.locator('#tb-touch').textContent(), 'Direct');
  const tx = v.rect.left + v.rect.width * 0.25;
  const ty = v.rect.top + v.rect.height * 0.75;
  await touch('touchStart', [{ x: tx, y: ty }]);
  await touch('touchEnd', []);
  await waitFor(
    () => {
      const p = xPointer(h.display);
      return Math.abs(p.x - 320) <= 4 && Math.abs(p.y - 540) <= 4 ? p : null;
    },
    { timeoutMs: 5000, what: 'the X pointer at the tapped point (320, 540)' },
  );
  await context.close();
  assert.deepEqual(problems, []);
});

test('clipboard panel: text goes to the desktop, and the desktop\'s text comes back', { timeout: 60000 }, async () => {
  h.setRoot('#404040');
  const context = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const { page, problems } = await openPage(context, h.server.url, '#404040');
  await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: 'the input channel',
  });
  const env = { ...process.env, DISPLAY: h.display };
  const xclipOut = () => spawnSync('xclip', ['-o', '-selection', 'clipboard'], { env, encoding: 'utf8', timeout: 5000 }).stdout;

  await page.locator('#tb-clip').click();
  assert.equal(await page.locator('#clip-panel').isVisible(), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'clip-text');
  const sent = 'from the page: grüße ✓';
  await page.locator('#clip-text').fill(sent);
  await page.locator('#clip-send').click();
  await waitFor(() => xclipOut() === sent, { timeoutMs: 10000, what: 'the X clipboard to hold the sent text' });
  assert.equal(await page.locator('#clip-note').textContent(), 'sent to the desktop');

  // An X client takes the clipboard: the page hears of it and offers it in the panel.
  const file = join(ARTIFACTS, 'ui-clipboard.txt');
  const back = 'from the desktop 42';
  await writeFile(file, back);
  const owner = startChild('ui-xclip', 'xclip', ['-quiet', '-selection', 'clipboard', '-i', file], env);
  try {
    await waitFor(() => page.evaluate(() => window.vnrit.clipboard.remoteText), {
      timeoutMs: 10000,
      what: 'the desktop clipboard to reach the page',
    }).then((t) => assert.equal(t, back));
    await page.locator('#clip-copy').click();
    assert.equal(await page.locator('#clip-text').inputValue(), back);
  } finally {
    await owner.stop();
  }
  await page.keyboard.press('Escape');
  assert.equal(await page.locator('#clip-panel').isVisible(), false);
  await context.close();
  assert.deepEqual(problems, []);
});
