// vnrit e2e: TURN through a real coturn inside the private namespace. vnrit runs with
// --ice-relay-only, so both ends use relay candidates only; the page must decode the desktop
// and its selected candidate pair must be relay on the browser side and coturn's relay address
// on the server side. Once with a static TURN user, once with shared-secret credentials.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, freePort, startServer, waitFor } from './lib/harness.mjs';
import { waitForColour } from './lib/page.mjs';
import { VETH_ADDR, keepPeerConnections, selectedPair, startCoturn } from './lib/net.mjs';

let h;

before(async () => {
  h = await Harness.start('turn', { server: false });
});

after(async () => {
  await h?.close();
});

/**
 * Starts coturn with `coturnAuth` and vnrit with `vnritArgs` (plus --turn and
 * --ice-relay-only), opens the page and checks that the stream flows through the relay.
 * Returns the hello's ICE servers.
 */
async function relayedStream(label, coturnAuth, vnritArgs, colour) {
  const turnPort = await freePort();
  const coturn = await startCoturn({ port: turnPort, name: `turn-${label}-coturn`, ...coturnAuth });
  let context;
  try {
    h.server = await startServer({
      display: h.display,
      token: h.token,
      name: `turn-${label}-vnrit`,
      extraArgs: ['--turn', `turn:${VETH_ADDR}:${turnPort}`, '--ice-relay-only', ...vnritArgs],
    });
    h.setRoot(colour);
    context = await h.browser.newContext();
    const page = await context.newPage();
    const hello = new Promise((resolve) => {
      page.on('websocket', (ws) =>
        ws.on('framereceived', (f) => {
          try {
            const msg = JSON.parse(String(f.payload));
            if (msg.type === 'hello') resolve(msg);
          } catch {
            // not JSON: not the hello
          }
        }),
      );
    });
    await page.addInitScript(keepPeerConnections);
    await page.goto(h.server.url, { timeout: 15000 });
    await waitForColour(page, colour, { timeoutMs: 30000 });
    await h.screenshot(page, label);

    const pair = await waitFor(() => selectedPair(page), { timeoutMs: 10000, what: 'a selected candidate pair' });
    assert.equal(pair.iceTransportPolicy, 'relay', `the page must be relay-only: ${JSON.stringify(pair)}`);
    assert.equal(pair.local.candidateType, 'relay', `browser side: ${JSON.stringify(pair)}`);
    assert.equal(pair.local.address, VETH_ADDR, `browser relay on coturn: ${JSON.stringify(pair)}`);
    // The server is relay-only too: the browser's remote end is coturn's relay port for the
    // server's allocation, never the server's own 127.0.0.1 socket.
    assert.equal(pair.remote.address, VETH_ADDR, `server side relayed: ${JSON.stringify(pair)}`);
    assert.ok(pair.remote.port >= 49160 && pair.remote.port <= 49260, `server side relayed: ${JSON.stringify(pair)}`);
    assert.notEqual(pair.remote.port, pair.local.port, 'two allocations, one per end');

    const msg = await hello;
    assert.equal(msg.iceTransportPolicy, 'relay');
    return msg.iceServers;
  } finally {
    await context?.close().catch(() => {});
    await h.server?.child.stop();
    h.server = null;
    await coturn.stop();
  }
}

test('relay-only through coturn with a static TURN user', { timeout: 120000 }, async () => {
  const servers = await relayedStream('static', { user: 'viewer:pass-word' }, ['--turn-user', 'viewer', '--turn-password', 'pass-word'], '#c03080');
  const turn = servers.find((s) => s.urls.some((u) => u.startsWith('turn:')));
  assert.equal(turn.username, 'viewer');
  assert.equal(turn.credential, 'pass-word');
});

test('relay-only through coturn with shared-secret (TURN REST) credentials', { timeout: 120000 }, async () => {
  const secret = 'e2e-shared-secret-1234';
  const servers = await relayedStream('secret', { secret }, ['--turn-secret', secret], '#30a0c0');
  const turn = servers.find((s) => s.urls.some((u) => u.startsWith('turn:')));
  const m = /^(\d+):vnrit$/.exec(turn.username);
  assert.ok(m, `username is <expiry>:vnrit: ${turn.username}`);
  const expiry = Number(m[1]) - Date.now() / 1000;
  assert.ok(expiry > 23 * 3600 && expiry <= 24 * 3600 + 5, `expires in about 24 h: ${expiry}`);
  assert.notEqual(turn.credential, secret, 'the secret itself never reaches the page');
});

test('relay-only through coturn while all media shares one --udp-port', { timeout: 120000 }, async () => {
  // The server's TURN traffic leaves from each connection's own socket; the rest of the shared
  // port machinery must not get in its way.
  const udpPort = await freePort();
  await relayedStream('udp-port', { user: 'viewer:pass-word' }, ['--turn-user', 'viewer', '--turn-password', 'pass-word', '--udp-port', String(udpPort)], '#60c0a0');
});
