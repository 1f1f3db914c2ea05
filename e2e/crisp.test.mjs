// vnrit e2e: text turns crisp once the screen stops moving (issue 19's "top-off"). A terminal
// scrolls a page of 6x13 text for about 3 s, then stops; the luma PSNR of the frame Chromium
// shows (the <video> drawn onto a canvas) against the X screen (ImageMagick `import`) is read
// at fixed times after the stop. With `--lossless-updates` refinement must make the still text
// lossless (>= 50 dB; on this grey text it ends as an exact match) within 8 s and never go
// backwards; with `--lossless-updates false` the same scene stays where the encoder left it
// (about 36 dB), which shows the test can tell the two apart.
//
// Both runs use `--adaptive-bitrate=false`: with adaptive bitrate the per-viewer pacer lets
// large pictures out at about 1 Mbit/s on loopback, so the page showed the end of the
// refinement only 12-16 s after the stop (docs/video-stage.md). This test is about the video
// stage; that pacer finding is written down there. CRISP_DEBUG=1 prints the page's and the
// server's frame counters at each probe; CRISP_ARGS adds flags to both runs.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Harness, startChild, startServer, waitFor } from './lib/harness.mjs';

/** Seconds after the scroll stops at which the picture is compared. */
const PROBES = [0.5, 1, 2, 4, 8];
/** What refinement must reach by the last probe, dB of luma PSNR. */
const CRISP_DB = 50;

let h;
let dir;

before(async () => {
  h = await Harness.start('crisp', { server: false });
  dir = mkdtempSync(join(tmpdir(), 'vnrit-crisp-'));
});

after(async () => {
  await h?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Starts an xterm covering the screen that, once `go` exists, prints 90 lines a second of
 * mixed text for 3 s (every line of the window scrolls), creates `done` and then idles.
 */
function startScroller(tag) {
  const go = join(dir, `${tag}.go`);
  const done = join(dir, `${tag}.done`);
  const script = join(dir, `${tag}.pl`);
  writeFileSync(
    script,
    [
      'use Time::HiRes qw(sleep time);',
      '$| = 1;',
      `sleep 0.05 until -e "${go}";`,
      'my @w = qw(alpha Bravo charlie DELTA echo foxtrot 1234 5678 golf hotel india {juliet} [kilo] lima;);',
      'my $end = time + 3;',
      'my $n = 0;',
      'while (time < $end) {',
      '  $n++;',
      '  print join(" ", map { $w[($n * 7 + $_ * 3) % @w] } 0 .. 24), " $n\\n";',
      '  sleep 1 / 90;',
      '}',
      `open my $f, ">", "${done}"; close $f;`,
      'sleep 600;',
    ].join('\n'),
  );
  const child = startChild(`crisp-${tag}-xterm`, 'xterm', [
    '-display', h.display, '-geometry', '212x55+0+0', '-fn', 'fixed', '-e', 'perl', script,
  ]);
  return { child, go, done };
}

/** Luma (BT.601 weights) of packed RGB bytes. */
function luma(rgb, stride) {
  const n = rgb.length / stride;
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = 0.299 * rgb[i * stride] + 0.587 * rgb[i * stride + 1] + 0.114 * rgb[i * stride + 2];
  }
  return y;
}

/** The X screen as packed RGB, from ImageMagick's `import`. */
function xScreen() {
  const r = spawnSync('import', ['-display', h.display, '-window', 'root', '-depth', '8', 'rgb:-'], {
    timeout: 10000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`import failed: ${r.stderr}`);
  return r.stdout;
}

/** The frame the page shows, as RGBA bytes, with its size. */
async function shownFrame(page) {
  const { width, height, b64 } = await page.evaluate(() => {
    const v = document.getElementById('screen');
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    const data = g.getImageData(0, 0, c.width, c.height).data;
    let s = '';
    for (let i = 0; i < data.length; i += 0x8000) s += String.fromCharCode(...data.subarray(i, i + 0x8000));
    return { width: c.width, height: c.height, b64: btoa(s) };
  });
  return { width, height, rgba: Buffer.from(b64, 'base64') };
}

/** Luma PSNR, dB, of what the page shows against the X screen now. */
async function psnr(page) {
  const shown = await shownFrame(page);
  const screen = xScreen();
  assert.equal(screen.length, shown.width * shown.height * 3, 'video and X screen differ in size');
  const a = luma(shown.rgba, 4);
  const b = luma(screen, 3);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += (a[i] - b[i]) ** 2;
  const mse = sum / a.length;
  return mse === 0 ? Infinity : 10 * Math.log10((255 * 255) / mse);
}

/** Runs the scene against a vnrit started with `args`; returns the PSNR at each probe. */
async function scrollThenStill(tag, args) {
  const scroller = startScroller(tag);
  const server = await startServer({ display: h.display, token: h.token, name: `crisp-${tag}-vnrit`, extraArgs: args });
  const page = await h.browser.newPage({ viewport: { width: 1280, height: 720 } });
  try {
    await page.goto(server.url, { timeout: 15000 });
    await waitFor(() => page.evaluate(() => (document.getElementById('screen')?.videoWidth ?? 0) > 0), {
      timeoutMs: 15000,
      what: 'the first decoded frame',
    });
    writeFileSync(scroller.go, '');
    await waitFor(() => existsSync(scroller.done), { timeoutMs: 15000, intervalMs: 20, what: 'the end of the scroll' });
    const stopped = Date.now();
    const series = [];
    for (const at of PROBES) {
      const wait = stopped + at * 1000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      series.push(await psnr(page));
      if (process.env.CRISP_DEBUG) {
        const st = await (await fetch(`${server.base}/api/stats?token=${h.token}`)).json();
        const inb = await page.evaluate(async () => {
          const out = {};
          (await window.vnrit.session.pc.getStats()).forEach((x) => {
            if (x.type === 'inbound-rtp' && x.kind === 'video') Object.assign(out, { dec: x.framesDecoded, drop: x.framesDropped, lost: x.packetsLost, nack: x.nackCount, pli: x.pliCount, recv: x.framesReceived, jb: x.jitterBufferDelay / Math.max(1, x.jitterBufferEmittedCount) });
          });
          return out;
        });
        console.log(`# ${tag} ${at}s page ${JSON.stringify(inb)} sess ${JSON.stringify(st.sessions?.map((x) => [x.frames_sent, x.frames_dropped, x.bwe_kbps]))}`);
        console.log(`# ${tag} ${at}s: ${JSON.stringify({ e: st.frames_encoded, r: st.frames_refined, hand: st.frames_hand, rep: st.frames_repeated, cap: st.frames_captured, pend: st.refine_pending, kbps: st.bitrate_kbps, bytes: st.bytes_encoded })}`);
      }
    }
    const stats = await (await fetch(`${server.base}/api/stats?token=${h.token}`)).json();
    console.log(
      `# ${tag}: luma PSNR ${PROBES.map((t, i) => `${t} s ${series[i].toFixed(1)} dB`).join(', ')}; ` +
        `refined ${stats.frames_refined}, encoded ${stats.frames_encoded} frames, target ${stats.bitrate_kbps} kbit/s, refine_pending ${stats.refine_pending}`,
    );
    return series;
  } finally {
    await page.close().catch(() => {});
    await server.child.stop();
    await scroller.child.stop();
  }
}

test('still text is refined to lossless after a scroll stops; without refinement it stays lossy', { timeout: 120000 }, async () => {
  const extra = ['--adaptive-bitrate=false', ...(process.env.CRISP_ARGS ?? '').split(' ').filter(Boolean)];
  const refined = await scrollThenStill('refined', ['--lossless-updates', ...extra]);
  const plain = await scrollThenStill('plain', ['--lossless-updates', 'false', ...extra]);
  const last = (s) => s[s.length - 1];
  assert.ok(
    last(refined) >= CRISP_DB,
    `with refinement the still text reached ${last(refined).toFixed(1)} dB ${PROBES.at(-1)} s after the stop, want >= ${CRISP_DB}`,
  );
  assert.ok(
    last(plain) < CRISP_DB,
    `without refinement the text measured ${last(plain).toFixed(1)} dB: the scene no longer shows the difference`,
  );
  for (let i = 1; i < refined.length; i++) {
    assert.ok(refined[i] >= refined[i - 1] - 0.5, `refinement went backwards: ${refined.map((x) => x.toFixed(1)).join(', ')}`);
  }
});
