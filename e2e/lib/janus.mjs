// vnrit e2e: a real WHIP ingest for the tests — Debian's Janus gateway (VideoRoom plugin, HTTP
// and WebSocket APIs, admin API) with simple-whip-server in front of it, both started on
// loopback inside the test's private network namespace with private configs, and helpers to
// ask Janus what it sees. scripts/setup-whip.sh installs both.

import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Child, GaveUp, ROOT, freePort, waitFor } from './harness.mjs';

const JANUS_LIB = '/usr/lib/x86_64-linux-gnu/janus';
const WHIP_ROOT = join(ROOT, 'e2e', '.whip', 'root');
const WHIP_SRC = join(WHIP_ROOT, 'usr', 'share', 'simple-whip-server', 'src');
const WHIP_NODE_PATH = join(WHIP_ROOT, 'usr', 'lib', 'x86_64-linux-gnu', 'nodejs');
/** Debian's Janus JavaScript API (libjs-janus-gateway). */
export const JANUS_JS = '/usr/share/javascript/janus-gateway/janus.js';

/** Whether Janus and simple-whip-server are installed (scripts/setup-whip.sh). */
export function whipInstalled() {
  return existsSync('/usr/bin/janus') && existsSync(join(WHIP_SRC, 'server.js')) && existsSync(JANUS_JS);
}

/** The Janus config files: only VideoRoom, HTTP and WebSockets; ICE on the namespace's veth. */
function janusConfig(dir, { httpPort, adminPort, wsPort, room, adminSecret }) {
  for (const kind of ['plugins', 'transports']) mkdirSync(join(dir, kind), { recursive: true });
  mkdirSync(join(dir, 'none'), { recursive: true });
  copyFileSync(join(JANUS_LIB, 'plugins', 'libjanus_videoroom.so'), join(dir, 'plugins', 'libjanus_videoroom.so'));
  for (const t of ['libjanus_http.so', 'libjanus_websockets.so']) {
    copyFileSync(join(JANUS_LIB, 'transports', t), join(dir, 'transports', t));
  }
  writeFileSync(
    join(dir, 'janus.jcfg'),
    `general: {
  configs_folder = "${dir}"
  plugins_folder = "${dir}/plugins"
  transports_folder = "${dir}/transports"
  events_folder = "${dir}/none"
  loggers_folder = "${dir}/none"
  debug_level = 4
  admin_secret = "${adminSecret}"
  session_timeout = 60
}
media: {
  rtp_port_range = "30000-39999"
}
nat: {
  ice_enforce_list = "vn0"
  ignore_mdns = true
}
`,
  );
  writeFileSync(
    join(dir, 'janus.plugin.videoroom.jcfg'),
    `general: {
}
room-${room}: {
  description = "vnrit WHIP test"
  publishers = 4
  bitrate = 0
  videocodec = "h264"
  audiocodec = "opus"
}
`,
  );
  writeFileSync(
    join(dir, 'janus.transport.http.jcfg'),
    `general: {
  json = "plain"
  base_path = "/janus"
  http = true
  port = ${httpPort}
  ip = "127.0.0.1"
  https = false
}
admin: {
  admin_base_path = "/admin"
  admin_http = true
  admin_port = ${adminPort}
  admin_ip = "127.0.0.1"
  admin_https = false
}
`,
  );
  writeFileSync(
    join(dir, 'janus.transport.websockets.jcfg'),
    `general: {
  json = "plain"
  ws = true
  ws_port = ${wsPort}
  ws_ip = "127.0.0.1"
  wss = false
}
admin: {
  admin_ws = false
  admin_wss = false
}
`,
  );
}

/** POSTs JSON and returns the parsed answer (throws unless 200). */
async function postJson(url, body) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

const tx = () => randomBytes(6).toString('hex');

/** Janus + simple-whip-server on loopback; `restart()` brings both back on the same ports. */
export class WhipLab {
  /** @param {string} name log-file prefix */
  static async start(name, { room = 1234 } = {}) {
    const lab = new WhipLab(name, room);
    lab.httpPort = await freePort();
    lab.adminPort = await freePort();
    lab.wsPort = await freePort();
    lab.whipPort = await freePort();
    try {
      await lab.#startAll();
    } catch (err) {
      await lab.close();
      throw err;
    }
    return lab;
  }

  constructor(name, room) {
    this.name = name;
    this.room = room;
    this.adminSecret = randomBytes(8).toString('hex');
    this.dir = mkdtempSync(join(tmpdir(), 'vnrit-janus-'));
    this.janus = null;
    this.whip = null;
    this.generation = 0;
  }

  /** The Janus HTTP API base (the page's janus.js talks to it). */
  get janusUrl() {
    return `http://127.0.0.1:${this.httpPort}/janus`;
  }

  /** The WHIP endpoint URL for endpoint `id`. */
  endpoint(id) {
    return `http://127.0.0.1:${this.whipPort}/whip/endpoint/${id}`;
  }

  async #startAll() {
    this.generation += 1;
    const g = this.generation;
    const janusDir = join(this.dir, 'janus');
    janusConfig(janusDir, {
      httpPort: this.httpPort,
      adminPort: this.adminPort,
      wsPort: this.wsPort,
      room: this.room,
      adminSecret: this.adminSecret,
    });
    this.janus = new Child(`${this.name}-janus-${g}`, 'janus', ['-F', janusDir, '-C', join(janusDir, 'janus.jcfg'), '-o']);
    await waitFor(
      async () => {
        if (this.janus.exited) throw new GaveUp(`janus exited ${JSON.stringify(this.janus.exited)}: ${this.janus.tail}`);
        const info = await fetch(`${this.janusUrl}/info`, { signal: AbortSignal.timeout(2000) });
        return info.status === 200;
      },
      { timeoutMs: 20000, intervalMs: 200, what: 'Janus to answer /janus/info' },
    );

    // simple-whip-server reads ./config.js next to its sources: copy them beside our own config.
    const whipDir = join(this.dir, `whip-${g}`);
    mkdirSync(join(whipDir, 'src'), { recursive: true });
    for (const f of ['server.js', 'whip-janus.js']) copyFileSync(join(WHIP_SRC, f), join(whipDir, 'src', f));
    writeFileSync(
      join(whipDir, 'src', 'config.js'),
      `module.exports = { janus: { address: 'ws://127.0.0.1:${this.wsPort}' }, port: ${this.whipPort}, rest: '/whip', allowTrickle: true, strictETags: false, iceServers: [] };\n`,
    );
    writeFileSync(join(whipDir, 'package.json'), '{"type":"commonjs"}\n');
    const env = { ...process.env, NODE_PATH: `/usr/share/nodejs:${WHIP_NODE_PATH}`, DEBUG: 'janus.*,whip.*' };
    this.whip = new Child(`${this.name}-whip-${g}`, 'node', [join(whipDir, 'src', 'server.js')], env);
    await waitFor(
      async () => {
        if (this.whip.exited) throw new GaveUp(`simple-whip-server exited ${JSON.stringify(this.whip.exited)}: ${this.whip.tail}`);
        const res = await fetch(`http://127.0.0.1:${this.whipPort}/whip/endpoint/none`, {
          method: 'POST',
          headers: { 'content-type': 'application/sdp' },
          body: 'v=0\r\n',
          signal: AbortSignal.timeout(2000),
        });
        return res.status === 404;
      },
      { timeoutMs: 20000, intervalMs: 200, what: 'simple-whip-server to answer' },
    );
  }

  /** Creates WHIP endpoint `id` publishing into the room, with an optional bearer token. */
  async createEndpoint(id, token) {
    const body = { id, room: this.room, ...(token ? { token } : {}) };
    const res = await fetch(`http://127.0.0.1:${this.whipPort}/whip/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(5000),
    });
    if (res.status !== 200) throw new Error(`creating WHIP endpoint ${id} answered ${res.status}: ${await res.text()}`);
    return this.endpoint(id);
  }

  /** VideoRoom `listparticipants` through the plain Janus API: [{id, display, publisher}]. */
  async participants() {
    const session = (await postJson(this.janusUrl, { janus: 'create', transaction: tx() })).data.id;
    try {
      const handle = (
        await postJson(`${this.janusUrl}/${session}`, { janus: 'attach', plugin: 'janus.plugin.videoroom', transaction: tx() })
      ).data.id;
      const res = await postJson(`${this.janusUrl}/${session}/${handle}`, {
        janus: 'message',
        transaction: tx(),
        body: { request: 'listparticipants', room: this.room },
      });
      const data = res.plugindata?.data;
      if (!data || data.error) throw new Error(`listparticipants failed: ${JSON.stringify(res)}`);
      return data.participants ?? [];
    } finally {
      await postJson(`${this.janusUrl}/${session}`, { janus: 'destroy', transaction: tx() }).catch(() => {});
    }
  }

  /** Admin API: `handle_info` of every VideoRoom publisher handle. */
  async publisherHandles() {
    const admin = `http://127.0.0.1:${this.adminPort}/admin`;
    const ask = (path, janus) => postJson(`${admin}${path}`, { janus, transaction: tx(), admin_secret: this.adminSecret });
    const out = [];
    for (const s of (await ask('', 'list_sessions')).sessions ?? []) {
      for (const h of (await ask(`/${s}`, 'list_handles')).handles ?? []) {
        const info = (await ask(`/${s}/${h}`, 'handle_info')).info;
        if (info?.plugin === 'janus.plugin.videoroom' && info.plugin_specific?.type === 'publisher') out.push(info);
      }
    }
    return out;
  }

  /** Stops Janus and simple-whip-server (SIGTERM), then starts both again on the same ports. */
  async restart() {
    await this.#stopAll();
    await this.#startAll();
  }

  async #stopAll() {
    if (this.whip) await this.whip.stop();
    if (this.janus) await this.janus.stop(5000);
    this.whip = null;
    this.janus = null;
  }

  /** Stops everything and removes the private config directory. */
  async close() {
    await this.#stopAll();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
