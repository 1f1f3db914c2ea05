// vnrit e2e: the page against a reference peer that follows PROTOCOL.md (lib/peer.mjs):
// what the page sends (offer with recvonly video+audio and the 'input' data channel,
// trickled candidates as RTCIceCandidate JSON), that it queues candidates arriving before the
// answer, shows server errors, replaces a dropped session with a fresh one, and offers a
// working mute control once an audio track delivers sound.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, waitFor, ARTIFACTS } from './lib/harness.mjs';
import { startStaticServer } from './lib/static.mjs';
import { startReferencePeer } from './lib/peer.mjs';
import { status, waitForColour } from './lib/page.mjs';
import { join } from 'node:path';

let browser;
let peer;
let stand;

before(async () => {
  browser = await launchBrowser();
  peer = await startReferencePeer(browser);
  stand = await startStaticServer({ onSocket: peer.onSocket });
});

after(async () => {
  await stand?.close();
  await browser?.close().catch(() => {});
});

test('the page negotiates per the protocol, decodes, shows errors and reconnects', { timeout: 60000 }, async () => {
  await peer.setColour('#ff0000');
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (/remote ICE candidate/.test(msg.text())) pageErrors.push(msg.text());
  });
  await page.goto(`${stand.base}/?token=abc`, { timeout: 15000 });
  await waitForColour(page, '#ff0000', { timeoutMs: 15000 });
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 5000, what: 'connected' });

  const first = peer.sessions[0];
  assert.ok(!first.error, first.error);
  const offer = first.received.find((m) => m.type === 'offer');
  assert.ok(offer, 'the page sent an offer');
  const sections = offer.sdp.split(/\r\n(?=m=)/).slice(1).map((sec) => ({
    kind: sec.split(' ')[0].slice(2),
    direction: (sec.match(/^a=(recvonly|sendrecv|sendonly|inactive)$/m) || [])[1],
    sctp: /webrtc-datachannel/.test(sec),
  }));
  assert.deepEqual(sections, [
    { kind: 'video', direction: 'recvonly', sctp: false },
    { kind: 'audio', direction: 'recvonly', sctp: false },
    { kind: 'application', direction: undefined, sctp: true },
  ]);
  const candidates = first.received.filter((m) => m.type === 'candidate');
  assert.ok(candidates.length > 0, 'the page trickled candidates');
  for (const c of candidates.filter((m) => m.candidate)) {
    assert.match(c.candidate.candidate, /^candidate:/);
    assert.ok('sdpMid' in c.candidate && 'sdpMLineIndex' in c.candidate, JSON.stringify(c));
  }
  assert.ok(first.candidatesBeforeAnswer > 0, 'the reference peer sent candidates before its answer');

  first.ws.send(JSON.stringify({ type: 'error', message: 'the desk is on fire' }));
  const shown = await waitFor(
    async () => {
      const s = await status(page);
      return s?.state === 'error' ? s : null;
    },
    { timeoutMs: 5000, what: 'the server error on screen' },
  );
  assert.equal(shown.text, 'server: the desk is on fire');
  await page.screenshot({ path: join(ARTIFACTS, 'protocol-error.png') });

  await peer.setColour('#0000ff');
  first.ws.close();
  await waitFor(() => peer.sessions.length >= 2, { timeoutMs: 5000, what: 'a second session' });
  await waitForColour(page, '#0000ff', { timeoutMs: 15000 });
  await waitFor(async () => (await status(page))?.state === 'connected', { timeoutMs: 5000, what: 'connected again' });
  await waitFor(async () => ['closed', 'failed', 'disconnected'].includes(await peer.state(0)), {
    timeoutMs: 15000,
    what: 'the first peer connection to be closed by the page',
  });
  assert.equal(peer.sessions.length, 2, 'exactly one reconnect');
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test('with an audio track the mute control appears and unmutes and mutes the stream', { timeout: 60000 }, async () => {
  await peer.setColour('#00ff00');
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${stand.base}/`, { timeout: 15000 });
  await waitForColour(page, '#00ff00', { timeoutMs: 15000 });
  const audio = page.locator('#tb-audio');
  await waitFor(() => audio.isVisible(), { timeoutMs: 10000, what: 'the audio control to appear' });
  assert.equal(await audio.isEnabled(), true);
  assert.equal(await audio.getAttribute('aria-label'), 'Unmute audio');
  assert.equal(await page.evaluate(() => document.getElementById('screen').muted), true, 'starts muted (autoplay)');
  await audio.click();
  assert.equal(await page.evaluate(() => document.getElementById('screen').muted), false);
  assert.equal(await audio.getAttribute('aria-pressed'), 'true');
  assert.equal(await audio.getAttribute('aria-label'), 'Mute audio');
  assert.equal(await page.evaluate(() => document.getElementById('screen').paused), false, 'still playing unmuted');
  await audio.click();
  assert.equal(await page.evaluate(() => document.getElementById('screen').muted), true);
  assert.equal(await audio.getAttribute('aria-pressed'), 'false');
  assert.deepEqual(pageErrors, []);
  await page.close();
});
