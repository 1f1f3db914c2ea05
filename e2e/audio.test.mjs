// vnrit e2e: desktop audio. A tone played into the desktop's (private, null-sink) PulseAudio is
// heard by the page — its inbound audio level rises — and falls back when the tone stops. A server
// started while no PulseAudio is reachable streams video anyway, and audio starts once one appears.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { trackConnections, waitForColour } from './lib/page.mjs';
import { Pulse } from './lib/pulse.mjs';

let h;
let pulse;

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
  pulse = new Pulse('audio');
  // The server looks for PulseAudio here; nothing is listening yet.
  process.env.PULSE_SERVER = pulse.server;
  h = await Harness.start('audio');
});

after(async () => {
  await h?.close();
  await pulse?.close();
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

  await pulse.start();
  pulse.playTone();
  const heard = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.packets > 50 ? a : null;
  }, { timeoutMs: 30000, what: 'audio packets after PulseAudio appeared' });
  assert.ok(heard.packets > 50);
  await pulse.stopTone();
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
  pulse.playTone();
  const loud = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.level > 0.05 ? a : null;
  }, { timeoutMs: 20000, what: 'audio level above silence with the tone playing' });
  console.log(`# with the tone: ${JSON.stringify(loud)}`);

  await pulse.stopTone();
  const quiet = await waitFor(async () => {
    const a = await inboundAudio(page);
    return a && a.level < 0.01 ? a : null;
  }, { timeoutMs: 15000, what: 'audio level back to silence after the tone stopped' });
  console.log(`# after the tone: ${JSON.stringify(quiet)}`);
  assert.ok(quiet.packets >= loud.packets);
  await page.close();
});
