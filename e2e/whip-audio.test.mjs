// vnrit e2e: desktop audio through WHIP, end to end. vnrit records a private PulseAudio's
// null-sink monitor while a 1 kHz tone plays into the sink, and publishes H.264 + Opus to
// Debian's Janus (VideoRoom) behind simple-whip-server. Janus's admin API must show the
// publisher's audio medium (Opus) receiving packets, and growing; a Chromium page subscribed
// through Janus with janus.js must decode that audio with energy (inbound-rtp audioLevel and
// totalAudioEnergy rise while the tone plays) and hear it fall silent when the tone stops.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, launchBrowser, startServer, waitFor } from './lib/harness.mjs';
import { WhipLab, whipInstalled } from './lib/janus.mjs';
import { inboundAudio, startPageServer, subscribe } from './lib/janus-page.mjs';
import { apiStats } from './lib/metrics.mjs';
import { Pulse } from './lib/pulse.mjs';

let h;
let lab;
let pulse;
let pageServer;
let vnrit;
let page;

// As in whip.test.mjs: missing Janus fails, unless VNRIT_E2E_ALLOW_SKIP=1 (reported as a skip).
const missing = whipInstalled() ? null : 'Janus or simple-whip-server missing: run scripts/setup-whip.sh';
const skip = missing && process.env.VNRIT_E2E_ALLOW_SKIP === '1' ? missing : false;

before(async () => {
  if (skip) return;
  if (missing) throw new Error(missing);
  pulse = new Pulse('whip-audio');
  await pulse.start();
  // vnrit (started below with this environment) records from this PulseAudio.
  process.env.PULSE_SERVER = pulse.server;
  h = await Harness.start('whip-audio', { server: false, browser: false });
  lab = await WhipLab.start('whip-audio');
  pageServer = await startPageServer(lab.janusUrl, lab.room);
  h.browser = await launchBrowser();
});

after(async () => {
  await page?.close().catch(() => {});
  await vnrit?.child.stop();
  await pageServer?.close();
  await h?.close();
  await lab?.close();
  await pulse?.close();
});

/** The publisher's audio medium as Janus's admin API shows it: {codec, packets, bytes}. */
async function janusAudio() {
  const [info] = await lab.publisherHandles();
  const audio = Object.values(info?.webrtc?.media ?? {}).find((m) => m.type === 'audio');
  return audio && { codec: audio.codecs?.codec, packets: audio.stats?.in?.packets ?? 0, bytes: audio.stats?.in?.bytes ?? 0 };
}

test('a tone on the desktop reaches a Janus subscriber through WHIP as decoded Opus with energy', { skip, timeout: 150000 }, async () => {
  h.setRoot('#806020');
  const endpoint = await lab.createEndpoint('desk');
  vnrit = await startServer({
    display: h.display,
    token: h.token,
    name: 'whip-audio-vnrit',
    bind: '10.213.0.1',
    extraArgs: ['--whip', endpoint],
  });
  const streaming = await waitFor(async () => {
    const s = await apiStats(vnrit);
    return s.publish?.state === 'streaming' && s.audio?.connected && s;
  }, { timeoutMs: 30000, intervalMs: 200, what: 'vnrit to stream over WHIP while recording PulseAudio' });
  assert.equal(streaming.publish.publishes, 1);

  pulse.playTone();
  // (a) Janus receives Opus on the publisher's audio medium, and the count grows.
  const first = await waitFor(async () => {
    const a = await janusAudio();
    return a?.packets > 25 && a;
  }, { timeoutMs: 20000, intervalMs: 250, what: 'Janus to count incoming audio packets while the tone plays' });
  assert.equal(first.codec, 'opus', JSON.stringify(first));
  const grown = await waitFor(async () => {
    const a = await janusAudio();
    return a?.packets >= first.packets + 50 && a;
  }, { timeoutMs: 15000, intervalMs: 250, what: 'Janus incoming audio packets to grow (50 more = 1 s of 20 ms frames)' });
  console.log(`# Janus audio in: ${JSON.stringify(first)} -> ${JSON.stringify(grown)}`);
  const sent = (await apiStats(vnrit)).publish.audio_packets_sent;
  assert.ok(sent >= grown.packets * 0.9, `vnrit counts ${sent} Opus packets sent, Janus ${grown.packets} received`);

  // (b) the subscriber decodes it: the inbound audio level and energy rise while the tone plays.
  page = await subscribe(h.browser, pageServer.url, 'audio');
  const loud = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.level > 0.05 && a.energy > 0 && a;
  }, { timeoutMs: 20000, intervalMs: 200, what: 'the subscriber\'s inbound audio level above 0.05 with the tone playing' });
  const louder = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.energy > loud.energy && a.packets > loud.packets + 25 && a;
  }, { timeoutMs: 10000, intervalMs: 200, what: 'the subscriber\'s totalAudioEnergy to keep rising' });
  console.log(`# subscriber with the tone: ${JSON.stringify(loud)} -> ${JSON.stringify(louder)}`);

  // The energy is the tone's: it falls back to silence when the tone stops.
  await pulse.stopTone();
  const quiet = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.level < 0.01 && a;
  }, { timeoutMs: 15000, intervalMs: 200, what: 'the subscriber\'s audio level back to silence after the tone stopped' });
  console.log(`# subscriber after the tone: ${JSON.stringify(quiet)}`);
});
