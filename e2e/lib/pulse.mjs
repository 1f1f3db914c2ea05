// vnrit e2e: a private PulseAudio (as in FIELD-NOTES.md) with a 48 kHz stereo null sink
// `vsink`, and a sine tone played into it; vnrit records `vsink.monitor`, the default source's
// monitor. Everything lives in a directory of its own under /tmp, removed by close().

import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Child, GaveUp, waitFor } from './harness.mjs';

/** A 16-bit stereo 48 kHz WAV of a sine tone. */
function writeTone(path, seconds, hz = 1000) {
  const n = 48000 * seconds;
  const b = Buffer.alloc(44 + n * 4);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + n * 4, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(2, 22);
  b.writeUInt32LE(48000, 24);
  b.writeUInt32LE(192000, 28);
  b.writeUInt16LE(4, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(n * 4, 40);
  for (let i = 0; i < n; i += 1) {
    const s = Math.round(12000 * Math.sin((2 * Math.PI * hz * i) / 48000));
    b.writeInt16LE(s, 44 + i * 4);
    b.writeInt16LE(s, 46 + i * 4);
  }
  writeFileSync(path, b);
}

/** A private PulseAudio; `server` is the value for PULSE_SERVER. Start it with start(). */
export class Pulse {
  /** @param {string} name used for the directory and log names */
  constructor(name, { toneSeconds = 60 } = {}) {
    this.name = name;
    this.dir = `/tmp/vnrit-e2e-${name}-${process.pid}`;
    this.socket = `${this.dir}/run/native`;
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(`${this.dir}/home`, { recursive: true });
    mkdirSync(`${this.dir}/run`, { recursive: true });
    writeTone(`${this.dir}/tone.wav`, toneSeconds);
    this.daemon = null;
    this.player = null;
  }

  /** The PULSE_SERVER address of this instance. */
  get server() {
    return `unix:${this.socket}`;
  }

  #env() {
    return { ...process.env, HOME: `${this.dir}/home`, XDG_RUNTIME_DIR: `${this.dir}/run`, PULSE_SERVER: this.server };
  }

  /** Starts the daemon and waits for its socket. */
  async start() {
    this.daemon = new Child(`${this.name}-pulse`, 'pulseaudio', [
      '--daemonize=no', '--exit-idle-time=-1', '--system=false', '--disallow-exit', '-n',
      `--load=module-native-protocol-unix auth-anonymous=1 socket=${this.socket}`,
      '--load=module-null-sink sink_name=vsink rate=48000 channels=2',
    ], this.#env());
    await waitFor(() => {
      if (this.daemon.exited) throw new GaveUp(`pulseaudio exited ${JSON.stringify(this.daemon.exited)}: ${this.daemon.tail}`);
      return existsSync(this.socket);
    }, { timeoutMs: 10000, what: 'the PulseAudio socket' });
  }

  /** Plays the tone into `vsink` at low latency (until stopTone or its end). */
  playTone() {
    this.player = new Child(`${this.name}-paplay`, 'paplay', [`--server=${this.server}`, '--device=vsink', '--latency-msec=20', `${this.dir}/tone.wav`], this.#env());
  }

  /** Stops the tone. */
  async stopTone() {
    await this.player?.stop();
    this.player = null;
  }

  /** Stops the player and the daemon and removes the directory. */
  async close() {
    await this.stopTone();
    await this.daemon?.stop();
    this.daemon = null;
    rmSync(this.dir, { recursive: true, force: true });
  }
}
