// vnrit e2e: a viewer behind Janus — a page that subscribes to the VideoRoom's publisher with
// Debian's janus.js, plays its video (muted) and audio (unmuted, so Chromium measures its
// level), served from 127.0.0.1 together with janus.js; and helpers that read what it decoded.

import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { JANUS_JS } from './janus.mjs';
import { GaveUp, waitFor } from './harness.mjs';

/** The subscriber page for `room` on the Janus HTTP API at `janusUrl`. */
function subscriberPage(janusUrl, room) {
  return `<!doctype html><html><body style="margin:0;background:#000">
<video id="v" autoplay muted playsinline style="width:640px;height:360px"></video>
<audio id="a" autoplay></audio>
<script src="/janus.js"></script>
<script>
window.__sub = { state: 'init', errors: [] };
// janus.js asks webrtc-adapter only which browser this is.
const adapter = { browserDetails: { browser: 'chrome', version: 156 } };
Janus.init({ debug: false, dependencies: Janus.useDefaultDependencies({ adapter }), callback: () => {
  const janus = new Janus({
    server: ${JSON.stringify(janusUrl)},
    error: (e) => window.__sub.errors.push('janus: ' + e),
    success: () => janus.attach({
      plugin: 'janus.plugin.videoroom',
      error: (e) => window.__sub.errors.push('attach: ' + e),
      success: (handle) => {
        window.__sub.handle = handle;
        handle.send({ message: { request: 'listparticipants', room: ${room} }, success: (r) => {
          const pub = (r.participants || []).find((p) => p.publisher);
          if (!pub) { window.__sub.errors.push('no publisher in the room'); return; }
          window.__sub.state = 'joining';
          handle.send({ message: { request: 'join', room: ${room}, ptype: 'subscriber', streams: [{ feed: pub.id }] } });
        } });
      },
      onmessage: (msg, jsep) => {
        if (msg.error) window.__sub.errors.push('videoroom: ' + msg.error);
        if (!jsep) return;
        const handle = window.__sub.handle;
        handle.createAnswer({
          jsep,
          tracks: [{ type: 'data' }],
          success: (answer) => {
            window.__sub.state = 'answered';
            handle.send({ message: { request: 'start', room: ${room} }, jsep: answer });
          },
          error: (e) => window.__sub.errors.push('answer: ' + JSON.stringify(e)),
        });
      },
      onremotetrack: (track, mid, on) => {
        if (!on) return;
        const el = document.getElementById(track.kind === 'video' ? 'v' : 'a');
        el.srcObject = new MediaStream([track]); // autoplay (allowed by the test browser's flags)
        window.__sub.state = 'track';
      },
    }),
  });
} });
/** The subscriber's inbound-rtp stats of one kind, or null before there are any. */
window.__inbound = async (kind) => {
  const pc = window.__sub.handle?.webrtcStuff?.pc;
  if (!pc) return null;
  let found = null;
  (await pc.getStats()).forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === kind) found = r; });
  return found && JSON.parse(JSON.stringify(found));
};
/** framesDecoded of the inbound video. */
window.__framesDecoded = async () => (await window.__inbound('video'))?.framesDecoded ?? 0;
/** The centre pixel of the video as #rrggbb, or null before a frame. */
window.__centre = () => {
  const v = document.getElementById('v');
  if (!v.videoWidth) return null;
  const c = document.createElement('canvas');
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const d = g.getImageData(c.width >> 1, c.height >> 1, 1, 1).data;
  return '#' + [d[0], d[1], d[2]].map((x) => x.toString(16).padStart(2, '0')).join('');
};
</script></body></html>`;
}

/** Serves the subscriber page and Debian's janus.js on 127.0.0.1; `url` is the page. */
export async function startPageServer(janusUrl, room) {
  const janusJs = readFileSync(JANUS_JS);
  const server = createServer((req, res) => {
    if (req.url === '/janus.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(janusJs);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(subscriberPage(janusUrl, room));
    else res.writeHead(404).end();
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

/**
 * Opens the subscriber page in `browser` and waits until it decodes video frames (a page
 * error ends the wait at once); returns the page.
 */
export async function subscribe(browser, pageUrl, label) {
  const page = await browser.newPage();
  await page.goto(pageUrl, { timeout: 15000 });
  await waitFor(
    async () => {
      const sub = await page.evaluate(() => ({ ...window.__sub, handle: undefined }));
      if (sub.errors.length) throw new GaveUp(`the Janus subscriber (${label}) failed: ${sub.errors.join('; ')}`);
      return (await page.evaluate(() => window.__framesDecoded())) > 0;
    },
    { timeoutMs: 30000, intervalMs: 250, what: `the Janus subscriber (${label}) to decode a frame` },
  );
  return page;
}

/** The page's inbound audio: packets, level (0..1) and total energy, or null before any. */
export async function inboundAudio(page) {
  const r = await page.evaluate(() => window.__inbound('audio'));
  return r && { packets: r.packetsReceived ?? 0, level: r.audioLevel ?? 0, energy: r.totalAudioEnergy ?? 0 };
}

/** The page's video centre pixel as #rrggbb (null before a frame). */
export const centre = (page) => page.evaluate(() => window.__centre());

/** The page's decoded video frame count. */
export const framesDecoded = (page) => page.evaluate(() => window.__framesDecoded());
