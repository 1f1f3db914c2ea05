// vnrit e2e: a network that drops all UDP (nftables rules inside the private namespace).
// With --tcp-only the page still decodes, over an ICE-TCP candidate pair.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { Harness, startServer, waitFor } from './lib/harness.mjs';
import { waitForColour } from './lib/page.mjs';
import { keepPeerConnections, nft, selectedPair } from './lib/net.mjs';

const TABLE = 'vnrit_e2e_noudp';
let h;
let blocked = false;

before(async () => {
  h = await Harness.start('tcp', { server: false });
});

after(async () => {
  if (blocked) nft(`delete table inet ${TABLE}\n`);
  await h?.close();
});

/** Resolves true if a datagram sent to a local UDP socket arrives within 500 ms. */
function udpGetsThrough() {
  return new Promise((resolve) => {
    const rx = createSocket('udp4');
    const tx = createSocket('udp4');
    const done = (ok) => {
      clearTimeout(timer);
      rx.close();
      tx.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), 500);
    rx.on('message', () => done(true));
    rx.bind(0, '127.0.0.1', () => tx.send('x', rx.address().port, '127.0.0.1'));
  });
}

test('with UDP dropped, --tcp-only streams over ICE-TCP', { timeout: 120000 }, async () => {
  assert.equal(await udpGetsThrough(), true, 'UDP works before the rules');
  nft(`table inet ${TABLE} {
  chain input { type filter hook input priority 0; policy accept; meta l4proto udp drop; }
  chain output { type filter hook output priority 0; policy accept; meta l4proto udp drop; }
}
`);
  blocked = true;
  assert.equal(await udpGetsThrough(), false, 'nftables must drop UDP in the namespace');

  h.server = await startServer({ display: h.display, token: h.token, name: 'tcp-vnrit', extraArgs: ['--tcp-only'] });
  h.setRoot('#8040f0');
  const context = await h.browser.newContext();
  const page = await context.newPage();
  await page.addInitScript(keepPeerConnections);
  await page.goto(h.server.url, { timeout: 15000 });
  await waitForColour(page, '#8040f0', { timeoutMs: 30000 });
  h.setRoot('#f0a020');
  await waitForColour(page, '#f0a020', { timeoutMs: 10000 });
  await h.screenshot(page, 'tcp-only');

  const pair = await waitFor(() => selectedPair(page), { timeoutMs: 10000, what: 'a selected candidate pair' });
  assert.equal(pair.local.protocol, 'tcp', JSON.stringify(pair));
  assert.equal(pair.remote.protocol, 'tcp', JSON.stringify(pair));
  await context.close();
  await h.server.child.stop();
  h.server = null;
});
