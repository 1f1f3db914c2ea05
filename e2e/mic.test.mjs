// vnrit e2e: the viewer's microphone. Chromium's fake microphone (which beeps) is turned on
// with the page's button; on a private PulseAudio the source `vnrit-mic` appears, becomes the
// default source, and `parec` from it records the beep (its dominant frequency is checked).
// Turning it off removes the source and restores the default. A view-only page, a page over
// plain HTTP on a non-local address, and a page of a server without PulseAudio get a disabled
// button that says why.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { Harness, launchBrowser, startServer, waitFor } from './lib/harness.mjs';
import { Pulse } from './lib/pulse.mjs';
import { VETH_ADDR } from './lib/net.mjs';

/** Chromium's fake capture device: a 20 ms beep of this frequency twice a second. */
const BEEP_HZ = 400;
const FAKE_MIC = ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'];

let h;
let pulse;

before(async () => {
  pulse = new Pulse('mic');
  await pulse.start();
  process.env.PULSE_SERVER = pulse.server;
  h = await Harness.start('mic', { server: false, browser: false });
  // --control shared: both full-token pages may control, so the second page's refusal below
  // is the one-microphone rule, not control (with exclusive control only the controller may
  // turn a microphone on at all).
  h.server = await startServer({ display: h.display, token: h.token, name: 'mic-vnrit', extraArgs: ['--view-token', `${h.token}-view`, '--control', 'shared'] });
  h.browser = await launchBrowser({ extraArgs: FAKE_MIC });
});

after(async () => {
  await h?.close();
  await pulse?.close();
});

function pactl(...args) {
  const r = spawnSync('pactl', [`--server=${pulse.server}`, ...args], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`pactl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

const sources = () => pactl('list', 'short', 'sources').split('\n').map((l) => l.split('\t')[1]).filter(Boolean);

/** Records `seconds` of 48 kHz mono S16 from `device`. */
async function record(device, seconds) {
  const child = spawn('parec', [`--server=${pulse.server}`, `--device=${device}`, '--raw', '--format=s16le', '--rate=48000', '--channels=1', '--latency-msec=20']);
  const chunks = [];
  let bytes = 0;
  child.stdout.on('data', (d) => {
    chunks.push(d);
    bytes += d.length;
  });
  try {
    await waitFor(() => bytes >= seconds * 96000, { timeoutMs: seconds * 1000 + 10000, what: `${seconds} s recorded from ${device}` });
  } finally {
    child.kill();
  }
  const all = Buffer.concat(chunks);
  return Int16Array.from({ length: all.length >> 1 }, (_, i) => all.readInt16LE(i * 2));
}

/** The frequency (10 Hz steps, 100-4000 Hz) with the most energy over the loud 20 ms windows. */
function dominant(samples) {
  const win = 960;
  const power = new Map();
  let loud = 0;
  for (let start = 0; start + win <= samples.length; start += win) {
    const w = samples.subarray(start, start + win);
    const rms = Math.sqrt(w.reduce((a, s) => a + s * s, 0) / win);
    if (rms < 300) continue;
    loud += 1;
    for (let f = 100; f <= 4000; f += 10) {
      // Goertzel
      const k = (2 * Math.cos((2 * Math.PI * f) / 48000));
      let s1 = 0;
      let s2 = 0;
      for (let i = 0; i < win; i += 1) {
        const s0 = w[i] + k * s1 - s2;
        s2 = s1;
        s1 = s0;
      }
      power.set(f, (power.get(f) ?? 0) + s1 * s1 + s2 * s2 - k * s1 * s2);
    }
  }
  let best = 0;
  let bestPower = -1;
  for (const [f, p] of power) {
    if (p > bestPower) {
      best = f;
      bestPower = p;
    }
  }
  return { hz: best, loudWindows: loud };
}

test('the page\'s microphone is heard on vnrit-mic, the default source while on, removed when off', { timeout: 90000 }, async () => {
  const before = pactl('get-default-source');
  assert.ok(!sources().includes('vnrit-mic'), 'no vnrit-mic before');
  const page = await h.browser.newPage();
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => !document.getElementById('tb-mic').disabled), { timeoutMs: 20000, what: 'the microphone button to be enabled' });

  await page.click('#tb-mic');
  await waitFor(() => page.evaluate(() => window.vnrit.mic.state === 'on' || window.vnrit.mic.reason), { timeoutMs: 15000, what: 'the microphone to turn on' });
  assert.equal(await page.evaluate(() => window.vnrit.mic.state), 'on', await page.evaluate(() => window.vnrit.mic.reason));
  assert.equal(await page.getAttribute('#tb-mic', 'aria-pressed'), 'true');
  await waitFor(() => sources().includes('vnrit-mic'), { what: 'the vnrit-mic source' });
  assert.equal(pactl('get-default-source'), 'vnrit-mic');

  const samples = await record('vnrit-mic', 3);
  const heard = dominant(samples);
  console.log(`# recorded ${samples.length} samples; dominant ${heard.hz} Hz over ${heard.loudWindows} loud 20 ms windows`);
  assert.ok(heard.loudWindows >= 3, `the beep is heard (${heard.loudWindows} loud windows)`);
  assert.ok(Math.abs(heard.hz - BEEP_HZ) <= 20, `dominant ${heard.hz} Hz, expected ${BEEP_HZ}`);

  // A second viewer cannot take the microphone meanwhile.
  const other = await h.browser.newPage();
  await other.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => other.evaluate(() => !document.getElementById('tb-mic').disabled), { timeoutMs: 20000, what: 'the second page\'s button' });
  await other.click('#tb-mic');
  const refused = await waitFor(() => other.evaluate(() => window.vnrit.mic.state === 'off' && window.vnrit.mic.reason), { timeoutMs: 15000, what: 'the second microphone to be refused' });
  assert.match(refused, /another viewer's microphone is on/);
  await other.close();

  await page.click('#tb-mic');
  await waitFor(() => !sources().includes('vnrit-mic'), { timeoutMs: 10000, what: 'vnrit-mic to be removed' });
  assert.equal(pactl('get-default-source'), before, 'the default source is back');
  assert.equal(await page.evaluate(() => window.vnrit.mic.state), 'off');

  // On again, then the page goes away: released with the viewer.
  await page.click('#tb-mic');
  await waitFor(() => sources().includes('vnrit-mic'), { what: 'vnrit-mic again' });
  await page.close();
  await waitFor(() => !sources().includes('vnrit-mic'), { timeoutMs: 15000, what: 'vnrit-mic to go with the viewer' });
});

test('view-only pages, plain-HTTP pages and servers without PulseAudio get a disabled button that says why', { timeout: 60000 }, async () => {
  const view = await h.browser.newPage();
  await view.goto(`${h.server.base}/?token=${h.token}-view`, { timeout: 15000 });
  const viewTitle = await waitFor(() => view.evaluate(() => window.vnrit.session && window.vnrit.mic.reason !== 'connecting…' && document.getElementById('tb-mic').title), { timeoutMs: 20000, what: 'the view-only hello' });
  assert.match(viewTitle, /view-only/);
  assert.equal(await view.evaluate(() => document.getElementById('tb-mic').disabled), true);
  await view.close();

  // Over plain HTTP on a non-local address the browser gives no microphone at all.
  const http = await startServer({ display: h.display, token: h.token, name: 'mic-vnrit-http', bind: VETH_ADDR });
  try {
    const page = await h.browser.newPage();
    await page.goto(http.url, { timeout: 15000 });
    const title = await waitFor(() => page.evaluate(() => window.vnrit.session && window.vnrit.mic.reason !== 'connecting…' && document.getElementById('tb-mic').title), { timeoutMs: 20000, what: 'the hello over plain HTTP' });
    assert.match(title, /needs a secure page: open vnrit over HTTPS/);
    assert.equal(await page.evaluate(() => document.getElementById('tb-mic').disabled), true);
    await page.close();
  } finally {
    await http.child.stop();
  }

  process.env.PULSE_SERVER = 'unix:/nonexistent/vnrit-e2e-no-pulse';
  const bare = await startServer({ display: h.display, token: h.token, name: 'mic-vnrit-nopulse' });
  process.env.PULSE_SERVER = pulse.server;
  try {
    const page = await h.browser.newPage();
    await page.goto(bare.url, { timeout: 15000 });
    const title = await waitFor(() => page.evaluate(() => window.vnrit.session && window.vnrit.mic.reason !== 'connecting…' && document.getElementById('tb-mic').title), { timeoutMs: 20000, what: 'the hello of a server without PulseAudio' });
    assert.match(title, /no PulseAudio/);
    assert.equal(await page.evaluate(() => document.getElementById('tb-mic').disabled), true);
    // Nothing else breaks: the page connects and plays.
    await waitFor(() => page.evaluate(() => document.getElementById('screen').videoWidth > 0), { timeoutMs: 20000, what: 'video without PulseAudio' });
    await page.close();
  } finally {
    await bare.child.stop();
  }
});
