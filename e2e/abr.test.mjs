// vnrit e2e: adaptive bitrate and per-viewer link metrics against real Chromium.
//
// A moving screen (ImageMagick `animate` cycling plasma pictures) is streamed to one page.
// /metrics and /api/stats must show the viewer's RTT, loss and bandwidth estimate. Then the
// loopback link (which carries browser<->server traffic here: the server binds 127.0.0.1) is
// capped at 1 Mbit/s with `tc ... tbf` inside the private namespace e2e/run.sh made: the
// server's send rate must settle under the cap within 10 s, the page must keep decoding with
// no gap over 1 s once settled, and the rate must climb well above the cap again after the
// cap is lifted.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Harness, startServer, waitFor } from './lib/harness.mjs';
import { startPlasma } from './lib/plasma.mjs';
import { status } from './lib/page.mjs';
import { scrape } from './lib/metrics.mjs';

const CAP_KBPS = 1000;
const inNamespace = process.env.VNRIT_IN_NETNS === '1';

let h;
let page;

/** Runs `tc` (only ever inside the private namespace); throws on failure. */
function tc(args) {
  assert.ok(inNamespace, 'tc is only run inside the private namespace of e2e/run.sh');
  const r = spawnSync('tc', args, { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`tc ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

function uncap() {
  if (!inNamespace) return;
  spawnSync('tc', ['qdisc', 'del', 'dev', 'lo', 'root'], { stdio: 'ignore', timeout: 10000 });
}

before(async () => {
  h = await Harness.start('abr', { server: false });
  h.server = await startServer({ display: h.display, token: h.token, name: 'abr-vnrit', extraArgs: ['--adaptive-bitrate', '--min-bitrate', '600', '--log-level', process.env.ABR_LOG ?? 'info'] });
  h.animation = await startPlasma(h.display, 'abr-animate');
});

after(async () => {
  uncap();
  await page?.close().catch(() => {});
  await h?.animation?.stop();
  await h?.close();
});

/** Starts recording, in the page, the longest gap between decoded video frames. */
function watchDecoding(p) {
  return p.evaluate(() => {
    const w = window;
    w.__abr = { lastFrames: 0, lastChange: performance.now(), maxGap: 0, since: performance.now() };
    clearInterval(w.__abrTimer);
    w.__abrTimer = setInterval(async () => {
      const pc = w.vnrit?.session?.pc;
      if (!pc) return;
      const stats = await pc.getStats();
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
        const now = performance.now();
        if (s.framesDecoded !== w.__abr.lastFrames) {
          w.__abr.lastFrames = s.framesDecoded;
          w.__abr.lastChange = now;
        }
        w.__abr.maxGap = Math.max(w.__abr.maxGap, now - w.__abr.lastChange);
        w.__abr.inbound = { framesDecoded: s.framesDecoded, bytesReceived: s.bytesReceived, freezeCount: s.freezeCount, totalFreezesDuration: s.totalFreezesDuration };
      });
    }, 50);
  });
}

const decoding = (p) => p.evaluate(() => window.__abr);

/** The session's entry in /api/stats (the only one). */
async function session() {
  const s = await h.stats();
  return { ...s.sessions.find((x) => x.state === 'connected'), target: s.bitrate_kbps };
}

/** Server-side send rate to the viewer (kbit/s) over `ms`, from /api/stats bytes_sent. */
async function sendRate(ms) {
  const a = await session();
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = await session();
  return ((b.bytes_sent - a.bytes_sent) * 8) / (Date.now() - t0);
}

test('metrics show RTT, loss and the bandwidth estimate of a connected viewer', { timeout: 90000 }, async () => {
  page = await h.browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 20000, what: 'status connected' });
  const id = await waitFor(async () => (await session()).id, { timeoutMs: 5000, what: 'a connected session' });
  const metrics = await waitFor(
    async () => {
      const { value } = await scrape(h.server);
      const labels = { session: String(id) };
      const found = {
        rtt: value('vnrit_session_rtt_seconds', labels),
        loss: value('vnrit_session_loss_ratio', labels),
        bwe: value('vnrit_session_bwe_bps', labels),
      };
      return Object.values(found).every((v) => v !== undefined) && found;
    },
    { timeoutMs: 20000, intervalMs: 500, what: 'rtt, loss and bwe in /metrics for the session' },
  );
  console.log(`# metrics: ${JSON.stringify(metrics)}`);
  assert.ok(metrics.rtt > 0 && metrics.rtt < 1, `RTT ${metrics.rtt} s on loopback`);
  assert.ok(metrics.loss >= 0 && metrics.loss < 0.2, `loss ${metrics.loss} on loopback`);
  assert.ok(metrics.bwe >= 100_000, `bandwidth estimate ${metrics.bwe} bit/s on loopback`);
  const s = await session();
  assert.ok(s.rtt_ms > 0 && Math.abs(s.rtt_ms / 1000 - metrics.rtt) < 0.5, `/api/stats rtt_ms ${s.rtt_ms}`);
  assert.ok(s.bwe_kbps > 100 && s.loss >= 0, `/api/stats ${JSON.stringify(s)}`);
});

test('under a 1 Mbit/s cap the stream settles below it, keeps decoding, and recovers after', {
  timeout: 150000,
}, async () => {
  // Outside e2e/run.sh's namespace this fails (it must not shape the machine's own loopback):
  // a skip would count as a pass.
  assert.ok(inNamespace, 'run through e2e/run.sh: the cap is only put on the private namespace');
  assert.ok(page, 'the first test opened the page');
  // The moving screen must need more than the cap, or the cap proves nothing.
  const open = await waitFor(async () => {
    const r = await sendRate(2000);
    console.log(`#   uncapped sample ${Math.round(r)} kbit/s`);
    return r > 1.3 * CAP_KBPS && r;
  }, { timeoutMs: 20000, intervalMs: 0, what: `an uncapped send rate over ${1.3 * CAP_KBPS} kbit/s` });
  console.log(`# uncapped: ${Math.round(open)} kbit/s`);

  tc(['qdisc', 'add', 'dev', 'lo', 'root', 'tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '50ms']);
  const capped = Date.now();
  // Settled: the server sends under the cap (measured over 2 s windows) within 10 s.
  const settled = await waitFor(async () => {
    const r = await sendRate(2000);
    return r < CAP_KBPS && { rate: r, at: Date.now() - capped };
  }, { timeoutMs: 10000, intervalMs: 0, what: `the send rate to fall under ${CAP_KBPS} kbit/s` });
  console.log(`# settled at ${Math.round(settled.rate)} kbit/s, ${settled.at} ms after the cap`);
  assert.ok(settled.at <= 10000, `settled after ${settled.at} ms`);

  // Once settled: 15 s in which the rate stays under the cap and frames never stop for 1 s.
  await watchDecoding(page);
  const before = (await session());
  const rates = [];
  for (let i = 0; i < 5; i++) {
    rates.push(await sendRate(3000));
    const s = await h.stats();
    const v = s.sessions[0] ?? {};
    console.log(`#   t+${Date.now() - capped} ms: ${Math.round(rates.at(-1))} kbit/s, bwe ${v.bwe_kbps}, target ${s.bitrate_kbps} @ ${s.fps_target} fps, ` +
      `encoded ${s.frames_encoded} skipped ${s.frames_skipped} sent ${v.frames_sent} dropped ${v.frames_dropped} rtt ${v.rtt_ms} loss ${v.loss}`);
  }
  const d = await decoding(page);
  const q = spawnSync('tc', ['-s', 'qdisc', 'show', 'dev', 'lo'], { encoding: 'utf8', timeout: 10000 });
  console.log(`# link: ${q.stdout.replace(/\s+/g, ' ').trim()}`);
  const afterS = await session();
  console.log(`# capped rates ${rates.map(Math.round)} kbit/s, longest gap ${Math.round(d.maxGap)} ms, ` +
    `target ${afterS.target} kbit/s, bwe ${afterS.bwe_kbps} kbit/s, frames dropped ${afterS.frames_dropped - before.frames_dropped}`);
  assert.ok(rates.every((r) => r < CAP_KBPS), `send rates ${rates.map(Math.round)} kbit/s stay under ${CAP_KBPS}`);
  assert.ok(d.maxGap < 1000, `longest gap between decoded frames ${Math.round(d.maxGap)} ms`);
  assert.ok(afterS.frames_sent - before.frames_sent > 15 * 3, 'frames kept flowing (over 3 fps)');
  // The target comes down from --bitrate (4000) to the link. It may sit a little above the cap:
  // the encoder sends only about two thirds of its target on this scene, so the link never
  // fills, and the estimate creeps up while the sender uses most of it (1018 kbit/s in one
  // run of 12). The send rate, asserted above, is what must stay under the cap.
  assert.ok(afterS.target < 1.3 * CAP_KBPS, `encoder target ${afterS.target} kbit/s follows the link`);

  uncap();
  const lifted = Date.now();
  const recovered = await waitFor(async () => {
    const r = await sendRate(3000);
    const s = await h.stats();
    const v = s.sessions[0] ?? {};
    console.log(`#   t+${Date.now() - lifted} ms after lifting: ${Math.round(r)} kbit/s, bwe ${v.bwe_kbps}, target ${s.bitrate_kbps} @ ${s.fps_target} fps, rtt ${v.rtt_ms}`);
    return r > 1.2 * CAP_KBPS && { rate: r, at: Date.now() - lifted };
  }, { timeoutMs: 60000, intervalMs: 0, what: `the send rate to climb over ${1.2 * CAP_KBPS} kbit/s after the cap is lifted` });
  const end = await session();
  console.log(`# recovered to ${Math.round(recovered.rate)} kbit/s ${recovered.at} ms after lifting the cap (target ${end.target})`);
  const final = await decoding(page);
  assert.ok(final.inbound.framesDecoded > d.inbound.framesDecoded, 'still decoding');
});
