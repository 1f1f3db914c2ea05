// vnrit e2e: remote control from headless Chromium into the X server. Keys typed and clicks
// made in the page must reach an X client (xev, which translates keys with the real Xlib),
// through the `input` data channel and, with the data channel blocked, through the WebSocket
// fallback; the cursor overlay must follow the X pointer.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { Harness, startServer, waitFor, xPointer } from './lib/harness.mjs';

let h;
let xev;
let xevOut = '';
const pageErrors = [];

before(async () => {
  h = await Harness.start('input');
  // A full-screen xev window: it prints every key and button event it receives.
  xev = spawn('stdbuf', ['-oL', 'xev', '-display', h.display, '-geometry', '1280x720+0+0', '-event', 'keyboard', '-event', 'button'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  xev.stdout.on('data', (d) => (xevOut += d));
  await waitFor(() => xevOut.includes('MapNotify') || xevOut.includes('Expose') || xevOut.length > 0, {
    timeoutMs: 10000,
    what: 'xev to start',
  });
});

after(async () => {
  xev?.kill('SIGTERM');
  await h?.close();
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});

/** Moves the X pointer with xdotool (XTest), as a local user or program would. */
function xdotoolMove(x, y) {
  const r = spawnSync('xdotool', ['mousemove', String(x), String(y)], {
    env: { ...process.env, DISPLAY: h.display },
    encoding: 'utf8',
    timeout: 10000,
  });
  if (r.status !== 0) throw new Error(`xdotool mousemove failed: ${r.error?.message ?? r.stderr}`);
}

/** The text xev saw typed since `from` (XLookupString of each KeyPress). */
function typedSince(from) {
  const out = [];
  const re = /KeyPress event[\s\S]*?XLookupString gives (\d+) bytes: (?:\([0-9a-f ]+\) "([^"]*)")?/g;
  for (const m of xevOut.slice(from).matchAll(re)) {
    if (Number(m[1]) > 0) out.push(m[2]);
  }
  return out.join('');
}

/** [button, x, y] of each ButtonPress xev saw since `from`. */
function pressesSince(from) {
  const re = /ButtonPress event[\s\S]*?root:\((-?\d+),(-?\d+)\),\s+state 0x[0-9a-f]+, button (\d+)/g;
  return [...xevOut.slice(from).matchAll(re)].map((m) => [Number(m[3]), Number(m[1]), Number(m[2])]);
}

/** Opens the viewer at 960x600 (a 960x540 picture between 30 px bars) and waits for video. */
async function openViewer({ blockDataChannel = false } = {}) {
  const page = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  if (blockDataChannel) {
    // The page's data channel never opens: input must take the WebSocket.
    await page.addInitScript(() => {
      RTCPeerConnection.prototype.createDataChannel = function blocked() {
        const fake = new EventTarget();
        fake.readyState = 'connecting';
        fake.send = () => {
          throw new Error('data channel blocked by the test');
        };
        fake.close = () => {};
        return fake;
      };
    });
  }
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => document.getElementById('screen').videoWidth === 1280), {
    timeoutMs: 15000,
    what: 'the video',
  });
  return page;
}

/** The X pixel the page maps client (cx, cy) to: normalised to the picture, 5 decimals. */
function expectedPixel(cx, cy) {
  const nx = Math.round(((cx - 0) / 960) * 1e5) / 1e5;
  const ny = Math.round(((cy - 30) / 540) * 1e5) / 1e5;
  return [Math.floor(nx * 1280), Math.floor(ny * 720)];
}

async function clickAndType(page, label) {
  const from = xevOut.length;
  // Clicks: left in the picture, right near a corner (letterbox offset and 4/3 scale apply).
  await page.mouse.click(480, 300);
  await page.mouse.click(100, 80, { button: 'right' });
  await page.keyboard.type('hi vnrit');
  await page.keyboard.press('Shift+Digit1');
  await page.keyboard.press('Enter');
  const want = [
    [1, ...expectedPixel(480, 300)],
    [3, ...expectedPixel(100, 80)],
  ];
  await waitFor(() => typedSince(from) === 'hi vnrit!\r' && pressesSince(from).length >= 2, {
    timeoutMs: 10000,
    what: `${label}: xev to see the clicks and "hi vnrit!⏎" (saw ${JSON.stringify(typedSince(from))})`,
  });
  assert.deepEqual(pressesSince(from), want, `${label}: buttons and positions`);
}

test('keys and clicks in the page reach X over the data channel', { timeout: 60000 }, async () => {
  const page = await openViewer();
  await waitFor(() => page.evaluate(() => vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: 'the input data channel to open',
  });
  await clickAndType(page, 'data channel');
  await page.close();
});

test('with the data channel blocked, input takes the WebSocket', { timeout: 60000 }, async () => {
  const page = await openViewer({ blockDataChannel: true });
  assert.equal(await page.evaluate(() => vnrit.session.input.readyState), 'connecting');
  await clickAndType(page, 'WebSocket');
  await page.close();
});

test('the cursor overlay follows the X pointer', { timeout: 60000 }, async () => {
  const page = await openViewer();
  // The page's own pointer stays off the video, so the overlay shows the X cursor.
  for (const [x, y] of [
    [320, 180],
    [960, 540],
  ]) {
    xdotoolMove(x, y);
    const seen = await waitFor(
      () =>
        page.evaluate(() => {
          const c = document.getElementById('vnrit-cursor');
          const s = vnrit.input.cursor;
          if (!c || c.style.display !== 'block' || !s.shape) return null;
          return { x: s.x, y: s.y, transform: c.style.transform, hx: s.shape.hx, hy: s.shape.hy, sw: s.shape.sw };
        }),
      { timeoutMs: 5000, what: `the overlay at X (${x},${y})`, intervalMs: 50 },
    ).then(async (first) => {
      // Wait until the position message for this move has arrived.
      return waitFor(
        async () => {
          const v = await page.evaluate(() => ({ ...vnrit.input.cursor, transform: document.getElementById('vnrit-cursor').style.transform }));
          if (Math.abs(v.x - x / 1280) < 1e-4 && Math.abs(v.y - y / 720) < 1e-4) return { ...first, ...v };
          throw new Error(`cursor at ${v.x},${v.y}`);
        },
        { timeoutMs: 5000, what: `cursor position ${x},${y}`, intervalMs: 50 },
      );
    });
    const scale = 960 / 1280;
    const left = x * scale - seen.shape.hx * scale;
    const top = 30 + y * scale - seen.shape.hy * scale;
    const m = /translate\(([-\d.]+)px, ([-\d.]+)px\)/.exec(seen.transform);
    assert.ok(m, `overlay transform ${seen.transform}`);
    assert.ok(Math.abs(Number(m[1]) - left) < 0.5 && Math.abs(Number(m[2]) - top) < 0.5, `overlay at ${m[1]},${m[2]}, want ${left},${top}`);
  }
  await page.close();
});

test('the relative-mouse button locks the pointer, and motion moves the X pointer by its deltas', { timeout: 60000 }, async () => {
  const page = await openViewer();
  const lock = page.locator('#tb-lock');
  assert.equal(await lock.isVisible(), true, 'the button is shown on a desktop browser');
  await lock.click();
  await waitFor(() => page.evaluate(() => document.pointerLockElement === document.getElementById('screen')), {
    timeoutMs: 5000,
    what: 'the pointer locked to the video',
  });
  assert.equal(await lock.getAttribute('aria-pressed'), 'true');
  assert.match((await page.locator('#status').textContent()) ?? '', /relative mouse/);
  // Locked, the page position means nothing: only motion counts. The picture is 960 px wide
  // for 1280 X pixels and 540 px high for 720, so 60x30 page pixels are 80x40 X pixels.
  const box = await lock.boundingBox();
  const [cx, cy] = [box.x + box.width / 2, box.y + box.height / 2];
  await new Promise((r) => setTimeout(r, 300));
  const start = xPointer(h.display);
  await page.mouse.move(cx + 30, cy + 15);
  await page.mouse.move(cx + 60, cy + 30);
  let at = start;
  await waitFor(
    () => {
      at = xPointer(h.display);
      return Math.abs(at.x - start.x - 80) <= 1 && Math.abs(at.y - start.y - 40) <= 1;
    },
    { timeoutMs: 5000, what: `the X pointer 80,40 px from ${JSON.stringify(start)} (last at ${JSON.stringify(at)})`, intervalMs: 50 },
  );
  await page.evaluate(() => document.exitPointerLock());
  await waitFor(async () => (await lock.getAttribute('aria-pressed')) === 'false', { timeoutMs: 5000, what: 'the button released' });
  await page.close();
});

/** Events of `kind` ("KeyRelease", "ButtonRelease", ...) xev saw since `from`, as text. */
function eventsSince(from, kind) {
  return xevOut
    .slice(from)
    .split(/\n(?=\S)/)
    .filter((e) => e.startsWith(`${kind} event`));
}

test('held keys and buttons are released when the page loses focus', { timeout: 60000 }, async () => {
  const page = await openViewer();
  const from = xevOut.length;
  await page.mouse.move(480, 300);
  await page.mouse.down();
  await page.keyboard.down('Shift');
  await waitFor(() => eventsSince(from, 'KeyPress').some((e) => e.includes('Shift_L')), {
    timeoutMs: 10000,
    what: 'Shift_L down in X',
  });
  const mark = xevOut.length;
  await page.evaluate(() => window.dispatchEvent(new Event('blur')));
  await waitFor(
    () =>
      eventsSince(mark, 'KeyRelease').some((e) => e.includes('Shift_L')) &&
      eventsSince(mark, 'ButtonRelease').some((e) => e.includes('button 1,')),
    { timeoutMs: 10000, what: 'Shift_L and button 1 released after blur' },
  );
  await page.keyboard.up('Shift');
  await page.mouse.up();
  await page.close();
});

test('held keys and buttons are released when the server gets SIGTERM', { timeout: 90000 }, async () => {
  const page = await openViewer();
  const from = xevOut.length;
  await page.mouse.move(480, 300);
  await page.mouse.down({ button: 'middle' });
  await page.keyboard.down('Control');
  await waitFor(() => eventsSince(from, 'KeyPress').some((e) => e.includes('Control_L')), {
    timeoutMs: 10000,
    what: 'Control_L down in X',
  });
  const mark = xevOut.length;
  await h.restartServer(); // SIGTERM, then a fresh server for whatever runs next
  await waitFor(
    () =>
      eventsSince(mark, 'KeyRelease').some((e) => e.includes('Control_L')) &&
      eventsSince(mark, 'ButtonRelease').some((e) => e.includes('button 2,')),
    { timeoutMs: 10000, what: 'Control_L and button 2 released on SIGTERM' },
  );
  await page.close();
});

test('touch: tap clicks, long press right-clicks, two fingers scroll', { timeout: 60000 }, async () => {
  const context = await h.browser.newContext({ viewport: { width: 960, height: 600 }, hasTouch: true });
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => document.getElementById('screen').videoWidth === 1280), {
    timeoutMs: 15000,
    what: 'the video',
  });
  // These gestures are direct-touch mode's (the page starts in trackpad mode).
  await page.evaluate(() => {
    window.vnrit.pointer.touchMode = 'direct';
  });
  const cdp = await context.newCDPSession(page);
  const touch = (type, points) => cdp.send('Input.dispatchTouchEvent', { type, touchPoints: points.map(([x, y], id) => ({ x, y, id })) });

  let from = xevOut.length;
  await page.touchscreen.tap(480, 300);
  await waitFor(() => pressesSince(from).length >= 1, { timeoutMs: 10000, what: 'a tap to click' });
  assert.deepEqual(pressesSince(from), [[1, ...expectedPixel(480, 300)]]);

  from = xevOut.length;
  await touch('touchStart', [[200, 200]]);
  await waitFor(() => pressesSince(from).length >= 1, { timeoutMs: 10000, what: 'a long press to right-click' });
  await touch('touchEnd', []);
  assert.deepEqual(pressesSince(from), [[3, ...expectedPixel(200, 200)]]);

  // Two fingers move up 120 px: 3 notches of 40 px = wheel down (button 5) three times.
  from = xevOut.length;
  await touch('touchStart', [
    [400, 400],
    [500, 400],
  ]);
  for (let y = 390; y >= 280; y -= 10) {
    await touch('touchMove', [
      [400, y],
      [500, y],
    ]);
  }
  await touch('touchEnd', []);
  await waitFor(() => pressesSince(from).length >= 3, { timeoutMs: 10000, what: 'three wheel clicks' });
  assert.deepEqual(
    pressesSince(from).map(([b]) => b),
    [5, 5, 5],
  );
  await context.close();
});

test('a view-only viewer (--view-token) cannot type or click', { timeout: 90000 }, async () => {
  const viewToken = 'watch-only-token';
  const second = await startServer({ display: h.display, token: h.token, name: 'input-vnrit-view', extraArgs: ['--view-token', viewToken] });
  try {
    const page = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
    page.on('pageerror', (err) => pageErrors.push(err.message));
    // Data channel blocked, so each refusal comes back as a WebSocket error we can count.
    await page.addInitScript(() => {
      RTCPeerConnection.prototype.createDataChannel = function blocked() {
        const fake = new EventTarget();
        fake.readyState = 'connecting';
        fake.close = () => {};
        return fake;
      };
      window.__input = { sent: 0, refused: 0 };
      const send = WebSocket.prototype.send;
      WebSocket.prototype.send = function counted(data) {
        window.__ws = this;
        if (!this.__counted) {
          this.__counted = true;
          this.addEventListener('message', (ev) => {
            if (/"type":"error".*view-only/.test(ev.data)) window.__input.refused += 1;
          });
        }
        if (typeof data === 'string' && data.startsWith('{"type":"input"')) window.__input.sent += 1;
        return send.call(this, data);
      };
    });
    await page.goto(`${second.base}/?token=${viewToken}`, { timeout: 15000 });
    await waitFor(() => page.evaluate(() => document.getElementById('screen').videoWidth === 1280), {
      timeoutMs: 15000,
      what: 'the video for the view-only viewer',
    });
    const from = xevOut.length;
    // The server's hello said view-only: the page itself sends no input at all.
    await waitFor(() => page.evaluate(() => window.vnrit?.input?.viewOnly === true), {
      timeoutMs: 10000,
      what: 'the page to know it is view-only',
    });
    await page.mouse.click(480, 300);
    await page.keyboard.type('no');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await page.evaluate(() => window.__input)).sent, 0, 'a view-only page sends no input');
    // A client that sends input anyway is refused, with one message however many it sends.
    await page.evaluate(() => {
      for (let i = 0; i < 5; i += 1) window.__ws.send('{"type":"input","data":"[\\"kd\\",\\"KeyA\\",\\"a\\"]"}');
    });
    const counts = await waitFor(
      async () => {
        const c = await page.evaluate(() => window.__input);
        return c.refused >= 1 ? c : null;
      },
      { timeoutMs: 10000, what: 'forced input refused as view-only' },
    );
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await page.evaluate(() => window.__input)).refused, 1, `one refusal: ${JSON.stringify(counts)}`);
    assert.equal(typedSince(from), '', 'nothing typed');
    assert.deepEqual(pressesSince(from), [], 'nothing clicked');
    await page.close();
  } finally {
    await second.child.stop();
  }
});
