// vnrit benchmark: input latency over the data channel, from the page's key event to an X
// client (xev) receiving the key press. Prints median and p95 over 200 key presses.
//
// Run: e2e/run.sh e2e/input-latency.bench.mjs   (needs target/release/vnrit)
//
// Page side: the keydown's own timestamp (performance.timeOrigin + event.timeStamp, wall
// clock). X side: the moment this process reads xev's line for that KeyPress (xev runs
// line-buffered, so this adds the pipe and Node's event loop: an upper bound).

import { test, before, after } from 'node:test';
import { spawn } from 'node:child_process';
import { Harness, waitFor } from './lib/harness.mjs';

const PRESSES = 200;

let h;
let xev;
const arrivals = [];
let buffer = '';

before(async () => {
  h = await Harness.start('input-latency');
  xev = spawn('stdbuf', ['-oL', 'xev', '-display', h.display, '-geometry', '1280x720+0+0', '-event', 'keyboard'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  xev.stdout.on('data', (d) => {
    const now = Date.now() + (performance.now() % 1); // sub-ms part from the monotonic clock
    buffer += d;
    let i;
    while ((i = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, i);
      buffer = buffer.slice(i + 1);
      if (line.startsWith('KeyPress event')) arrivals.push(now);
    }
  });
  await waitFor(() => xev.pid && xev.exitCode === null, { timeoutMs: 5000, what: 'xev' });
});

after(async () => {
  xev?.kill('SIGTERM');
  await h?.close();
});

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

test(`input latency over the data channel, ${PRESSES} key presses`, { timeout: 120000 }, async () => {
  const page = await h.browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.addInitScript(() => {
    window.__keyTimes = [];
    addEventListener('keydown', (e) => window.__keyTimes.push(performance.timeOrigin + e.timeStamp), true);
  });
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => vnrit.session?.input?.readyState === 'open' && document.getElementById('screen').videoWidth > 0), {
    timeoutMs: 15000,
    what: 'video and the input data channel',
  });
  await page.mouse.click(640, 360); // focus: keys go to the desktop, the pointer over xev
  await page.evaluate(() => (window.__keyTimes = []));
  const start = arrivals.length;
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < PRESSES; i++) {
    await page.keyboard.press(letters[i % letters.length]);
    await waitFor(() => arrivals.length - start > i, { timeoutMs: 5000, intervalMs: 2, what: `key press ${i + 1} at xev` });
  }
  const sent = await page.evaluate(() => window.__keyTimes);
  const got = arrivals.slice(start);
  const n = Math.min(sent.length, got.length);
  const lat = [];
  for (let i = 0; i < n; i++) lat.push(got[i] - sent[i]);
  lat.sort((a, b) => a - b);
  const fmt = (v) => v.toFixed(2).padStart(8);
  console.log('path          events   median ms   p95 ms   min ms   max ms');
  console.log(`data channel  ${String(n).padStart(6)}  ${fmt(quantile(lat, 0.5))}  ${fmt(quantile(lat, 0.95))} ${fmt(lat[0])} ${fmt(lat[n - 1])}`);
  await page.close();
});
