// vnrit e2e: keyframe recovery driven by real RTCP from Chromium, and a stalled viewer.
//
// Packet loss is made with nftables inside the test's private network namespace (e2e/run.sh
// runs every test file in one): a rule on the input hook drops UDP datagrams whose payload
// starts with the bits 10 (RTP and RTCP, version 2), so ICE (STUN) and DTLS still pass and
// the connection comes up, while media is lost until the rule is deleted.
//
// 1. PLI: the viewer connects while media is dropped, so the first IDR never arrives. Once
//    packets flow again Chromium holds only P frames, asks for a keyframe with an RTCP PLI
//    (its own `pliCount` counts it), vnrit's per-session `keyframe_requests` counter (PLI/FIR
//    only) moves, a new keyframe is encoded and the page decodes.
// 2. Stalled viewer: with two viewers, every packet towards viewer B is dropped for 4 s
//    (matched on B's own UDP port). Viewer A keeps decoding at the screen's change rate, the
//    encoder keeps its pace, and B, once its packets flow again, decodes a keyframe, keeps
//    decoding and shows the current picture. (This drops B's packets on the wire; vnrit's
//    own send path never falls behind here, so its frame-dropping resync is not exercised.)
// 3. Silent path: everything towards a connected page except STUN is dropped (first payload
//    byte over 3: DTLS, SRTP, SRTCP), so ICE's checks still pass and the connection stays
//    "connected" while nothing else arrives. The page notices the silence by itself
//    (web/signal.js, 10 s), says so, and reconnects on a new port; the new session decodes,
//    and the server holds only that one.
//
// Needs `cargo build --release --bin vnrit --example timecode`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Harness, ROOT, waitFor } from './lib/harness.mjs';
import { status, trackConnections, waitForColour } from './lib/page.mjs';

const TABLE = 'vnrit_e2e_keyframe';
// The benchmark scene (a time code, a sweeping bar, scrolling text): small changes every frame,
// so OpenH264 codes P frames and never an IDR of its own (a full-screen colour flip would be
// coded as a scene change, with an IDR that hides whether a PLI was needed).
const TIMECODE = join(ROOT, 'target', 'release', 'examples', 'timecode');
let h;
let painter;

function nft(script) {
  execFileSync('nft', ['-f', '-'], { input: script });
}

/**
 * Drops incoming RTP/RTCP (optionally only towards one UDP port) until `allowMedia()`; with
 * `allButStun`, every datagram whose first byte is over 3 (DTLS too), so only STUN passes.
 */
function dropMedia(port, { allButStun = false } = {}) {
  allowMedia();
  const match = port ? `udp dport ${port}` : 'udp dport != 53';
  const what = allButStun ? '@th,64,8 > 3' : '@th,64,2 2';
  nft(`table inet ${TABLE} {
  chain in {
    type filter hook input priority 0; policy accept;
    ${match} ${what} drop
  }
}`);
}

function allowMedia() {
  try {
    execFileSync('nft', ['delete', 'table', 'inet', TABLE], { stdio: 'ignore' });
  } catch {
    // no such table: nothing was dropped
  }
}

/** Keeps the screen changing with small updates (see TIMECODE). */
function startPainter(display) {
  if (!existsSync(TIMECODE)) throw new Error(`${TIMECODE} is missing: run cargo build --release --example timecode`);
  painter = spawn(TIMECODE, ['--display', display], { stdio: 'ignore' });
}

function stopPainter() {
  painter?.kill();
  painter = null;
}

/** The page's inbound video counters and the local UDP port of its selected candidate pair. */
async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.__pcs?.at(-1);
    if (!pc) return null;
    const stats = [...(await pc.getStats()).values()];
    const v = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'video');
    const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    const local = pair && stats.find((s) => s.id === pair.localCandidateId);
    return {
      framesDecoded: v?.framesDecoded ?? 0,
      keyFramesDecoded: v?.keyFramesDecoded ?? 0,
      pliCount: v?.pliCount ?? 0,
      firCount: v?.firCount ?? 0,
      packetsLost: v?.packetsLost ?? 0,
      port: local?.port ?? null,
    };
  });
}

async function openViewer() {
  const context = await h.browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(trackConnections);
  await page.goto(h.server.url, { timeout: 15000 });
  return { context, page };
}

before(async () => {
  h = await Harness.start('keyframe');
});

after(async () => {
  allowMedia();
  stopPainter();
  await h?.close();
});

test('a PLI from Chromium moves the session counter and produces a keyframe the page decodes', { timeout: 90000 }, async () => {
  startPainter(h.display);
  dropMedia();
  const { context, page } = await openViewer();
  try {
    // Connected, and vnrit already sending (its first IDR is lost to the drop rule).
    const sending = await waitFor(
      async () => {
        const s = await h.stats();
        const session = s.sessions?.find((x) => x.state === 'connected' && x.frames_sent > 2);
        return session ? { s, session } : null;
      },
      { timeoutMs: 20000, what: 'a connected session with frames sent while media is dropped' },
    );
    const before = await inbound(page);
    assert.equal(before?.framesDecoded ?? 0, 0, `nothing can be decoded yet: ${JSON.stringify(before)}`);
    const keyframesBefore = (await h.stats()).keyframes;

    allowMedia();
    let last = null;
    const after = await waitFor(
      async () => {
        const s = await h.stats();
        const session = s.sessions.find((x) => x.id === sending.session.id);
        const v = await inbound(page);
        last = { session, v, keyframes: s.keyframes, keyframesBefore };
        const ok = session?.keyframe_requests > 0 && s.keyframes > keyframesBefore && v?.keyFramesDecoded > 0;
        return ok ? last : null;
      },
      { timeoutMs: 15000, what: 'a PLI/FIR counted by vnrit, a new keyframe, and a decoded keyframe' },
    ).catch((err) => {
      throw new Error(`${err.message}; last seen ${JSON.stringify(last)}`);
    });
    assert.ok(after.v.pliCount + after.v.firCount > 0, `Chromium sent no PLI/FIR: ${JSON.stringify(after)}`);
    assert.ok(after.v.framesDecoded > 0, JSON.stringify(after));
    // The answer agreed to the playout-delay extension (vnrit sends min = max = 0 with it).
    const answer = await page.evaluate(() => window.__pcs.at(-1).remoteDescription?.sdp ?? '');
    assert.match(answer, /a=extmap:\d+ http:\/\/www\.webrtc\.org\/experiments\/rtp-hdrext\/playout-delay/);
  } finally {
    allowMedia();
    stopPainter();
    await context.close();
  }
});

test('a stalled viewer does not slow the other, and catches up once its packets flow', { timeout: 120000 }, async () => {
  h.setRoot('#10a010');
  const a = await openViewer();
  const b = await openViewer();
  try {
    await Promise.all([a, b].map((v) => waitForColour(v.page, '#10a010', { timeoutMs: 20000 })));
    const bPort = (await waitFor(async () => (await inbound(b.page))?.port, { timeoutMs: 5000, what: "viewer B's UDP port" }));

    startPainter(h.display);
    await waitFor(async () => (await inbound(a.page)).framesDecoded > 5, { timeoutMs: 10000, what: 'A decoding the changing screen' });
    dropMedia(bPort);
    const a0 = await inbound(a.page);
    const b0 = await inbound(b.page);
    const s0 = await h.stats();
    const t0 = Date.now();
    // 4 s of stall, measured on a clock: this is the length of the outage, not an assertion.
    await new Promise((r) => setTimeout(r, 4000));
    const a1 = await inbound(a.page);
    const b1 = await inbound(b.page);
    const s1 = await h.stats();
    const secs = (Date.now() - t0) / 1000;
    allowMedia();

    const aFps = (a1.framesDecoded - a0.framesDecoded) / secs;
    const encFps = (s1.frames_encoded - s0.frames_encoded) / secs;
    // The scene changes faster than 30 fps; A must keep decoding while B gets nothing (the
    // bound is low because Chromium, Xvfb and vnrit share two cores here).
    assert.ok(aFps >= 7, `viewer A slowed down to ${aFps.toFixed(1)} fps while B was stalled`);
    assert.ok(encFps >= 7, `the encoder slowed down to ${encFps.toFixed(1)} fps while B was stalled`);
    assert.ok(b1.framesDecoded - b0.framesDecoded <= 2, `B decoded while its packets were dropped: ${JSON.stringify({ b0, b1 })}`);

    // B recovers: its packets resume with a gap (Chromium repairs it with NACKs, or asks for
    // a keyframe), and it decodes a keyframe and keeps decoding.
    let last = null;
    await waitFor(
      async () => {
        const v = await inbound(b.page);
        last = { b1, v };
        return v.keyFramesDecoded > b1.keyFramesDecoded && v.framesDecoded > b1.framesDecoded + 5;
      },
      { timeoutMs: 15000, what: 'B to decode a keyframe and keep decoding' },
    ).catch((err) => {
      throw new Error(`${err.message}; last seen ${JSON.stringify(last)}`);
    });
    // And it shows the screen's current picture.
    stopPainter();
    h.setRoot('#a01090');
    await waitForColour(b.page, '#a01090', { timeoutMs: 10000 });
    const b2 = await inbound(b.page);
    assert.ok(b2.framesDecoded > b1.framesDecoded, JSON.stringify({ b1, b2 }));
    const s2 = await h.stats();
    console.log(
      `stalled viewer: A ${aFps.toFixed(1)} fps, encoder ${encFps.toFixed(1)} fps during the stall; ` +
        `B after: lost ${b2.packetsLost} packets, PLI ${b2.pliCount}, keyframes decoded ${b1.keyFramesDecoded} -> ${b2.keyFramesDecoded}; ` +
        `frames dropped on the server ${s2.frames_dropped}`,
    );
  } finally {
    allowMedia();
    stopPainter();
    await a.context.close();
    await b.context.close();
  }
});

test('a page that hears nothing from the server while ICE stays up reconnects by itself', { timeout: 90000 }, async () => {
  h.setRoot('#2040a0');
  const v = await openViewer();
  try {
    await waitForColour(v.page, '#2040a0', { timeoutMs: 20000 });
    const port = await waitFor(async () => (await inbound(v.page))?.port, { timeoutMs: 5000, what: "the page's UDP port" });
    const first = (await h.stats()).sessions.find((x) => x.state === 'connected');
    assert.ok(first, 'a connected session');

    dropMedia(port, { allButStun: true });
    const t0 = Date.now();
    // 7 s in, ICE has not noticed anything: its checks still pass.
    await new Promise((r) => setTimeout(r, 7000));
    const midway = await v.page.evaluate(() => [window.__pcs[0].iceConnectionState, window.__pcs[0].connectionState]);
    assert.deepEqual(midway, ['connected', 'connected'], 'ICE still connected while only STUN passes');
    const said = await waitFor(
      async () => {
        const st = await status(v.page);
        return st && /nothing received from the server/.test(st.text) ? st : null;
      },
      { timeoutMs: 25000, intervalMs: 250, what: 'the page to say it hears nothing from the server' },
    );
    const noticed = Date.now() - t0;
    assert.equal(await v.page.evaluate(() => window.__pcs[0].connectionState), 'closed', 'the page closed the silent connection');
    assert.ok(noticed >= 9000, `ended after ${noticed} ms, before the 10 s limit`);

    // It reconnects (a new connection on a new port, so the rule no longer applies) and plays.
    h.setRoot('#a04020');
    await waitForColour(v.page, '#a04020', { timeoutMs: 30000 });
    const s = await waitFor(
      async () => {
        const x = await h.stats();
        return x.sessions.length === 1 && x.sessions[0].state === 'connected' ? x : null;
      },
      { timeoutMs: 10000, what: 'one connected session on the server' },
    );
    assert.notEqual(s.sessions[0].id, first.id, 'a new session');
    assert.equal(s.viewers, 1, JSON.stringify(s));
    console.log(`# silent path: the page ended the session after ${noticed} ms (${JSON.stringify(said.text)}) and reconnected as session ${s.sessions[0].id}`);
  } finally {
    allowMedia();
    await v.context.close();
  }
});
