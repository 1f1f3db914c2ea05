// What the moving scene costs vnrit with one plain viewer (issue 2's moving target), without
// bench/run.sh's latency probe in the page: starts Xvfb 1920x1080, vnrit --framerate 30,
// examples/timecode (the moving scene) and one Chromium page, then prints, per window of
// MV_WINDOW_S seconds (default 10; MV_WINDOWS windows, default 3, after 6 s of warm-up),
// vnrit's CPU (schedstat run time of all threads) in % of a core, the encoded frame rate and
// CPU ms per encoded frame. VNRIT_ARGS adds server flags, VNRIT_BIN picks another binary (to
// compare two builds side by side). Needs root; run it in a private namespace:
//   unshare -n -- bash -c 'ip link set lo up; node bench/moving-probe.mjs'
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Child, ROOT, launchBrowser, startServer, startXvfb } from '../e2e/lib/harness.mjs';
import { runNs } from './lib/threads.mjs';

const WINDOW_S = Number(process.env.MV_WINDOW_S || 10);
const WINDOWS = Number(process.env.MV_WINDOWS || 3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const token = randomBytes(8).toString('hex');
const xvfb = await startXvfb('mv-xvfb', { screen: '1920x1080x24' });
const server = await startServer({
  display: xvfb.display,
  token,
  name: 'mv-vnrit',
  extraArgs: ['--framerate', '30', ...(process.env.VNRIT_ARGS || '').split(/\s+/).filter(Boolean)],
});
const scene = new Child('mv-timecode', join(ROOT, 'target/release/examples/timecode'), ['--display', xvfb.display]);
const browser = await launchBrowser();
const pid = server.child.proc.pid;

async function framesEncoded() {
  const res = await fetch(`${server.base}/api/stats?token=${token}`, { cache: 'no-store' });
  if (res.status !== 200) throw new Error(`/api/stats answered ${res.status}`);
  return (await res.json()).frames_encoded;
}

try {
  const page = await (await browser.newContext()).newPage();
  await page.goto(server.url);
  await sleep(6000);
  for (let i = 0; i < WINDOWS; i++) {
    const c0 = runNs(pid), f0 = await framesEncoded(), t0 = Date.now();
    await sleep(WINDOW_S * 1000);
    const c1 = runNs(pid), f1 = await framesEncoded(), t1 = Date.now();
    const cpuMs = (c1 - c0) / 1e6;
    console.log(
      `moving, 1 viewer: cpu ${((cpuMs / (t1 - t0)) * 100).toFixed(1)} %, ` +
        `${((f1 - f0) / ((t1 - t0) / 1000)).toFixed(1)} fps encoded, ${(cpuMs / Math.max(1, f1 - f0)).toFixed(2)} ms per frame`,
    );
  }
} finally {
  await browser.close();
  await scene.stop();
  await server.child.stop();
  await xvfb.child.stop();
}
