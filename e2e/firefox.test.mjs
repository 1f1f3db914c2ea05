// vnrit e2e: Debian's Firefox ESR (headless, WebDriver BiDi through puppeteer-core) as a viewer
// next to Chromium. Firefox here decodes VP8, VP9 and AV1 only (no H.264 without its downloaded
// plugin). A page whose offer the server cannot take shows the server's own reason and keeps it
// through the retries.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { GaveUp, Harness, startChild, startXvfb, waitFor, xPointer, xrun } from './lib/harness.mjs';
import { focusFirefoxWindow, launchFirefox, newFirefoxPage } from './lib/firefox.mjs';
import { status, trackConnections, waitForColour, watchConsole } from './lib/page.mjs';
import { Pulse } from './lib/pulse.mjs';
import { Xev } from './lib/xev.mjs';

const started = Date.now();
let h;
let pulse;
let xev;
/** Uncaught exceptions and console errors of every page of this file; must stay empty. */
const pageErrors = [];

async function firefoxPage(opts) {
  const page = await newFirefoxPage(h.firefox, opts);
  const problems = watchConsole(page);
  page.on('close', () => pageErrors.push(...problems));
  return page;
}

before(async () => {
  // A private PulseAudio first: the server records its null sink's monitor from the start.
  pulse = new Pulse('firefox');
  await pulse.start();
  process.env.PULSE_SERVER = pulse.server;
  // Chromium too: the mixed-viewers test watches one Firefox and one Chromium page at once.
  h = await Harness.start('firefox', { firefox: true });
});

after(async () => {
  xev?.stop();
  await h?.close();
  await pulse?.close();
  console.log(`# firefox.test.mjs ran ${((Date.now() - started) / 1000).toFixed(1)} s`);
  assert.deepEqual(pageErrors, [], 'no uncaught page errors or console errors');
});

/** An init script counting the page's signalling sockets (one per connection attempt). */
function countAttempts() {
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

test('an offer without a codec the server sends (AV1 only): the page shows the server\'s reason and keeps it', { timeout: 60000 }, async () => {
  const page = await firefoxPage();
  await page.evaluateOnNewDocument(countAttempts);
  // ?codec=av1: the page offers only AV1 (setCodecPreferences), which vnrit never sends.
  await page.goto(`${h.server.url}&codec=av1`, { timeout: 15000 });
  const want = 'no common video codec: your browser offers AV1; this server sends H.264 and VP8';
  const first = await waitFor(
    async () => {
      const s = await shown(page);
      if (s.kind === 'refused') return s;
      throw new Error(JSON.stringify(s));
    },
    { timeoutMs: 15000, what: 'the refusal notice' },
  );
  assert.ok(first.notice.includes(want), `the notice quotes the server: ${first.notice}`);
  assert.equal(first.state, 'error');
  assert.ok(first.pill.includes(want), first.pill);
  // Nothing replaces it, and the page does not retry into the same refusal.
  const t = Date.now();
  await waitFor(
    async () => {
      const s = await shown(page);
      assert.deepEqual([s.kind, s.state, s.pill, s.attempts], ['refused', 'error', first.pill, 1], JSON.stringify(s));
      return Date.now() - t > 3000;
    },
    { timeoutMs: 10000, intervalMs: 100, what: '3 s of the same refusal' },
  );
  console.log(`# refusal shown: ${JSON.stringify(first.pill)}`);
  assert.equal((await h.stats()).encoders, 0, 'no encoder ran for a refused viewer');
  await page.close();
});

/** Opens the viewer in a Firefox page (960x600: a 960x540 picture between 30 px bars). */
async function openViewer(hex, { init = [] } = {}) {
  const page = await firefoxPage();
  for (const fn of init) await page.evaluateOnNewDocument(fn);
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, hex, { timeoutMs: 20000 });
  return page;
}

/** The X pixel the page maps client (cx, cy) to in a 960x600 page. */
function expectedPixel(cx, cy) {
  const nx = Math.round((cx / 960) * 1e5) / 1e5;
  const ny = Math.round(((cy - 30) / 540) * 1e5) / 1e5;
  return [Math.floor(nx * 1280), Math.floor(ny * 720)];
}

/** [button, rootX, rootY] of each ButtonPress xev printed since `from`. */
function buttonsSince(from) {
  const re = /ButtonPress event[\s\S]*?root:\((-?\d+),(-?\d+)\),\s+state 0x[0-9a-f]+, button (\d+)/g;
  return [...xev.out.slice(from).matchAll(re)].map((m) => [Number(m[3]), Number(m[1]), Number(m[2])]);
}

/** The video's inbound-rtp stats as Firefox reports them (codec through codecId). */
function inbound(page, kind) {
  return page.evaluate(async (k) => {
    const pc = window.vnrit.session?.pc;
    if (!pc) return null;
    const all = new Map();
    (await pc.getStats()).forEach((r) => all.set(r.id, r));
    const r = [...all.values()].find((s) => s.type === 'inbound-rtp' && s.kind === k);
    if (!r) return null;
    return { ...r, codec: all.get(r.codecId)?.mimeType ?? null };
  }, kind);
}

test('VP8: the page decodes the desktop colour and a change; the stats overlay shows sane numbers', { timeout: 60000 }, async () => {
  h.setRoot('#20a040');
  const t0 = Date.now();
  const page = await openViewer('#20a040');
  const first = Date.now() - t0;
  h.setRoot('#0000ff');
  await waitForColour(page, '#0000ff', { timeoutMs: 5000 });
  const v = await page.evaluate(() => {
    const el = document.getElementById('screen');
    return { paused: el.paused, muted: el.muted, w: el.videoWidth, h: el.videoHeight, rvfc: 'requestVideoFrameCallback' in el };
  });
  assert.deepEqual(v, { paused: false, muted: true, w: 1280, h: 720, rvfc: true });
  assert.equal((await inbound(page, 'video'))?.codec, 'video/VP8');

  await page.click('#tb-stats');
  const colours = ['#0000ff', '#0101fe'];
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
  const text = await page.$eval('#stats', (el) => el.textContent);
  console.log(`# first frame after ${first} ms; stats overlay: ${JSON.stringify(last)}`);
  assert.match(text, /state\s+connected/);
  assert.match(text, /fps\s+[1-9]/);
  assert.match(text, /bitrate\s+[0-9.]+ (k|M)bit\/s/);
  assert.match(text, /resolution\s+1280×720/);
  assert.match(text, /codec\s+VP8/);
  assert.doesNotMatch(text, /NaN|undefined|null/);
  assert.ok(last.fps < 100 && last.kbps < 50000, JSON.stringify(last));
  await h.screenshot(page, 'stats');
  await page.close();
});

test('keys (Shift too), clicks and the wheel reach X', { timeout: 60000 }, async () => {
  h.setRoot('#404040');
  const page = await openViewer('#404040');
  // A full-screen xev (it covers the root window: no colour checks while it runs).
  xev = await Xev.start(h.display);
  const from = xev.mark();
  const bFrom = xev.out.length;
  await page.mouse.click(480, 300);
  await page.mouse.click(100, 80, { button: 'right' });
  await page.keyboard.type('hi vnrit');
  await page.keyboard.down('Shift');
  await page.keyboard.press('Digit1');
  await page.keyboard.press('KeyA');
  await page.keyboard.up('Shift');
  await page.keyboard.press('Enter');
  await page.mouse.move(480, 300);
  await page.mouse.wheel({ deltaY: 300 });
  await waitFor(() => xev.typed(from) === 'hi vnrit!A\r' && buttonsSince(bFrom).length >= 5, {
    timeoutMs: 10000,
    what: `xev to see the clicks, "hi vnrit!A⏎" and the wheel (typed ${JSON.stringify(xev.typed(from))}, buttons ${JSON.stringify(buttonsSince(bFrom))})`,
  });
  const buttons = buttonsSince(bFrom);
  assert.deepEqual(buttons.slice(0, 2), [
    [1, ...expectedPixel(480, 300)],
    [3, ...expectedPixel(100, 80)],
  ]);
  assert.deepEqual(buttons.slice(2).map(([b]) => b), [5, 5, 5], 'three notches down');
  xev.stop();
  await page.close();
});

test('audio plays after the page\'s unmute control; getStats shows packets and energy', { timeout: 60000 }, async () => {
  h.setRoot('#603060');
  const page = await openViewer('#603060');
  pulse.playTone();
  try {
    // The control appears once audio flows (a remote track is muted until then).
    await waitFor(() => page.$eval('#tb-audio', (b) => !b.hidden && !b.disabled), { timeoutMs: 20000, what: 'the audio control' });
    await page.click('#tb-audio');
    assert.deepEqual(
      await page.evaluate(() => [document.getElementById('screen').muted, document.getElementById('tb-audio').getAttribute('aria-pressed')]),
      [false, 'true'],
    );
    const a0 = await inbound(page, 'audio');
    const heard = await waitFor(
      async () => {
        const a = await inbound(page, 'audio');
        return a && a.packetsReceived > (a0?.packetsReceived ?? 0) + 50 && a.totalAudioEnergy > (a0?.totalAudioEnergy ?? 0) ? a : null;
      },
      { timeoutMs: 20000, what: 'audio packets and energy rising after unmute' },
    );
    assert.equal(heard.codec, 'audio/opus');
    const playing = await page.evaluate(() => !document.getElementById('screen').paused);
    assert.equal(playing, true, 'the element still plays unmuted (no autoplay block)');
    console.log(`# audio: ${heard.packetsReceived} packets, energy ${heard.totalAudioEnergy?.toFixed(3)}, level ${heard.audioLevel}`);
  } finally {
    await pulse.stopTone();
  }
  await page.close();
});

test('a Firefox and a Chromium viewer at once: one encode per codec', { timeout: 90000 }, async () => {
  h.setRoot('#a06000');
  const ff = await openViewer('#a06000');
  const context = await h.browser.newContext();
  const cr = await context.newPage();
  await cr.goto(h.server.url, { timeout: 15000 });
  await waitForColour(cr, '#a06000', { timeoutMs: 20000 });
  h.setRoot('#00a0a0');
  await Promise.all([waitForColour(ff, '#00a0a0'), waitForColour(cr, '#00a0a0')]);
  const ff2 = await openViewer('#00a0a0');
  const stats = await waitFor(
    async () => {
      const s = await h.stats();
      const live = s.sessions.filter((x) => x.state === 'connected');
      return live.length === 3 && live.every((x) => x.frames_sent > 0) ? s : null;
    },
    { timeoutMs: 10000, what: 'three connected sessions sending frames' },
  );
  const codecs = stats.sessions.filter((x) => x.state === 'connected').map((x) => x.codec).sort();
  const encoders = Object.fromEntries(stats.codecs.map((c) => [c.codec, c.encoders]));
  console.log(`# encoders ${stats.encoders} ${JSON.stringify(encoders)}, session codecs ${JSON.stringify(codecs)}`);
  assert.deepEqual(codecs, ['h264', 'vp8', 'vp8']);
  assert.deepEqual(encoders, { h264: 1, vp8: 1 }, 'one encode per codec for three viewers');
  assert.equal(stats.encoders, 2);
  assert.equal((await inbound(ff, 'video')).codec, 'video/VP8');
  await Promise.all([ff.close(), ff2.close(), context.close()]);
  await waitFor(async () => (await h.stats()).encoders === 0, { timeoutMs: 10000, what: 'encoders back to 0' });
});

test('after a server restart the Firefox page reconnects by itself and decodes again', { timeout: 90000 }, async () => {
  h.setRoot('#ffff00');
  const page = await openViewer('#ffff00');
  await h.restartServer();
  h.setRoot('#ff00ff');
  await waitForColour(page, '#ff00ff', { timeoutMs: 30000 });
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 10000, what: 'status connected again' });
  const s = await h.stats();
  assert.equal(s.sessions.filter((x) => x.state === 'connected').length, 1, JSON.stringify(s.sessions));
  await page.close();
});

test('clipboard: the panel works both ways where the page may not read the clipboard', { timeout: 60000 }, async () => {
  h.setRoot('#305070');
  const page = await openViewer('#305070');
  const env = { ...process.env, DISPLAY: h.display };
  // Firefox has no "clipboard-read" permission to query: the page never reads by itself.
  const readable = await page.evaluate(async () => {
    try {
      return (await navigator.permissions.query({ name: 'clipboard-read' })).state;
    } catch (err) {
      return `refused: ${err.name}`;
    }
  });
  console.log(`# clipboard-read permission: ${readable}`);
  await page.click('#tb-clip');
  await page.type('#clip-text', 'from firefox ✓');
  await page.click('#clip-send');
  const xclipOut = () => spawnSync('xclip', ['-o', '-selection', 'clipboard'], { env, encoding: 'utf8', timeout: 5000 }).stdout;
  await waitFor(() => xclipOut() === 'from firefox ✓', { timeoutMs: 10000, what: 'the desktop clipboard to hold the panel text' });

  const owner = startChild('firefox-xclip', 'sh', ['-c', 'printf "from the desktop" | xclip -quiet -selection clipboard -i'], env);
  try {
    await waitFor(() => page.$eval('#clip-note', (n) => n.textContent.includes('desktop')), { timeoutMs: 10000, what: 'the panel to hear of the desktop text' });
    await page.click('#clip-copy');
    assert.equal(await page.$eval('#clip-text', (t) => t.value), 'from the desktop');
  } finally {
    await owner.stop();
  }
  await page.close();
});

test('fullscreen and pointer lock work; the missing Keyboard Lock API is skipped; locked motion moves X by its deltas', { timeout: 60000 }, async () => {
  h.setRoot('#506050');
  const page = await openViewer('#506050');
  const state = () =>
    page.evaluate(() => ({
      fs: !!document.fullscreenElement,
      fsPressed: document.getElementById('tb-fullscreen').getAttribute('aria-pressed'),
      lock: document.pointerLockElement === document.getElementById('screen'),
      lockPressed: document.getElementById('tb-lock').getAttribute('aria-pressed'),
      status: document.getElementById('status').textContent,
      keyboardLock: !!navigator.keyboard?.lock,
    }));
  await page.click('#tb-fullscreen');
  const fs = await waitFor(
    async () => {
      const s = await state();
      if (/fullscreen refused/.test(s.status)) throw new GaveUp(s.status);
      return s.fs && s.fsPressed === 'true' ? s : null;
    },
    { timeoutMs: 5000, what: 'fullscreen, shown as pressed' },
  );
  // No Keyboard Lock API in Firefox: the page skips it (an uncaught error would fail the file).
  assert.equal(fs.keyboardLock, false);
  await page.click('#tb-fullscreen');
  await waitFor(async () => !(await state()).fs, { timeoutMs: 5000, what: 'fullscreen to end' });
  await page.click('#tb-lock');
  const lock = await waitFor(
    async () => {
      const s = await state();
      if (/pointer lock refused/.test(s.status)) throw new GaveUp(s.status);
      return s.lock && s.lockPressed === 'true' ? s : null;
    },
    { timeoutMs: 5000, what: 'the pointer locked to the video' },
  );
  // Locked, only motion counts: the X pointer moves by the page's movementX/Y, scaled from
  // the 960x540 picture to 1280x720. (Firefox's movement for WebDriver moves is not the
  // distance between the positions given, so the test sums what the page saw.)
  await page.evaluate(() => {
    window.__moved = [0, 0];
    document.getElementById('screen').addEventListener('mousemove', (e) => {
      window.__moved[0] += e.movementX;
      window.__moved[1] += e.movementY;
    });
  });
  const start = xPointer(h.display);
  await page.mouse.move(500, 320);
  await page.mouse.move(560, 350);
  const moved = await waitFor(async () => {
    const m = await page.evaluate(() => window.__moved);
    return m[0] && m[1] ? m : null;
  }, { timeoutMs: 5000, what: 'locked mouse motion in the page' });
  const want = [start.x + (moved[0] * 4) / 3, start.y + (moved[1] * 4) / 3];
  let at = start;
  await waitFor(
    () => {
      at = xPointer(h.display);
      return Math.abs(at.x - want[0]) <= 1.5 && Math.abs(at.y - want[1]) <= 1.5;
    },
    { timeoutMs: 5000, intervalMs: 50, what: `the X pointer at ${JSON.stringify(want)}, from ${JSON.stringify(start)} by the page's movement ${JSON.stringify(moved)}` },
  );
  console.log(`# fullscreen and pointer lock on; relative motion moved X by ${at.x - start.x},${at.y - start.y}`);
  await page.evaluate(() => document.exitPointerLock());
  await page.close();
});

test('AltGr and a German layout: a windowed Firefox on a de keyboard types "yz!@€ü" into a de desktop', { timeout: 90000 }, async () => {
  h.setRoot('#707070');
  const client = await startXvfb('firefox-client-xvfb');
  let windowed;
  try {
    xrun(client.display, 'setxkbmap', ['de']);
    xrun(h.display, 'setxkbmap', ['de']);
    windowed = await launchFirefox({ display: client.display });
    const page = (await windowed.pages())[0] ?? (await windowed.newPage());
    const problems = watchConsole(page);
    await page.setViewport({ width: 960, height: 600 });
    await focusFirefoxWindow(page, client.display);
    await page.goto(h.server.url, { timeout: 15000 });
    await waitForColour(page, '#707070', { timeoutMs: 20000 });
    xev = await Xev.start(h.display);
    await page.mouse.click(480, 300); // the desktop takes the keyboard
    const from = xev.mark();
    const key = (...k) => xrun(client.display, 'xdotool', ['key', '--delay', '20', ...k]);
    key('y', 'z', 'shift+1');
    xrun(client.display, 'xdotool', ['keydown', 'ISO_Level3_Shift']);
    key('q', 'e');
    xrun(client.display, 'xdotool', ['keyup', 'ISO_Level3_Shift']);
    key('udiaeresis');
    await waitFor(() => xev.typed(from) === 'yz!@€ü', { timeoutMs: 10000, what: `"yz!@€ü" in xev (saw ${JSON.stringify(xev.typed(from))})` });
    const level3 = xev.presses(from).filter((p) => p.text === '@' || p.text === '€');
    assert.ok(level3.every((p) => p.state & 0x80), `@ and € typed with AltGr (Mod5) held: ${JSON.stringify(level3)}`);
    pageErrors.push(...problems);
  } finally {
    xev?.stop();
    xrun(h.display, 'setxkbmap', ['us']);
    await windowed?.close().catch(() => {});
    await client.child.stop();
  }
});

test('the microphone: Firefox\'s fake device is heard on the desktop\'s vnrit-mic source', { timeout: 60000 }, async () => {
  h.setRoot('#305030');
  const page = await openViewer('#305030');
  const pactl = (...args) => spawnSync('pactl', [`--server=${pulse.server}`, ...args], { encoding: 'utf8', timeout: 10000 }).stdout.trim();
  const sources = () => pactl('list', 'short', 'sources').split('\n').map((l) => l.split('\t')[1]);
  await waitFor(() => page.$eval('#tb-mic', (b) => !b.disabled), { timeoutMs: 20000, what: 'the microphone button to be enabled' });
  await page.click('#tb-mic');
  await waitFor(() => page.evaluate(() => window.vnrit.mic.state === 'on' || window.vnrit.mic.reason), { timeoutMs: 15000, what: 'the microphone to turn on' });
  assert.equal(await page.evaluate(() => window.vnrit.mic.state), 'on', await page.evaluate(() => window.vnrit.mic.reason));
  await waitFor(() => sources().includes('vnrit-mic'), { what: 'the vnrit-mic source' });
  // 2 s from the source: 20 ms windows louder than near-silence.
  const rec = spawn('parec', [`--server=${pulse.server}`, '--device=vnrit-mic', '--raw', '--format=s16le', '--rate=48000', '--channels=1', '--latency-msec=20']);
  const chunks = [];
  rec.stdout.on('data', (d) => chunks.push(d));
  try {
    await waitFor(() => chunks.reduce((a, c) => a + c.length, 0) >= 2 * 96000, { timeoutMs: 15000, what: '2 s recorded from vnrit-mic' });
  } finally {
    rec.kill();
  }
  const raw = Buffer.concat(chunks);
  let loud = 0;
  for (let at = 0; at + 1920 <= raw.length; at += 1920) {
    let sum = 0;
    for (let i = at; i < at + 1920; i += 2) sum += raw.readInt16LE(i) ** 2;
    if (Math.sqrt(sum / 960) > 300) loud += 1;
  }
  console.log(`# microphone: ${raw.length} bytes recorded, ${loud} loud 20 ms windows`);
  assert.ok(loud >= 10, `the fake microphone is heard (${loud} loud windows)`);
  await page.click('#tb-mic');
  await waitFor(() => !sources().includes('vnrit-mic'), { timeoutMs: 10000, what: 'vnrit-mic to be removed' });
  await page.close();
});

test('touch (Firefox with touch events on): in direct mode a tap clicks where it lands', { timeout: 60000 }, async () => {
  h.setRoot('#405060');
  // Desktop Firefox has touch events off unless a touch screen is found: a second, headless
  // Firefox with them on, so the other tests see the desktop defaults.
  const touchy = await launchFirefox({ prefs: { 'dom.w3c_touch_events.enabled': 1 } });
  try {
    const page = await newFirefoxPage(touchy);
    const problems = watchConsole(page);
    await page.goto(h.server.url, { timeout: 15000 });
    await waitForColour(page, '#405060', { timeoutMs: 20000 });
    xev = await Xev.start(h.display);
    await page.evaluate(() => {
      window.vnrit.pointer.touchMode = 'direct';
    });
    const from = xev.out.length;
    await page.touchscreen.tap(480, 300);
    await waitFor(() => buttonsSince(from).length >= 1, { timeoutMs: 10000, what: 'a tap to click in X' });
    assert.deepEqual(buttonsSince(from), [[1, ...expectedPixel(480, 300)]]);
    pageErrors.push(...problems);
  } finally {
    xev?.stop();
    await touchy.close().catch(() => {});
  }
});
