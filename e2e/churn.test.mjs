// vnrit e2e: churn. 200 viewers come and go — most of them cut off abruptly at every stage of
// signalling, the rest real pages that stream and are then closed or killed — and afterwards the
// server still streams, its threads, file descriptors and memory are back near where they
// started, and no key or button is held in X (some viewers held some when they went). Nothing a
// viewer had may leak.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import WebSocket from 'ws';
import { Harness, waitFor } from './lib/harness.mjs';
import { waitForColour } from './lib/page.mjs';
import { heldInX } from './lib/xheld.mjs';

const SIGNAL_ONLY = 180; // sockets cut during negotiation
const PAGES = 20; // real viewers that stream, then vanish
const PARALLEL = 6;

let h;

before(async () => {
  h = await Harness.start('churn');
});

after(async () => {
  await h?.close();
});

function usage(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
  return { threads: field('Threads'), rssKiB: field('VmRSS'), fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function idle() {
  await waitFor(
    async () => {
      const s = await h.stats();
      return s.viewers === 0 && s.encoders === 0 && s.sessions.length === 0;
    },
    { timeoutMs: 30000, intervalMs: 250, what: 'no viewers, no encoder, no sessions' },
  );
}

/** One viewer that only signals, and is cut off at `stage`. */
function signalOnly(offerSdp, stage) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${h.server.port}/ws?token=${h.token}`, {
      headers: { Origin: `http://127.0.0.1:${h.server.port}` },
    });
    const done = () => {
      ws.terminate();
      resolve();
    };
    const timer = setTimeout(done, 5000);
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data));
      if (msg.type === 'hello') {
        if (stage === 'hello') return done();
        ws.send(JSON.stringify({ type: 'offer', sdp: offerSdp }));
        if (stage === 'offer') return done();
        if (stage === 'garbage') {
          ws.send('{"type":"candidate","candidate":{"candidate":"candidate:x 1 udp 1 10.213.0.99 9 typ host","sdpMid":"0","sdpMLineIndex":0}}');
          ws.send('\u0000\u0001 not json');
          ws.send(Buffer.from([1, 2, 3]));
        }
      } else if (msg.type === 'answer') {
        // 'answer': gone right after the answer; 'garbage': after noise and the answer.
        setTimeout(done, stage === 'answer' ? 0 : 50);
      }
    });
  });
}

async function pool(items, worker) {
  const queue = [...items];
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (queue.length) await worker(queue.shift());
    }),
  );
}

test('200 viewers come and go; nothing leaks and the server still streams', { timeout: 420000 }, async () => {
  const pid = h.server.child.proc.pid;
  h.setRoot('#3060c0');

  // Warm up once, so lazily created things (pipeline, encoder, runtime threads) exist.
  const warm = await h.browser.newPage();
  await warm.goto(h.server.url, { timeout: 15000 });
  await waitForColour(warm, '#3060c0', { timeoutMs: 20000 });
  await warm.close();
  await idle();
  const before = usage(pid);

  // A real offer, made by the browser, reused by the signal-only viewers.
  const maker = await h.browser.newPage();
  await maker.goto(h.server.url, { timeout: 15000 });
  const offerSdp = await maker.evaluate(async () => {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    pc.createDataChannel('input', { ordered: true });
    const offer = await pc.createOffer();
    pc.close();
    return offer.sdp;
  });
  await maker.close();

  const stages = ['hello', 'offer', 'answer', 'garbage'];
  await pool(
    Array.from({ length: SIGNAL_ONLY }, (_, i) => stages[i % stages.length]),
    (stage) => signalOnly(offerSdp, stage),
  );

  // Real viewers: every other one vanishes without a goodbye (its whole browser context is torn
  // down), and every fourth holds a key and a mouse button down in X when it goes.
  let pressed = 0;
  for (let i = 0; i < PAGES; i += 1) {
    const context = await h.browser.newContext();
    const page = await context.newPage();
    await page.goto(h.server.url, { timeout: 15000 });
    await waitForColour(page, '#3060c0', { timeoutMs: 20000 });
    if (i % 4 === 1) {
      await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
        timeoutMs: 10000,
        what: 'the input data channel to open',
      });
      await page.mouse.move(200, 200);
      await page.mouse.down({ button: i % 8 === 1 ? 'left' : 'right' });
      await page.keyboard.down(i % 8 === 1 ? 'KeyX' : 'ShiftLeft');
      await waitFor(
        () => {
          const x = heldInX(h.display);
          return x.keys.length > 0 && x.buttons.length > 0;
        },
        { timeoutMs: 10000, what: `viewer ${i}: a key and a button held in X` },
      );
      pressed += 1;
    }
    if (i % 2) await page.close({ runBeforeUnload: false });
    await context.close();
  }
  assert.ok(pressed >= PAGES / 4, `only ${pressed} viewers held keys`);

  await idle();
  // Let closed peers finish their teardown before measuring.
  await new Promise((r) => setTimeout(r, 3000));
  const afterChurn = usage(pid);
  const report = `before ${JSON.stringify(before)}, after ${JSON.stringify(afterChurn)}`;
  console.log(`# churn: ${report}`);
  assert.ok(afterChurn.threads <= before.threads + 4, `threads grew: ${report}`);
  assert.ok(afterChurn.fds <= before.fds + 8, `file descriptors leaked: ${report}`);
  assert.ok(afterChurn.rssKiB <= before.rssKiB + 64 * 1024, `memory grew by over 64 MiB: ${report}`);
  // Nothing any of them pressed is still down.
  assert.deepEqual(heldInX(h.display), { keys: [], buttons: [] }, 'no key or button held in X after the churn');

  // And it still serves a new viewer.
  h.setRoot('#c03060');
  const last = await h.browser.newPage();
  await last.goto(h.server.url, { timeout: 15000 });
  await waitForColour(last, '#c03060', { timeoutMs: 20000 });
  await last.close();
});
