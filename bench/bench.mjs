// vnrit bench (issue 2): server CPU share and memory with 1 and 3 headless Chromium viewers on
// a still and a moving 1920x1080 desktop, the frame rate the browsers decode, and
// glass-to-glass latency read back from a time code (examples/timecode.rs + page-probe.js),
// in a row of its own: only there do the pages read the time code back. A last row does the
// same with one headless Firefox ESR viewer (VP8: Debian's Firefox has no H.264); BENCH_FIREFOX=0
// leaves it out.
// Run through bench/run.sh (private network namespace). Prints a table of medians and writes
// bench/results.md. BENCH_WINDOWS (default 3) and BENCH_WINDOW_S (default 10) set the sampling;
// still rows use BENCH_STILL_WINDOW_S (default 30) because their CPU is a few 10 ms ticks.

import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Child, ROOT, launchBrowser, startServer, startXvfb, waitFor } from '../e2e/lib/harness.mjs';
import { statTicks, threads } from './lib/threads.mjs';

const WINDOWS = Number(process.env.BENCH_WINDOWS || 3);
const WINDOW_S = Number(process.env.BENCH_WINDOW_S || 10);
const STILL_WINDOW_S = Number(process.env.BENCH_STILL_WINDOW_S || 30);
const WARMUP_S = 4;
const SCREEN = '1920x1080x24';
const FRAMERATE = 30;
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
const TIMECODE_BIN = join(ROOT, 'target', 'release', 'examples', 'timecode');
const PROBE = readFileSync(join(ROOT, 'bench', 'page-probe.js'), 'utf8');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const quantile = (xs, q) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
};
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** utime+stime of a process (all its threads), in clock ticks. */
function procTicks(pid) {
  return statTicks(readFileSync(`/proc/${pid}/stat`, 'utf8')).ticks;
}

/** VmRSS and VmHWM of `pid`, in MiB. */
function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, hwm: kb('VmHWM') / 1024 };
}

/** Busy and total jiffies of the whole machine (/proc/stat, all cores). */
function machineTicks() {
  const v = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - v[3] - v[4], total };
}

class Bench {
  constructor() {
    this.token = randomBytes(12).toString('hex');
    this.scene = null;
    this.contexts = [];
    this.pages = [];
    this.phases = [];
    this.threads = new Map(); // phase name -> Map(thread name -> % of a core)
  }

  async start() {
    this.xvfb = await startXvfb('bench-xvfb', { screen: SCREEN });
    this.server = await startServer({
      display: this.xvfb.display,
      token: this.token,
      name: 'bench-vnrit',
      // VNRIT_ARGS adds server flags, e.g. VNRIT_ARGS=--adaptive-bitrate to compare policies.
      extraArgs: ['--framerate', String(FRAMERATE), ...(process.env.VNRIT_ARGS || '').split(/\s+/).filter(Boolean)],
    });
    this.browser = await launchBrowser();
  }

  async stats() {
    const res = await fetch(`${this.server.base}/api/stats?token=${this.token}`, { cache: 'no-store' });
    if (res.status !== 200) throw new Error(`/api/stats answered ${res.status}`);
    return res.json();
  }

  /** Replaces the scene program (still: one time code then nothing; moving: the full scene). */
  async setScene(kind) {
    if (this.scene) await this.scene.stop();
    const args = kind === 'still' ? ['--still'] : [];
    this.scene = new Child(`bench-timecode-${kind}`, TIMECODE_BIN, ['--display', this.xvfb.display, ...args]);
    await sleep(500);
    if (this.scene.exited) throw new Error(`timecode exited ${JSON.stringify(this.scene.exited)}; see ${this.scene.logPath}`);
  }

  async setViewers(n) {
    while (this.pages.length > n) {
      await this.contexts.pop().close();
      this.pages.pop();
    }
    while (this.pages.length < n) {
      const ctx = await this.browser.newContext();
      await ctx.addInitScript(PROBE);
      const page = await ctx.newPage();
      await page.goto(this.server.url, { timeout: 20000 });
      this.contexts.push(ctx);
      this.pages.push(page);
      await waitFor(() => page.evaluate(() => window.__framesDecoded()), {
        timeoutMs: 30000,
        intervalMs: 200,
        what: `viewer ${this.pages.length} to decode a frame`,
      });
    }
    await waitFor(async () => (await this.stats()).viewers === n, { timeoutMs: 10000, what: `${n} viewers in /api/stats` });
  }

  /**
   * One Firefox ESR viewer (headless, e2e/lib/firefox.mjs) with the probe, in place of the
   * Chromium ones: Debian's Firefox takes VP8 only, so this row is vnrit's VP8 path.
   */
  async addFirefoxViewer() {
    const { launchFirefox } = await import('../e2e/lib/firefox.mjs');
    this.firefox ??= await launchFirefox();
    const page = await this.firefox.newPage();
    await page.setViewport({ width: 1280, height: 720 });
    await page.evaluateOnNewDocument(PROBE);
    await page.goto(this.server.url, { timeout: 20000 });
    this.contexts.push({ close: () => page.close() });
    this.pages.push(page);
    await waitFor(() => page.evaluate(() => window.__framesDecoded()), {
      timeoutMs: 30000,
      intervalMs: 200,
      what: 'the Firefox viewer to decode a frame',
    });
    await waitFor(async () => (await this.stats()).viewers === this.pages.length, { timeoutMs: 10000, what: 'the Firefox viewer in /api/stats' });
  }

  videoStats() {
    return Promise.all(this.pages.map((p) => p.evaluate(() => window.__videoStats())));
  }

  /** CPU ticks of Chromium: every descendant of this node process except the ones we know. */
  chromiumTicks() {
    const parent = new Map();
    const ticks = new Map();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const line = readFileSync(`/proc/${d}/stat`, 'utf8');
        const fields = line.slice(line.lastIndexOf(')') + 2).split(' ');
        parent.set(d, fields[1]);
        ticks.set(d, Number(fields[11]) + Number(fields[12]));
      } catch {
        // gone
      }
    }
    const skip = new Set([this.server.child.proc.pid, this.xvfb.child.proc.pid, this.scene.proc.pid].map(String));
    const me = String(process.pid);
    let sum = 0;
    for (const [pid, t] of ticks) {
      if (skip.has(pid)) continue;
      for (let p = parent.get(pid), hops = 0; p && hops < 16; p = parent.get(p), hops++) {
        if (p === me) {
          sum += t;
          break;
        }
      }
    }
    return sum;
  }

  /**
   * One row: WINDOWS windows after WARMUP_S. With `probe`, the pages read every frame's time
   * code back (the latency row); without it they only show the video, as a user's page does.
   */
  async measure(name, { probe = false } = {}) {
    const vnrit = this.server.child.proc.pid;
    const xvfb = this.xvfb.child.proc.pid;
    const scene = this.scene.proc.pid;
    await sleep(WARMUP_S * 1000);
    await Promise.all(
      this.pages.map((p) =>
        p.evaluate((on) => {
          window.__bench.reset();
          window.__bench.probing = on;
        }, probe),
      ),
    );
    const windows = [];
    const perThread = new Map();
    const load = [loadavg()[0]];
    for (let w = 0; w < WINDOWS; w++) {
      const t0 = performance.now();
      const c0 = { vnrit: procTicks(vnrit), xvfb: procTicks(xvfb), scene: procTicks(scene), chromium: this.chromiumTicks(), m: machineTicks() };
      const th0 = threads(vnrit);
      const s0 = await this.stats();
      const v0 = await this.videoStats();
      await sleep((name.startsWith('still') ? STILL_WINDOW_S : WINDOW_S) * 1000);
      const v1 = await this.videoStats();
      const s1 = await this.stats();
      const th1 = threads(vnrit);
      const c1 = { vnrit: procTicks(vnrit), xvfb: procTicks(xvfb), scene: procTicks(scene), chromium: this.chromiumTicks(), m: machineTicks() };
      const secs = (performance.now() - t0) / 1000;
      const pct = (a, b) => ((b - a) / CLK_TCK / secs) * 100;
      // CPU from the threads' schedstat run time (ns): finer than the 10 ms ticks of a still row.
      let runNs = 0;
      for (const [tid, t] of th1) runNs += t.runNs - (th0.get(tid)?.runNs ?? 0);
      let videoPct = 0;
      let videoWaitMs = 0;
      for (const [tid, t] of th1) {
        const before = th0.get(tid)?.ticks ?? 0;
        const share = pct(before, t.ticks);
        if (t.name === 'vnrit-video') {
          videoPct += share;
          videoWaitMs += (t.waitNs - (th0.get(tid)?.waitNs ?? 0)) / 1e6;
        }
        perThread.set(t.name, (perThread.get(t.name) ?? 0) + share / WINDOWS);
      }
      const fps = v1.map((v, i) => (v.framesDecoded - v0[i].framesDecoded) / secs);
      const sumDelta = (k) => v1.reduce((a, v, i) => a + v[k] - v0[i][k], 0);
      const encoded = s1.frames_encoded - s0.frames_encoded;
      const encodeTotalMs = s1.encode_ms_mean * s1.frames_encoded - s0.encode_ms_mean * s0.frames_encoded;
      windows.push({
        cpu: pct(c0.vnrit, c1.vnrit),
        cpuFine: (runNs / 1e9 / secs) * 100,
        xvfb: pct(c0.xvfb, c1.xvfb),
        scene: pct(c0.scene, c1.scene),
        chromium: pct(c0.chromium, c1.chromium),
        kbps: ((s1.bytes_encoded - s0.bytes_encoded) * 8) / 1000 / secs,
        keyframes: s1.keyframes - s0.keyframes,
        dropped: (s1.frames_dropped ?? 0) - (s0.frames_dropped ?? 0),
        decodeMs: (sumDelta('totalDecodeTime') / Math.max(1, sumDelta('framesDecoded'))) * 1000,
        jitterMs: (sumDelta('jitterBufferDelay') / Math.max(1, sumDelta('jitterBufferEmittedCount'))) * 1000,
        machine: ((c1.m.busy - c0.m.busy) / (c1.m.total - c0.m.total)) * 100 * cpus().length,
        ...memory(vnrit),
        encodedFps: (s1.frames_encoded - s0.frames_encoded) / secs,
        capturedFps: (s1.frames_captured - s0.frames_captured) / secs,
        skipped: (s1.frames_skipped ?? 0) - (s0.frames_skipped ?? 0),
        encodeMs: encoded > 0 ? encodeTotalMs / encoded : NaN,
        // CPU ms the pipeline thread spent per encoded frame (capture + convert + encode + send)
        videoMsPerFrame: encoded > 0 ? (videoPct / 100) * secs * 1000 / encoded : NaN,
        // ms the pipeline thread was runnable but had no CPU (other processes held both cores)
        videoWaitMsPerFrame: encoded > 0 ? videoWaitMs / encoded : NaN,
        videoWaitPct: videoWaitMs / 10 / secs,
        fpsMin: Math.min(...fps),
        fpsMedian: median(fps),
      });
      load.push(loadavg()[0]);
      process.stdout.write(`  ${name} window ${w + 1}/${WINDOWS}: vnrit ${f1(windows.at(-1).cpu)}% of a core\n`);
    }
    const lat = await Promise.all(this.pages.map((p) => p.evaluate(() => ({ ...window.__bench }))));
    const pick = (k) => median(windows.map((x) => x[k]));
    const phase = {
      name,
      probe,
      viewers: this.pages.length,
      cpu: pick('cpu'),
      cpuFine: pick('cpuFine'),
      cpuWindows: windows.map((x) => x.cpu),
      xvfb: pick('xvfb'),
      scene: pick('scene'),
      machine: pick('machine'),
      rss: pick('rss'),
      hwm: Math.max(...windows.map((x) => x.hwm)),
      encodedFps: pick('encodedFps'),
      capturedFps: pick('capturedFps'),
      skipped: windows.reduce((a, x) => a + x.skipped, 0),
      encodeMs: pick('encodeMs'),
      videoMsPerFrame: pick('videoMsPerFrame'),
      videoWaitMsPerFrame: pick('videoWaitMsPerFrame'),
      videoWaitPct: pick('videoWaitPct'),
      chromium: pick('chromium'),
      kbps: pick('kbps'),
      keyframes: windows.reduce((a, x) => a + x.keyframes, 0),
      dropped: windows.reduce((a, x) => a + x.dropped, 0),
      decodeMs: pick('decodeMs'),
      jitterMs: pick('jitterMs'),
      fpsMin: pick('fpsMin'),
      fpsMedian: pick('fpsMedian'),
      load: median(load),
      latency: lat,
    };
    this.phases.push(phase);
    this.threads.set(name, perThread);
    return phase;
  }

  async close() {
    for (const c of this.contexts) await c.close().catch(() => {});
    if (this.browser) await Promise.race([this.browser.close().catch(() => {}), sleep(10000)]);
    if (this.firefox) await Promise.race([this.firefox.close().catch(() => {}), sleep(10000)]);
    if (this.scene) await this.scene.stop();
    if (this.server) await this.server.child.stop();
    if (this.xvfb) await this.xvfb.child.stop();
  }
}

/** The scene column of a row. */
function sceneOf(p) {
  if (p.name.startsWith('firefox')) return 'moving, latency probe, Firefox (VP8)';
  return p.probe ? 'moving, latency probe' : p.name.split('-')[0];
}

function report(b, meta) {
  const by = Object.fromEntries(b.phases.map((p) => [p.name, p]));
  const L = [];
  L.push(`# vnrit benchmark results`);
  L.push('');
  L.push(`${meta.date}, commit ${meta.commit}, ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), ` +
    `Xvfb ${SCREEN}, vnrit --framerate ${FRAMERATE} ${process.env.VNRIT_ARGS || ""} (default bitrate), headless Chromium viewers (the Firefox row: one headless Firefox ESR viewer, VP8), ` +
    `${WINDOWS} windows of ${WINDOW_S} s per row (${STILL_WINDOW_S} s for still rows; medians). Load average (1 min): ${f2(meta.loadStart)} at start, ${f2(meta.loadEnd)} at end.`);
  L.push('');
  L.push('| scene | viewers | vnrit CPU, % of a core | by schedstat | per window | VmRSS MiB | VmHWM MiB | captured fps | encoded fps | browser fps (median / slowest) | kbit/s |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const p of b.phases) {
    const scene = sceneOf(p);
    L.push(`| ${scene} | ${p.viewers} | **${f1(p.cpu)}** | ${f2(p.cpuFine)} | ${p.cpuWindows.map(f1).join(' / ')} | ${f1(p.rss)} | ${f1(p.hwm)} | ` +
      `${f1(p.capturedFps)} | ${f1(p.encodedFps)} | ${f1(p.fpsMedian)} / ${f1(p.fpsMin)} | ${Math.round(p.kbps)} |`);
  }
  L.push('');
  L.push('Where the time goes (medians): encode ms = wall time per encoded frame inside OpenH264 (from /api/stats); ' +
    'video thread CPU ms = CPU time of the vnrit-video thread per encoded frame (capture + convert + encode + hand-off); ' +
    'video thread run-queue wait = time that thread was ready to run but both cores were busy (/proc/.../schedstat), ' +
    'per encoded frame and in % of wall time; CPU of the other processes in % of one core; machine busy: both cores = 200.');
  L.push('');
  L.push('| scene | viewers | encode ms (wall) | video thread CPU ms/frame | video thread run-queue wait ms/frame (% of wall) | skipped | keyframes | dropped | Xvfb % | timecode % | browser (all viewers) % | machine busy % | load avg |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const p of b.phases) {
    const scene = sceneOf(p);
    L.push(`| ${scene} | ${p.viewers} | ${f1(p.encodeMs)} | ${f1(p.videoMsPerFrame)} | ${f1(p.videoWaitMsPerFrame)} (${f1(p.videoWaitPct)}%) | ${p.skipped} | ${p.keyframes} | ${p.dropped} | ` +
      `${f1(p.xvfb)} | ${f1(p.scene)} | ${f1(p.chromium)} | ${f1(p.machine)} | ${f2(p.load)} |`);
  }
  L.push('');
  const ratio = (k) => by[`${k}-3`].cpu / by[`${k}-1`].cpu;
  // Still rows are a few ticks of CPU: their ratio is judged on the schedstat run time.
  const fineRatio = (k) => by[`${k}-3`].cpuFine / by[`${k}-1`].cpuFine;
  // Under contention the two runs may reach different frame rates: compare CPU per encoded frame too.
  const perFrame = (k) => by[`${k}-3`].cpu / by[`${k}-3`].encodedFps / (by[`${k}-1`].cpu / by[`${k}-1`].encodedFps);
  L.push(`3-viewer / 1-viewer CPU: still ${f2(ratio('still'))}x, moving ${f2(ratio('moving'))}x; ` +
    `per encoded frame (fairer when the frame rates differ): still ${f2(perFrame('still'))}x, moving ${f2(perFrame('moving'))}x.`);
  L.push('');
  L.push('## Glass-to-glass latency (presented wall-clock time - time code drawn), 1080p30, moving scene');
  L.push('');
  L.push('Measured in the latency row, the only one whose pages read the time code back; the CPU rows above ' +
    'other than that one have pages that only show the video.');
  L.push('');
  L.push('Split with requestVideoFrameCallback\'s receiveTime: drawn -> last packet received (capture wait, encode, send) and ' +
    'received -> presented (jitter buffer, decode, render); Chromium\'s own getStats means of decode and jitter-buffer time.');
  L.push('');
  L.push('| run | viewer | frames presented | decoded | new codes | p50 ms | p95 ms | max ms | rejected | drawn->received p50 | received->presented p50 | decode ms | jitter buffer ms |');
  L.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const p of b.phases.filter((x) => x.probe)) {
    p.latency.forEach((l, i) => {
      L.push(`| ${sceneOf(p)}, ${p.viewers} viewer(s) | ${i + 1} | ${l.presented} | ${l.decoded} | ${l.lat.length} | ` +
        `**${f1(quantile(l.lat, 0.5))}** | **${f1(quantile(l.lat, 0.95))}** | ${f1(Math.max(...l.lat))} | ${l.bad} | ` +
        `${f1(quantile(l.toReceive, 0.5))} | ${f1(quantile(l.afterReceive, 0.5))} | ${f1(p.decodeMs)} | ${f1(p.jitterMs)} |`);
    });
  }
  L.push('');
  L.push('## vnrit CPU by thread (% of a core, mean over the windows; threads grouped by name)');
  L.push('');
  const names = new Set();
  for (const m of b.threads.values()) for (const n of m.keys()) names.add(n);
  const cols = b.phases.map((p) => p.name);
  L.push(`| thread | ${cols.join(' | ')} |`);
  L.push(`|---|${cols.map(() => '---').join('|')}|`);
  const sorted = [...names].sort((x, y) => (b.threads.get('moving-1')?.get(y) ?? 0) - (b.threads.get('moving-1')?.get(x) ?? 0));
  for (const n of sorted) L.push(`| ${n} | ${cols.map((c) => f1(b.threads.get(c)?.get(n) ?? 0)).join(' | ')} |`);
  L.push('');
  const l1 = by['latency-1'].latency[0].lat;
  L.push('## Against the targets of issue 2');
  L.push('');
  const row = (what, value, target, ok) => L.push(`| ${what} | ${value} | ${target} | ${ok ? 'met' : '**missed**'} |`);
  L.push('| target | measured | goal | |');
  L.push('|---|---|---|---|');
  row('moving 1080p30, 1 viewer, vnrit CPU', `${f1(by['moving-1'].cpu)}% at ${f1(by['moving-1'].fpsMedian)} fps in the browser`, '< 50% at ~30 fps',
    by['moving-1'].cpu < 50 && by['moving-1'].fpsMedian >= 27);
  row('still desktop, 1 viewer, vnrit CPU', `${f1(by['still-1'].cpu)}%`, '< 2%', by['still-1'].cpu < 2);
  row('still desktop, 3 viewers, vnrit CPU', `${f1(by['still-3'].cpu)}%`, '< 2%', by['still-3'].cpu < 2);
  row('3 viewers / 1 viewer CPU, moving', `${f2(ratio('moving'))}x (${f2(perFrame('moving'))}x per encoded frame)`, '< 1.2x',
    ratio('moving') < 1.2 && perFrame('moving') < 1.2);
  row('3 viewers / 1 viewer CPU, still', `${f2(fineRatio('still'))}x by schedstat (${f2(ratio('still'))}x by ticks)`, '< 1.2x', fineRatio('still') < 1.2);
  row('latency p50, 1 viewer', `${f1(quantile(l1, 0.5))} ms (${l1.length} frames)`, '< 50 ms', quantile(l1, 0.5) < 50);
  row('latency p95, 1 viewer', `${f1(quantile(l1, 0.95))} ms`, '< 80 ms', quantile(l1, 0.95) < 80);
  L.push('');
  L.push('Reproduce: `bench/run.sh` (BENCH_WINDOWS, BENCH_WINDOW_S to change the sampling).');
  return L.join('\n') + '\n';
}

async function main() {
  const meta = {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    commit: execFileSync('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim(),
    loadStart: loadavg()[0],
  };
  const b = new Bench();
  try {
    await b.start();
    console.log(`vnrit on ${b.server.base}, Xvfb ${b.xvfb.display} ${SCREEN}; load ${f2(meta.loadStart)}`);
    await b.setScene('still');
    await b.setViewers(1);
    await b.measure('still-1');
    await b.setViewers(3);
    await b.measure('still-3');
    await b.setScene('moving');
    await b.measure('moving-3');
    await b.setViewers(1);
    await b.measure('moving-1');
    await b.measure('latency-1', { probe: true });
    if (process.env.BENCH_FIREFOX !== '0') {
      await b.setViewers(0);
      await b.addFirefoxViewer();
      await b.measure('firefox-1', { probe: true });
    }
  } finally {
    await b.close();
  }
  meta.loadEnd = loadavg()[0];
  const md = report(b, meta);
  writeFileSync(join(ROOT, 'bench', 'results.md'), md);
  console.log('\n' + md);
  console.log('written to bench/results.md');
}

main().catch((err) => {
  console.error(`bench failed: ${err.stack ?? err}`);
  process.exit(1);
});
