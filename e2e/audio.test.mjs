// vnrit e2e: desktop audio. A tone played into the desktop's (private, null-sink) PulseAudio is
// heard by the page — its inbound audio level rises — and falls back when the tone stops. A server
// started while no PulseAudio is reachable streams video anyway, and audio starts once one appears.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Harness, waitFor } from './lib/harness.mjs';
import { trackConnections, waitForColour } from './lib/page.mjs';

const D = `/tmp/vnrit-e2e-audio-${process.pid}`;
const SOCKET = `${D}/run/native`;
let h;
let pulse;
let player;

/** A 16-bit stereo 48 kHz WAV of a sine tone. */
function writeTone(path, seconds, hz = 1000) {
  const n = 48000 * seconds;
  const b = Buffer.alloc(44 + n * 4);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n * 4, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(2, 22);
  b.writeUInt32LE(48000, 24);
  b.writeUInt32LE(192000, 28);
  b.writeUInt16LE(4, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(n * 4, 40);
  for (let i = 0; i < n; i += 1) {
    const s = Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / 48000));
    b.writeInt16LE(s, 44 + i * 4);
    b.writeInt16LE(s, 46 + i * 4);
  }
  writeFileSync(path, b);
}

function pulseEnv() {
  return { ...process.env, HOME: `${D}/home`, XDG_RUNTIME_DIR: `${D}/run` };
}

async function startPulse() {
  pulse = spawn('pulseaudio', [
    '--daemonize=no', '--exit-idle-time=-1', '--system=false', '--disallow-exit', '-n',
    `--load=module-native-protocol-unix auth-anonymous=1 socket=${SOCKET}`,
    '--load=module-null-sink sink_name=vsink rate=48000 channels=2',
  ], { env: pulseEnv(), stdio: 'ignore' });
  await waitFor(() => existsSync(SOCKET), { timeoutMs: 10000, what: 'PulseAudio socket' });
}

function playTone() {
  player = spawn('paplay', [`--server=unix:${SOCKET}`, '--device=vsink', '--latency-msec=20', `${D}/tone.wav`], {
    env: pulseEnv(),
    stdio: 'ignore',
  });
}

async function inboundAudio(page) {
  return page.evaluate(async () => {
    const pc = window.__pcs?.at(-1);
    if (!pc) return null;
    const stats = [...(await pc.getStats()).values()];
    const r = stats.find((s) => s.type === 'inbound-rtp' && s.kind === 'audio');
    return r ? { packets: r.packetsReceived ?? 0, energy: r.totalAudioEnergy ?? 0, level: r.audioLevel ?? 0 } : null;
  });
}

before(async () => {
  rmSync(D, { recursive: true, force: true });
  mkdirSync(`${D}/home`, { recursive: true });
  mkdirSync(`${D}/run`, { recursive: true });
  writeTone(`${D}/tone.wav`, 60);
  // The server looks for PulseAudio here; nothing is listening yet.
  process.env.PULSE_SERVER = `unix:${SOCKET}`;
  h = await Harness.start('audio');
});

after(async () => {
  player?.kill();
  await h?.close();
  pulse?.kill();
  rmSync(D, { recursive: true, force: true });
});

test('without PulseAudio the video streams, and audio starts once PulseAudio appears', { timeout: 90000 }, async () => {
  h.setRoot('#40a0a0');
  const page = await h.browser.newPage();
  await page.addInitScript(trackConnections);
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, '#40a0a0', { timeoutMs: 20000 });
  const stats = await h.stats();
  assert.equal(stats.audio?.connected, false, JSON.stringify(stats.audio));
  assert.ok(stats.audio?.last_error, 'the audio error is reported in /api/stats');

  await startPulse();
  playTone();
  const heard = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.packets > 50 ? a : null;
  }, { timeoutMs: 30000, what: 'audio packets after PulseAudio appeared' });
  assert.ok(heard.packets > 50);
  player.kill();
  await page.close();
});

test('a tone on the desktop raises the page\'s audio level, which falls back when it stops', { timeout: 90000 }, async () => {
  const page = await h.browser.newPage();
  await page.addInitScript(trackConnections);
  await page.goto(h.server.url, { timeout: 15000 });
  // A muted element reports no level; a user unmutes with the page's control.
  await page.evaluate(() => {
    document.getElementById('screen').muted = false;
  });
  // Silence sends no packets at all (the browser has no inbound audio stats before the first).
  playTone();
  const loud = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.level > 0.05 ? a : null;
  }, { timeoutMs: 20000, what: 'audio level above silence with the tone playing' });
  console.log(`# with the tone: ${JSON.stringify(loud)}`);

  player.kill();
  const quiet = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.level < 0.01 ? a : null;
  }, { timeoutMs: 15000, what: 'audio level back to silence after the tone stopped' });
  console.log(`# after the tone: ${JSON.stringify(quiet)}`);
  assert.ok(quiet.packets >= loud.packets);
  await page.close();
});
