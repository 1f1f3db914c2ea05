// vnrit e2e: faults. A viewer whose network vanishes without a goodbye (its whole browser
// frozen with SIGSTOP: no WebSocket close, no ICE, no DTLS) is reaped by the server within the
// ICE timeout and the keys and button it held are released in X. When the X server dies,
// vnrit exits with a clear message and the page says what happened.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { Harness, launchBrowser, waitFor } from './lib/harness.mjs';
import { status, waitForColour } from './lib/page.mjs';
import { heldInX, nothingHeld } from './lib/xheld.mjs';

/** Server-side ICE failure (about 30 s in webrtc-rs) plus a margin; the brief's bound. */
const REAP_LIMIT_MS = 40000;

let h;

before(async () => {
  h = await Harness.start('faults');
});

after(async () => {
  await h?.close();
});

/** Pids of every live descendant of `root` (from /proc). */
function descendants(root) {
  const parent = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // comm may contain spaces and parentheses: the ppid is the second field after the last ')'.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(entry), ppid);
    } catch {
      // gone meanwhile
    }
  }
  const out = [];
  const walk = (pid) => {
    for (const [child, ppid] of parent) {
      if (ppid === pid) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(root);
  return out;
}

/** The Chromium processes this test runner started (the browser and all its helpers). */
function chromiumPids() {
  const skip = new Set([h.server.child.proc.pid, h.xvfb.child.proc.pid]);
  return descendants(process.pid).filter((pid) => {
    if (skip.has(pid)) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('chromium');
    } catch {
      return false;
    }
  });
}

function signalAll(pids, sig) {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

test('a viewer whose network vanishes is reaped within the ICE timeout and its keys are released', { timeout: 150000 }, async () => {
  h.setRoot('#20a040');
  assert.ok(nothingHeld(h.display), `held before the test: ${JSON.stringify(heldInX(h.display))}`);
  const page = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, '#20a040', { timeoutMs: 20000 });
  await waitFor(() => page.evaluate(() => window.vnrit.session?.input?.readyState === 'open'), {
    timeoutMs: 10000,
    what: 'the input data channel to open',
  });

  // Press and hold (no release) a key and the left button, through the data channel.
  await page.mouse.move(480, 300);
  await page.mouse.down();
  await page.keyboard.down('KeyQ');
  const held = await waitFor(
    () => {
      const x = heldInX(h.display);
      return x.keys.length > 0 && x.buttons.includes(1) ? x : null;
    },
    { timeoutMs: 10000, what: 'a key and button 1 held in X' },
  );
  const s = await h.stats();
  assert.equal(s.viewers, 1, JSON.stringify(s));

  // The network vanishes: every Chromium process freezes. Its sockets stay open (the kernel
  // keeps them), so the WebSocket does not close; nothing answers ICE or DTLS any more.
  const frozen = chromiumPids();
  assert.ok(frozen.length > 0, 'found the Chromium processes');
  const t0 = Date.now();
  signalAll(frozen, 'SIGSTOP');
  try {
    // Held input goes as soon as ICE calls the viewer disconnected (about 5 s) ...
    await waitFor(() => nothingHeld(h.display), {
      timeoutMs: REAP_LIMIT_MS,
      intervalMs: 250,
      what: "no key or button held in X",
    });
    const released = Date.now() - t0;
    // ... and the session itself when ICE gives up (about 30 s).
    await waitFor(
      async () => {
        const x = await h.stats();
        return x.viewers === 0 && x.encoders === 0 && x.sessions.length === 0;
      },
      { timeoutMs: REAP_LIMIT_MS, intervalMs: 250, what: 'the frozen viewer to be reaped (no viewers, encoder stopped)' },
    );
    const reaped = Date.now() - t0;
    console.log(`# frozen viewer: input released after ${released} ms, session reaped after ${reaped} ms (held before: ${JSON.stringify(held)})`);
    assert.ok(nothingHeld(h.display), `held again after the reap: ${JSON.stringify(heldInX(h.display))}`);
  } finally {
    signalAll(frozen, 'SIGCONT');
  }
  // That browser is of no further use (its page's state is stale): replace it.
  await Promise.race([h.browser.close().catch(() => {}), new Promise((r) => setTimeout(r, 10000))]);
  h.browser = await launchBrowser();
  // The server still serves a new viewer.
  const again = await h.browser.newPage();
  await again.goto(h.server.url, { timeout: 15000 });
  await waitForColour(again, '#20a040', { timeoutMs: 20000 });
  await again.close();
});

test('when the X server dies, vnrit exits with a clear message and the page says why', { timeout: 90000 }, async () => {
  h.setRoot('#c08020');
  const page = await h.browser.newPage();
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, '#c08020', { timeoutMs: 20000 });
  // Every text the status pill shows from now on (some are brief).
  await page.evaluate(() => {
    const el = document.getElementById('status');
    window.statusLog = [];
    new MutationObserver(() => window.statusLog.push(`${el.dataset.state}: ${el.textContent}`)).observe(el, {
      attributes: true,
      childList: true,
      characterData: true,
      subtree: true,
    });
  });

  await h.xvfb.child.stop();
  h.xvfb = null;
  const exited = await waitFor(() => h.server.child.exited, { timeoutMs: 10000, what: 'vnrit to exit without its X server' });
  assert.equal(exited.code, 1, `exit ${JSON.stringify(exited)}`);
  assert.match(h.server.child.tail, /vnrit: lost the X server at :\d+/);

  // The page told why the session ended ...
  const log = await waitFor(
    async () => {
      const l = await page.evaluate(() => window.statusLog);
      return l.some((t) => /^reconnecting: reconnecting in \d+ s \(vnrit stopped: lost the X server/.test(t)) ? l : null;
    },
    { timeoutMs: 10000, what: 'the status pill to say the X server was lost' },
  );
  console.log(`# status texts: ${JSON.stringify(log.slice(0, 4))}`);
  // ... and, once the server cannot be reached, a full-page message keeps the reason in view.
  await waitFor(async () => (await page.locator('#notice').getAttribute('data-kind')) === 'gone', {
    timeoutMs: 15000,
    what: 'the full-page "server gone" message',
  });
  const text = await page.locator('#notice-text').textContent();
  assert.match(text, /not answering/);
  assert.match(text, /Its last message: “vnrit stopped: lost the X server at :\d+/);
  assert.equal((await status(page)).state, 'reconnecting');
  await h.screenshot(page, 'x-server-gone');
  await page.close();
  await h.server.child.stop();
  h.server = null;
});
