// vnrit e2e: a viewer far slower than the others is served alone (issue 7).
//
// Two real Chromium viewers watch a moving screen (the plasma scene, several Mbit/s). The fast
// one runs in the test's namespace and reaches vnrit over `lo`. The slow one runs in a second
// network namespace made here, joined to the test's by a veth pair (10.214.0.1 here, 10.214.0.2
// there); `tc tbf` on this side's end caps only what flows to the slow browser at 1 Mbit/s.
// With the cap on, the encoder target must stay with the fast viewer (well above the cap), the
// fast page must keep its frame rate, and the slow viewer must be served by dropping frames
// for it alone: under the cap, still decoding, resuming on keyframes. Once the cap is lifted
// the slow page's frame rate must come back.
//
// Measured: OpenH264 codes every picture of the plasma scene as an IDR (each one is a scene
// change), so here a viewer that fell behind resumes on the next picture once its modelled
// queue is under 1 s; the keyframe counters are printed (`idr`, `requests`) to show it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness, launchBrowser, startServer, waitFor } from './lib/harness.mjs';
import { startPlasma, PLASMA_FPS } from './lib/plasma.mjs';
import { sideNamespace } from './lib/net.mjs';
import { status } from './lib/page.mjs';

const CAP_KBPS = 1000;
const inNamespace = process.env.VNRIT_IN_NETNS === '1';
const HERE = '10.214.0.1';
const THERE = '10.214.0.2';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let h;
/** The slow browser's namespace (`sideNamespace`). */
let side;
let slowBrowser;
let tmp;
let fast;
let slow;
let fastId;
let slowId;
let baselineFps;

/** Runs `tc` (only ever inside the private namespace of e2e/run.sh); throws on failure. */
function run(cmd, args) {
  assert.ok(inNamespace, `${cmd} is only run inside the private namespace of e2e/run.sh`);
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

const cap = () => run('tc', ['qdisc', 'add', 'dev', side.veth, 'root', 'tbf', 'rate', `${CAP_KBPS}kbit`, 'burst', '32kbit', 'latency', '50ms']);
const uncap = () => side && spawnSync('tc', ['qdisc', 'del', 'dev', side.veth, 'root'], { stdio: 'ignore', timeout: 10000 });

before(async () => {
  // The slow namespace first: vnrit's wildcard bind must find 10.214.0.1 among its interfaces.
  side = sideNamespace({ tag: 'sl', here: HERE, there: THERE });

  h = await Harness.start('slowview', { server: false });
  const server = await startServer({ display: h.display, token: h.token, name: 'slowview-vnrit', bind: '0.0.0.0', extraArgs: ['--log-level', process.env.SLOW_LOG ?? 'info'] });
  h.server = { ...server, base: `http://127.0.0.1:${server.port}` };
  h.animation = await startPlasma(h.display, 'slowview-animate');

  tmp = mkdtempSync(join(tmpdir(), 'vnrit-slowview-'));
  const wrapper = join(tmp, 'chromium-slow.sh');
  writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${side.netns} ${process.env.CHROMIUM || '/usr/bin/chromium'} "$@"\n`);
  chmodSync(wrapper, 0o755);
  slowBrowser = await launchBrowser({ executablePath: wrapper });
});

after(async () => {
  uncap();
  await fast?.close().catch(() => {});
  await slow?.close().catch(() => {});
  if (slowBrowser) await Promise.race([slowBrowser.close().catch(() => {}), sleep(10000)]);
  await h?.animation?.stop();
  await h?.close();
  side?.remove();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/** The page's inbound video counters from its RTCPeerConnection (null before it has any). */
function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.vnrit?.session?.pc;
    if (!pc) return null;
    let out = null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        out = {
          framesDecoded: s.framesDecoded ?? 0,
          keyFramesDecoded: s.keyFramesDecoded ?? 0,
          bytesReceived: s.bytesReceived ?? 0,
          packetsReceived: s.packetsReceived ?? 0,
          packetsLost: s.packetsLost ?? 0,
          nackCount: s.nackCount ?? 0,
        };
      }
    });
    return out;
  });
}

/** One session's entry in /api/stats plus the encoder target. */
async function session(id) {
  const s = await h.stats();
  const v = s.sessions.find((x) => x.id === id);
  assert.ok(v, `session ${id} in /api/stats`);
  return { ...v, target: s.bitrate_kbps };
}

/**
 * Watches both pages and both sessions for `ms`: decoded frame rates, server send rates
 * (kbit/s from bytes_sent) and the deltas of the drop and keyframe counters.
 */
async function measure(ms) {
  const pages = [fast, slow].filter(Boolean);
  const a = { pages: await Promise.all(pages.map(inbound)), s: await h.stats() };
  const t0 = Date.now();
  const targets = [];
  // Sample the encoder target once a second so a dip in the middle is seen too.
  while (Date.now() - t0 < ms) {
    await sleep(Math.min(1000, ms - (Date.now() - t0)));
    targets.push((await h.stats()).bitrate_kbps);
  }
  const b = { pages: await Promise.all(pages.map(inbound)), s: await h.stats() };
  const secs = (Date.now() - t0) / 1000;
  const per = (id) => {
    const x = a.s.sessions.find((v) => v.id === id);
    const y = b.s.sessions.find((v) => v.id === id);
    if (!x || !y) return null;
    return {
      kbps: ((y.bytes_sent - x.bytes_sent) * 8) / secs / 1000,
      dropped: y.frames_dropped - x.frames_dropped,
      sent: y.frames_sent - x.frames_sent,
      keyframeRequests: y.keyframe_requests - x.keyframe_requests,
      bwe: y.bwe_kbps,
    };
  };
  const fps = (i) => (b.pages[i] && a.pages[i] ? (b.pages[i].framesDecoded - a.pages[i].framesDecoded) / secs : null);
  const keys = (i) => (b.pages[i] && a.pages[i] ? b.pages[i].keyFramesDecoded - a.pages[i].keyFramesDecoded : null);
  // What the page itself saw of its video packets: received, lost (by sequence gaps, net of
  // late arrivals) and NACKs sent; tells a real loss from one only the estimator saw.
  const rx = (i) => {
    if (!b.pages[i] || !a.pages[i]) return null;
    const d = (k) => b.pages[i][k] - a.pages[i][k];
    return { received: d('packetsReceived'), lost: d('packetsLost'), nacks: d('nackCount') };
  };
  return {
    secs,
    targets,
    // The shared encoder: frames, of which IDR, and keyframe requests (PLI/FIR and shapers).
    encoded: b.s.frames_encoded - a.s.frames_encoded,
    idr: b.s.keyframes - a.s.keyframes,
    requests: b.s.keyframe_requests - a.s.keyframe_requests,
    fast: { fps: fps(0), keyFrames: keys(0), ...per(fastId), page: rx(0) },
    slow: slow ? { fps: fps(1), keyFrames: keys(1), ...per(slowId), page: rx(1) } : null,
  };
}

/**
 * Packets dropped on the veth pair (`ip -s -j link`): this side's transmit drops and the slow
 * side's receive drops. With the UDP errors below, it places a loss the estimator saw.
 */
function linkDrops() {
  const stats = (args) => {
    const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10000 });
    try {
      return JSON.parse(r.stdout)[0].stats64;
    } catch {
      return null;
    }
  };
  const here = stats(['-s', '-j', 'link', 'show', 'dev', side.veth]);
  const there = stats(['-n', side.netns, '-s', '-j', 'link', 'show', 'dev', side.peer]);
  return { txDropped: here?.tx?.dropped ?? null, peerRxDropped: there?.rx?.dropped ?? null };
}

/**
 * The slow browser's UDP receive errors (its namespace's /proc/net/snmp): datagrams the kernel
 * dropped because the browser did not read its socket fast enough. Shows whether a loss the
 * estimator saw happened on the link or in the receiving browser.
 */
function slowUdpErrors() {
  const r = spawnSync('ip', ['netns', 'exec', side.netns, 'cat', '/proc/net/snmp'], { encoding: 'utf8', timeout: 10000 });
  const rows = (r.stdout ?? '').split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.trim().split(/\s+/));
  if (rows.length < 2) return null;
  const at = (name) => Number(rows[1][rows[0].indexOf(name)]);
  return { inErrors: at('InErrors'), rcvbufErrors: at('RcvbufErrors') };
}

const fmt = (o) => JSON.stringify(o, (_, v) => (typeof v === 'number' ? Math.round(v * 10) / 10 : v));

/** Opens `url` in `browser` and waits until the page says connected and decodes frames. */
async function openViewer(browser, url, known) {
  const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
  await page.goto(url, { timeout: 15000 });
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 20000, what: `${url}: status connected` });
  await waitFor(async () => (await inbound(page))?.framesDecoded > 0, { timeoutMs: 15000, what: `${url}: a decoded frame` });
  const id = await waitFor(
    async () => (await h.stats()).sessions.find((s) => s.state === 'connected' && !known.includes(s.id))?.id,
    { timeoutMs: 5000, what: 'the new connected session in /api/stats' },
  );
  return { page, id };
}

const opts = { timeout: 120000 };

test('a viewer on a 1 Mbit/s link is served alone; the fast viewer keeps its picture', opts, async () => {
  // The fast viewer alone: its frame rate and the stream's rate, before anyone slow joins.
  ({ page: fast, id: fastId } = await openViewer(h.browser, `http://127.0.0.1:${h.server.port}/?token=${h.token}`, []));
  const alone = await waitFor(async () => {
    const m = await measure(4000);
    console.log(`#   fast alone: ${fmt(m)}`);
    return m.fast.kbps > 1.5 * CAP_KBPS && m.fast.fps >= PLASMA_FPS * 0.6 && m;
  }, { timeoutMs: 40000, intervalMs: 0, what: `the fast viewer alone over ${1.5 * CAP_KBPS} kbit/s and ${PLASMA_FPS * 0.6} fps` });
  baselineFps = alone.fast.fps;
  console.log(`# fast viewer alone: ${alone.fast.fps.toFixed(2)} fps, ${Math.round(alone.fast.kbps)} kbit/s, target ${alone.targets.at(-1)} kbit/s`);

  // The slow viewer joins over the veth (uncapped for now): both decode.
  ({ page: slow, id: slowId } = await openViewer(slowBrowser, `http://${HERE}:${h.server.port}/?token=${h.token}`, [fastId]));
  const both = await measure(4000);
  console.log(`# both uncapped: ${fmt(both)}`);
  assert.ok(both.fast.fps > 0 && both.slow.fps > 0, `both pages decode: ${fmt(both)}`);

  // Cap the slow link, let the estimators settle, then watch for 12 s.
  cap();
  const capped = Date.now();
  await sleep(10000);
  const s0 = await session(slowId);
  const m = await measure(12000);
  const s1 = await session(slowId);
  const q = spawnSync('tc', ['-s', 'qdisc', 'show', 'dev', side.veth], { encoding: 'utf8', timeout: 10000 });
  console.log(`# capped (${Date.now() - capped} ms after the cap): ${fmt(m)}`);
  console.log(`# slow link: ${q.stdout.replace(/\s+/g, ' ').trim()}; slow browser UDP ${fmt(slowUdpErrors())}`);
  console.log(`# slow session: dropped ${s0.frames_dropped} -> ${s1.frames_dropped}, keyframe requests ${s0.keyframe_requests} -> ${s1.keyframe_requests}, bwe ${s1.bwe_kbps} kbit/s`);

  // The encoder follows the fast viewer, not the slow link.
  const lowTarget = Math.min(...m.targets);
  assert.ok(lowTarget > 1.5 * CAP_KBPS, `encoder target stays above ${1.5 * CAP_KBPS} kbit/s (lowest ${lowTarget}, samples ${m.targets})`);
  // The fast page keeps its frame rate.
  assert.ok(m.fast.fps >= 0.8 * baselineFps, `fast page ${m.fast.fps.toFixed(2)} fps, alone it had ${baselineFps.toFixed(2)}`);
  // The slow viewer: frames dropped for it alone, sent under the cap, still decoding, on keyframes.
  assert.ok(m.slow.dropped > 0, `frames dropped for the slow viewer: ${m.slow.dropped}`);
  assert.equal(m.fast.dropped, 0, 'no frames dropped for the fast viewer');
  assert.ok(m.slow.kbps < CAP_KBPS, `send rate to the slow viewer ${Math.round(m.slow.kbps)} kbit/s under ${CAP_KBPS}`);
  assert.ok(m.slow.fps > 0, `the slow page still decodes (${m.slow.fps.toFixed(2)} fps)`);
  // (With this scene every picture is an IDR, so this holds by itself; see the header.)
  assert.ok(m.slow.keyFrames > 0 || m.slow.keyframeRequests > 0, `the slow page resumes on keyframes: ${m.slow.keyFrames} decoded, ${m.slow.keyframeRequests} requested`);
});

// This failed in 4 of 8 runs before the estimator counted short bursts in which no packet met
// a queue as a clear link: a viewer the shaper serves sends one short burst every few hundred
// ms, too short to show a standing queue, and its estimate sat near the capped rate.
test('after the cap is lifted the slow page gets its frame rate back', opts, async () => {
  assert.ok(slow && baselineFps, 'the first test opened both pages');
  uncap();
  const lifted = Date.now();
  const q = spawnSync('tc', ['qdisc', 'show', 'dev', side.veth], { encoding: 'utf8', timeout: 10000 });
  console.log(`# slow link after lifting: ${q.stdout.replace(/\s+/g, ' ').trim()}; veth ${fmt(linkDrops())}`);
  assert.doesNotMatch(q.stdout, /tbf/, 'the cap is gone');
  const back = await waitFor(async () => {
    const r = await measure(4000);
    console.log(`#   t+${Date.now() - lifted} ms after lifting: ${fmt(r)} slow UDP ${fmt(slowUdpErrors())} veth ${fmt(linkDrops())}`);
    return r.slow.fps >= 0.8 * baselineFps && r.slow.dropped === 0 && r;
  }, { timeoutMs: 60000, intervalMs: 0, what: `the slow page back to ${(0.8 * baselineFps).toFixed(2)} fps with no drops` });
  console.log(`# recovered ${Date.now() - lifted} ms after lifting the cap: slow ${back.slow.fps.toFixed(2)} fps, fast ${back.fast.fps.toFixed(2)} fps, target ${back.targets.at(-1)} kbit/s`);
});
