// vnrit e2e: network helpers for the TURN / port-range / TCP tests — a real coturn started
// inside the test's private namespace, a STUN probe that says when it answers, nftables rules
// that block UDP, and the selected ICE candidate pair of a page (from getStats).

import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Child, GaveUp, waitFor } from './harness.mjs';

/** The namespace's veth address (scripts/netns.sh): coturn listens and relays here. */
export const VETH_ADDR = '10.213.0.1';

/**
 * Sends one STUN Binding request to `host:port` over UDP and resolves true when any STUN
 * response (success or error) comes back within `timeoutMs`, false otherwise.
 */
export function stunAnswers(host, port, timeoutMs = 500) {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    const txid = randomBytes(12);
    // type 0x0001 (Binding request), length 0, magic cookie, transaction id
    const msg = Buffer.concat([Buffer.from([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42]), txid]);
    const done = (ok) => {
      clearTimeout(timer);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('error', () => done(false));
    sock.on('message', (buf) => done(buf.length >= 20 && buf.subarray(8, 20).equals(txid)));
    sock.send(msg, port, host);
  });
}

/**
 * Starts Debian's coturn (`turnserver`) on VETH_ADDR:`port`, relaying on VETH_ADDR, with either
 * a static user (`user: 'name:password'`) or a shared secret (`secret`), and waits until it
 * answers STUN.
 * @param {{port: number, user?: string, secret?: string, name?: string}} o
 */
export async function startCoturn({ port, user, secret, name = 'coturn' }) {
  const dir = mkdtempSync(join(tmpdir(), 'vnrit-coturn-'));
  const args = [
    '-n',
    `--listening-ip=${VETH_ADDR}`,
    `--relay-ip=${VETH_ADDR}`,
    `--listening-port=${port}`,
    '--min-port=49160',
    '--max-port=49260',
    '--realm=vnrit.test',
    '--fingerprint',
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--log-file=stdout',
    '--simple-log',
    `--pidfile=${join(dir, 'turnserver.pid')}`,
    `--db=${join(dir, 'turndb')}`,
    // relayed peers live on the veth address too; allow exactly that one
    `--allowed-peer-ip=${VETH_ADDR}`,
    '--verbose',
  ];
  if (secret) args.push('--use-auth-secret', `--static-auth-secret=${secret}`);
  else if (user) args.push('--lt-cred-mech', `--user=${user}`);
  const child = new Child(name, 'turnserver', args);
  const stop = child.stop.bind(child);
  child.stop = async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      async () => {
        if (child.exited) throw new GaveUp(`turnserver exited ${JSON.stringify(child.exited)}: ${child.stdout.slice(-2000)}${child.tail}`);
        return stunAnswers(VETH_ADDR, port);
      },
      { timeoutMs: 15000, intervalMs: 200, what: `coturn to answer STUN on ${VETH_ADDR}:${port}` },
    );
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}

/**
 * An init script (page.addInitScript) that keeps every RTCPeerConnection the page makes in
 * `window.__pcs`, so a test can read its stats.
 */
export function keepPeerConnections() {
  const Native = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(config) {
      super(config);
      window.__pcs.push({ pc: this, config: JSON.parse(JSON.stringify(config ?? {})) });
    }
  };
}

/**
 * The selected candidate pair of the page's newest peer connection, or null before one is
 * selected: `{local, remote}` with each side's candidateType, protocol, address and port,
 * plus the `iceTransportPolicy` the page configured.
 * @param {import('playwright-core').Page} page
 */
export function selectedPair(page) {
  return page.evaluate(async () => {
    const entry = window.__pcs?.at(-1);
    if (!entry) return null;
    const stats = [...(await entry.pc.getStats()).values()];
    const transport = stats.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
    const pair = transport
      ? stats.find((s) => s.id === transport.selectedCandidatePairId)
      : stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
    if (!pair) return null;
    const side = (id) => {
      const c = stats.find((s) => s.id === id);
      return c && {
        candidateType: c.candidateType,
        protocol: c.protocol,
        address: c.address,
        port: c.port,
        relayProtocol: c.relayProtocol,
      };
    };
    return {
      local: side(pair.localCandidateId),
      remote: side(pair.remoteCandidateId),
      iceTransportPolicy: entry.config.iceTransportPolicy ?? null,
    };
  });
}

/**
 * Runs `nft -f -` with `script`; throws with nft's message on failure.
 * @param {string} script
 */
export function nft(script) {
  const r = spawnSync('nft', ['-f', '-'], { input: script, encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`nft failed (${r.status}): ${r.error?.message ?? r.stderr}`);
}

/** Runs `ip` with `args`; throws with its message on failure. */
function ip(args) {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
}

/**
 * A second network namespace joined to the test's by a veth pair, `here` (a /24 address) on
 * this side's end and `there` on the other, with a default route there back over the pair.
 * It gives vnrit's namespace another address, and a place to run a browser behind its own
 * link (`tc` on `veth`, this side's end, shapes what flows to it). Only ever call it inside the
 * private namespace of e2e/run.sh. `tag` (two or three letters) keeps the names of concurrent
 * tests apart. Returns the namespace and device names and `remove()`, safe to call twice.
 * @param {{tag: string, here: string, there: string}} opts
 */
export function sideNamespace({ tag, here, there }) {
  if (process.env.VNRIT_IN_NETNS !== '1') throw new Error('sideNamespace changes network interfaces: run the test through e2e/run.sh');
  const id = process.pid % 100000;
  // Interface names must stay under 16 characters.
  const side = { netns: `vnrit-${tag}-${process.pid}`, veth: `v${tag}${id}a`, peer: `v${tag}${id}b` };
  side.remove = () => {
    spawnSync('ip', ['netns', 'del', side.netns], { stdio: 'ignore', timeout: 10000 });
    spawnSync('ip', ['link', 'del', side.veth], { stdio: 'ignore', timeout: 10000 });
  };
  side.remove();
  ip(['netns', 'add', side.netns]);
  ip(['link', 'add', side.veth, 'type', 'veth', 'peer', 'name', side.peer]);
  ip(['addr', 'add', `${here}/24`, 'dev', side.veth]);
  ip(['link', 'set', side.veth, 'up']);
  ip(['link', 'set', side.peer, 'netns', side.netns]);
  ip(['-n', side.netns, 'addr', 'add', `${there}/24`, 'dev', side.peer]);
  ip(['-n', side.netns, 'link', 'set', side.peer, 'up']);
  ip(['-n', side.netns, 'link', 'set', 'lo', 'up']);
  // Chromium wants a default route to gather host candidates; it ends in the test's namespace.
  ip(['-n', side.netns, 'route', 'add', 'default', 'dev', side.peer]);
  return side;
}
