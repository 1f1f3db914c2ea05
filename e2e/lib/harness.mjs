// vnrit e2e harness: starts a private Xvfb, the real vnrit server and Debian's headless
// Chromium, and kills all of them at the end (also when a test fails or the runner dies).
// Every wait here is bounded and reports what it waited for.

import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

/** The repository root (two levels above this file). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Where screenshots and logs go (gitignored). */
export const ARTIFACTS = join(ROOT, 'e2e', 'artifacts');
/** The server binary under test; VNRIT_BIN overrides. */
export const VNRIT_BIN = process.env.VNRIT_BIN || join(ROOT, 'target', 'release', 'vnrit');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Chromium flags measured to work here (see FIELD-NOTES.md). */
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

mkdirSync(ARTIFACTS, { recursive: true });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An error that stops waitFor at once (e.g. the awaited process died). */
export class GaveUp extends Error {}

/**
 * Polls `probe` until it returns a truthy value, at most `timeoutMs`. Errors thrown by the
 * probe count as "not yet", except GaveUp, which ends the wait.
 * @template T
 * @param {() => Promise<T>|T} probe
 * @param {{timeoutMs?: number, intervalMs?: number, what: string}} opts
 * @returns {Promise<T>} the first truthy value
 */
export async function waitFor(probe, { timeoutMs = 10000, intervalMs = 100, what }) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (err) {
      if (err instanceof GaveUp) throw err;
      last = err;
    }
    if (Date.now() >= deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${detail})`);
    }
    await sleep(intervalMs);
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

/** An X display number derived from the pid whose lock file and socket are absent. */
export function freeDisplay() {
  for (let i = 0; i < 800; i++) {
    const n = 100 + ((process.pid + i * 7) % 800);
    if (!existsSync(`/tmp/.X${n}-lock`) && !existsSync(`/tmp/.X11-unix/X${n}`)) return n;
  }
  throw new Error('no free X display number between :100 and :899');
}

/** Every child this process started and has not reaped yet; killed on exit no matter what. */
const children = new Set();
function killAllSync() {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    killAllSync();
    process.exit(130);
  });
}

/** A child process with its output in a log file under e2e/artifacts/, killed when this process exits. */
export class Child {
  constructor(name, cmd, args, env) {
    this.name = name;
    this.logPath = join(ARTIFACTS, `${name}.log`);
    this.log = createWriteStream(this.logPath);
    this.stdout = '';
    this.exited = null;
    this.proc = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this.proc);
    this.proc.stdout.on('data', (d) => {
      this.stdout += d;
      this.log.write(d);
    });
    this.tail = '';
    this.proc.stderr.on('data', (d) => {
      this.tail = (this.tail + d).slice(-2000);
      this.log.write(d);
    });
    this.done = new Promise((res) => {
      this.proc.on('exit', (code, signal) => {
        this.exited = { code, signal };
        children.delete(this.proc);
        res(this.exited);
      });
      this.proc.on('error', (err) => {
        this.exited = { code: null, signal: null, error: err.message };
        children.delete(this.proc);
        res(this.exited);
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 3000) {
    if (!this.exited) {
      this.proc.kill('SIGTERM');
      const gone = await Promise.race([this.done, sleep(graceMs).then(() => false)]);
      if (!gone) {
        this.proc.kill('SIGKILL');
        await Promise.race([this.done, sleep(2000)]);
      }
    }
    this.log.end();
    return this.exited;
  }
}

/**
 * Starts an X client (or any helper) with its output logged to e2e/artifacts/<name>.log;
 * killed with the rest at exit. `stdout` accumulates what it printed.
 * @returns {Child}
 */
export function startChild(name, cmd, args, env) {
  return new Child(name, cmd, args, env);
}

/**
 * Starts `Xvfb :N` (1280x720x24 unless `screen` says otherwise) and waits until clients can connect.
 * @param {string} [name]
 * @param {{screen?: string}} [opts] `screen` as Xvfb takes it, e.g. '1920x1080x24'
 */
export async function startXvfb(name = 'xvfb', { screen = '1280x720x24' } = {}) {
  const n = freeDisplay();
  const display = `:${n}`;
  const child = new Child(name, 'Xvfb', [display, '-screen', '0', screen, '-noreset', '-nolisten', 'tcp']);
  await waitFor(
    () => {
      if (child.exited) throw new GaveUp(`Xvfb exited ${JSON.stringify(child.exited)}`);
      return spawnSync('xdpyinfo', ['-display', display], { stdio: 'ignore', timeout: 5000 }).status === 0;
    },
    { timeoutMs: 15000, intervalMs: 100, what: `Xvfb on ${display}` },
  );
  return { display, child };
}

/**
 * Starts a resizable nested X server, `Xephyr :N -resizeable` (`screen` as WxH), inside a
 * private host Xvfb big enough for its largest mode: Xvfb offers RandR one fixed mode, so a
 * test of screen resizes (`xrandr -s WxH`) needs Xephyr. Returns both; stop nested first.
 * @param {string} name
 * @param {{screen?: string}} [opts]
 */
export async function startXephyr(name, { screen = '1024x768' } = {}) {
  const host = await startXvfb(`${name}-host`, { screen: '1600x1200x24' });
  const display = `:${freeDisplay()}`;
  const env = { ...process.env, DISPLAY: host.display };
  const args = [display, '-screen', `${screen}x24`, '-resizeable', '-ac', '-noreset', '-nolisten', 'tcp'];
  const child = new Child(name, 'Xephyr', args, env);
  await waitFor(
    () => {
      if (child.exited) throw new GaveUp(`Xephyr exited ${JSON.stringify(child.exited)}; see ${child.logPath}`);
      return spawnSync('xdpyinfo', ['-display', display], { stdio: 'ignore', timeout: 5000 }).status === 0;
    },
    { timeoutMs: 15000, intervalMs: 100, what: `Xephyr on ${display}` },
  );
  return { display, child, host };
}

/**
 * Runs an X client (xsetroot, xdotool, ...) against `display`, bounded to 10 s; throws on failure.
 * @returns {string} what it printed
 */
export function xrun(display, cmd, args) {
  // xdotool takes the display from the environment only.
  const argv = cmd === 'xdotool' ? args : ['-display', display, ...args];
  const env = { ...process.env, DISPLAY: display };
  const r = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 10000, env });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout;
}

/** Where the X pointer of `display` is, per xdotool. */
export function xPointer(display) {
  const out = xrun(display, 'xdotool', ['getmouselocation']);
  const m = /x:(\d+) y:(\d+)/.exec(out);
  if (!m) throw new Error(`xdotool getmouselocation: ${out}`);
  return { x: Number(m[1]), y: Number(m[2]) };
}

/**
 * Starts `vnrit --display D --bind 127.0.0.1 --port P --token T` and waits for /api/stats.
 * `bind` picks another local address (e.g. the namespace's veth, 10.213.0.1). With `display`
 * null vnrit starts its own virtual display; the result's `display` then names it (from the log).
 * @param {{display: string|null, token: string, port?: number, name?: string, extraArgs?: string[], bind?: string}} o
 */
export async function startServer({ display, token, port, name = 'vnrit', extraArgs = [], bind = '127.0.0.1' }) {
  if (!existsSync(VNRIT_BIN)) throw new Error(`${VNRIT_BIN} is missing: run cargo build --release`);
  port ??= await freePort();
  const shown = display === null ? [] : ['--display', display];
  const args = [...shown, '--bind', bind, '--port', String(port), '--token', token, ...extraArgs];
  const env = { ...process.env, RUST_BACKTRACE: '1' };
  delete env.DISPLAY;
  const child = new Child(name, VNRIT_BIN, args, env);
  const base = `http://${bind}:${port}`;
  await waitFor(
    async () => {
      if (child.exited) throw new GaveUp(`vnrit exited ${JSON.stringify(child.exited)}; ${child.logPath} ends:\n${child.tail}`);
      const res = await fetch(`${base}/api/stats?token=${encodeURIComponent(token)}`);
      return res.status === 200;
    },
    { timeoutMs: 30000, intervalMs: 150, what: `vnrit to answer /api/stats on ${base}` },
  );
  if (display === null) {
    // The log file is written asynchronously: wait (bounded) for the line to land.
    const m = await waitFor(() => /display (:\d+) is \d+x\d+/.exec(readFileSync(child.logPath, 'utf8')), {
      timeoutMs: 3000,
      what: `vnrit to log its virtual display in ${child.logPath}`,
    });
    display = m[1];
  }
  return { child, port, token, base, display, url: `${base}/?token=${encodeURIComponent(token)}` };
}

/**
 * Launches headless Chromium with a fresh profile (playwright makes a new temp user-data-dir).
 * `executablePath` replaces /usr/bin/chromium, e.g. with a wrapper that starts it in another
 * network namespace (playwright drives it over a pipe, which survives `ip netns exec`).
 * `extraArgs` are added to CHROMIUM_ARGS (e.g. the fake microphone's flags).
 * @param {{executablePath?: string, extraArgs?: string[]}} [opts]
 */
export async function launchBrowser({ executablePath = CHROMIUM, extraArgs = [] } = {}) {
  const env = { ...process.env, PULSE_SERVER: 'unix:/nonexistent/vnrit-e2e-no-pulse' };
  delete env.DISPLAY;
  return chromium.launch({
    executablePath,
    headless: false, // --headless=new is in CHROMIUM_ARGS; playwright must not add its own flag
    args: [...CHROMIUM_ARGS, ...extraArgs],
    env,
    timeout: 30000,
  });
}

/** One test file's world: Xvfb + vnrit + Chromium (and/or Firefox), torn down by close(). */
export class Harness {
  /**
   * @param {string} name used for log and screenshot names
   * @param {{server?: boolean, browser?: boolean, firefox?: boolean|object, serverArgs?: string[]}} [opts]
   *   browser: headless Chromium as `h.browser` (playwright); firefox: headless Firefox ESR as
   *   `h.firefox` (puppeteer over WebDriver BiDi, see firefox.mjs; an object is its options)
   */
  static async start(name, { server = true, browser = true, firefox = false, serverArgs = [] } = {}) {
    const h = new Harness(name);
    try {
      h.xvfb = await startXvfb(`${name}-xvfb`);
      h.display = h.xvfb.display;
      h.token = randomBytes(12).toString('hex');
      h.serverArgs = serverArgs;
      if (server) h.server = await startServer({ display: h.display, token: h.token, name: `${name}-vnrit`, extraArgs: serverArgs });
      if (browser) h.browser = await launchBrowser();
      if (firefox) {
        // Loaded only here: the Chromium-only test files never load puppeteer.
        const { launchFirefox } = await import('./firefox.mjs');
        h.firefox = await launchFirefox(firefox === true ? {} : firefox);
      }
    } catch (err) {
      await h.close();
      throw err;
    }
    return h;
  }

  constructor(name) {
    this.name = name;
    this.xvfb = null;
    this.server = null;
    this.browser = null;
    this.firefox = null;
    this.serverArgs = [];
  }

  /** Paints the X root window one colour (`#rrggbb`); XDamage reports it. */
  setRoot(colour) {
    xrun(this.display, 'xsetroot', ['-solid', colour]);
  }

  /** GET /api/stats with the token; throws unless 200. */
  async stats() {
    const res = await fetch(`${this.server.base}/api/stats?token=${this.token}`, { cache: 'no-store' });
    if (res.status !== 200) throw new Error(`/api/stats answered ${res.status}: ${await res.text()}`);
    return res.json();
  }

  /** Stops vnrit (SIGTERM) and starts it again on the same port, token and arguments. */
  async restartServer() {
    const port = this.server.port;
    await this.server.child.stop();
    const extraArgs = this.serverArgs;
    this.server = await startServer({ display: this.display, token: this.token, port, name: `${this.name}-vnrit-2`, extraArgs });
  }

  /** Screenshot of `page` into e2e/artifacts/<name>-<label>.png (best effort). */
  async screenshot(page, label) {
    try {
      await page.screenshot({ path: join(ARTIFACTS, `${this.name}-${label}.png`), timeout: 10000 });
    } catch {
      // a missing screenshot must not hide the real test outcome
    }
  }

  /** Closes the browser, vnrit and Xvfb, in that order; safe to call twice. */
  async close() {
    if (this.browser) {
      await Promise.race([this.browser.close().catch(() => {}), sleep(10000)]);
      this.browser = null;
    }
    if (this.firefox) {
      const proc = this.firefox.process();
      await Promise.race([this.firefox.close().catch(() => {}), sleep(10000)]);
      if (proc && proc.exitCode === null) proc.kill('SIGKILL');
      this.firefox = null;
    }
    if (this.server) {
      await this.server.child.stop();
      this.server = null;
    }
    if (this.xvfb) {
      await this.xvfb.child.stop();
      this.xvfb = null;
    }
  }
}
