// vnrit e2e: bounded media ports. With --udp-port N three pages decode at once and every
// selected pair (getStats) ends at port N on the server. With --udp-ports A-B each page uses
// its own port of the range, and a fourth page past the range gets a clear error.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, freePort, startServer, waitFor } from './lib/harness.mjs';
import { waitForColour } from './lib/page.mjs';
import { keepPeerConnections, selectedPair } from './lib/net.mjs';

let h;

before(async () => {
  h = await Harness.start('ports', { server: false });
});

after(async () => {
  await h?.close();
});

/** Collects the JSON messages the page's WebSocket receives into `into`. */
function recordServerMessages(page, into) {
  page.on('websocket', (ws) =>
    ws.on('framereceived', (f) => {
      try {
        into.push(JSON.parse(String(f.payload)));
      } catch {
        // not JSON
      }
    }),
  );
}

test('three viewers share the one port of --udp-port', { timeout: 150000 }, async () => {
  const port = await freePort(); // free for TCP a moment ago; UDP is almost always free too
  h.server = await startServer({ display: h.display, token: h.token, name: 'port-vnrit', extraArgs: ['--udp-port', String(port)] });
  h.setRoot('#c06020');
  const contexts = await Promise.all([0, 1, 2].map(() => h.browser.newContext()));
  const pages = await Promise.all(contexts.map((c) => c.newPage()));
  for (const p of pages) await p.addInitScript(keepPeerConnections);
  await Promise.all(pages.map((p) => p.goto(h.server.url, { timeout: 15000 })));
  await Promise.all(pages.map((p) => waitForColour(p, '#c06020', { timeoutMs: 30000 })));
  // Each page keeps decoding changes: no connection steals another's packets.
  h.setRoot('#2060c0');
  await Promise.all(pages.map((p) => waitForColour(p, '#2060c0', { timeoutMs: 10000 })));
  const pairs = [];
  for (const p of pages) {
    pairs.push(await waitFor(() => selectedPair(p), { timeoutMs: 10000, what: 'a selected candidate pair' }));
  }
  for (const pair of pairs) {
    assert.equal(pair.remote.port, port, `server end on the shared port: ${JSON.stringify(pairs)}`);
    assert.equal(pair.remote.protocol, 'udp', JSON.stringify(pair));
  }
  assert.equal(new Set(pairs.map((p) => p.local.port)).size, 3, 'three distinct browser ends');
  const stats = await h.stats();
  assert.equal(stats.viewers, 3, JSON.stringify(stats));
  await Promise.all(contexts.map((c) => c.close()));
  await h.server.child.stop();
  h.server = null;
});

test('three viewers use three ports of --udp-ports; a fourth is refused with a clear error', { timeout: 150000 }, async () => {
  // A range of three ports that were free a moment ago (consecutive, as a firewall rule would be).
  let first = (await freePort()) & ~3;
  if (first < 20000) first += 20000;
  const range = [first, first + 1, first + 2];
  h.server = await startServer({
    display: h.display,
    token: h.token,
    name: 'ports-vnrit',
    extraArgs: ['--udp-ports', `${range[0]}-${range[2]}`],
  });
  h.setRoot('#40c040');
  const contexts = await Promise.all(range.map(() => h.browser.newContext()));
  const pages = await Promise.all(contexts.map((c) => c.newPage()));
  for (const p of pages) await p.addInitScript(keepPeerConnections);
  // One after the other: each takes the lowest free port of the range.
  for (const p of pages) {
    await p.goto(h.server.url, { timeout: 15000 });
    await waitForColour(p, '#40c040', { timeoutMs: 30000 });
  }
  const pairs = [];
  for (const p of pages) {
    pairs.push(await waitFor(() => selectedPair(p), { timeoutMs: 10000, what: 'a selected candidate pair' }));
  }
  const ports = pairs.map((pair) => pair.remote.port).sort((a, b) => a - b);
  assert.deepEqual(ports, range, `each viewer on its own port of the range: ${JSON.stringify(pairs)}`);
  for (const pair of pairs) assert.equal(pair.remote.protocol, 'udp', JSON.stringify(pair));

  const extra = await h.browser.newContext();
  const fourth = await extra.newPage();
  const messages = [];
  recordServerMessages(fourth, messages);
  await fourth.goto(h.server.url, { timeout: 15000 });
  const refusal = await waitFor(() => messages.find((m) => m.type === 'error'), {
    timeoutMs: 15000,
    what: 'an error message for the viewer past the range',
  });
  assert.match(refusal.message, /--udp-ports/, JSON.stringify(refusal));
  await extra.close();

  // Ports come back when viewers leave: a new page gets the freed port.
  await contexts[1].close();
  const again = await h.browser.newContext();
  const page = await again.newPage();
  await page.addInitScript(keepPeerConnections);
  await waitFor(
    async () => {
      await page.goto(h.server.url, { timeout: 15000 });
      return waitForColour(page, '#40c040', { timeoutMs: 10000 }).then(
        () => true,
        () => false,
      );
    },
    { timeoutMs: 40000, intervalMs: 500, what: 'a new viewer to stream after one left' },
  );
  const pair = await waitFor(() => selectedPair(page), { timeoutMs: 10000, what: 'a selected candidate pair' });
  assert.ok(range.includes(pair.remote.port), JSON.stringify(pair));
  await Promise.all([contexts[0], contexts[2], again].map((c) => c.close()));
  await h.server.child.stop();
  h.server = null;
});
