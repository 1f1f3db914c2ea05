// vnrit e2e: xev as the X client that reads what is typed, in a UTF-8 locale, so each
// KeyPress is translated by the real Xlib (XmbLookupString) with the keymap of the moment,
// including spare keycodes vnrit rebinds for characters the keymap lacks.

import { spawn } from 'node:child_process';
import { waitFor } from './harness.mjs';

/** A running full-window xev and everything it printed. */
export class Xev {
  /**
   * Starts xev on `display` with a window at 0,0 of `geometry`, and waits for it to map.
   * @param {string} display
   * @param {string} [geometry]
   */
  static async start(display, geometry = '1280x720+0+0') {
    const x = new Xev();
    x.child = spawn('stdbuf', ['-oL', 'xev', '-display', display, '-geometry', geometry, '-event', 'keyboard', '-event', 'button'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' },
    });
    x.child.stdout.on('data', (d) => (x.out += d));
    await waitFor(() => x.out.length > 0, { timeoutMs: 10000, what: 'xev to start' });
    return x;
  }

  constructor() {
    this.child = null;
    this.out = '';
  }

  /** Where the output is now (to read only what comes after). */
  mark() {
    return this.out.length;
  }

  /**
   * Every KeyPress since `from`: its state, keysym name and the UTF-8 text Xlib gives for it.
   * @returns {{state: number, keysym: number, name: string, text: string}[]}
   */
  presses(from = 0) {
    const re =
      /KeyPress event[\s\S]*?state (0x[0-9a-f]+), keycode \d+ \(keysym (0x[0-9a-f]+), ([^)]*)\)[\s\S]*?XmbLookupString gives (\d+) bytes: (?:\(([0-9a-f ]+)\))?/g;
    return [...this.out.slice(from).matchAll(re)].map((m) => ({
      state: Number(m[1]),
      keysym: Number(m[2]),
      name: m[3],
      text: m[5] ? Buffer.from(m[5].trim().split(' ').map((h) => parseInt(h, 16))).toString('utf8') : '',
    }));
  }

  /** The text typed since `from` (each KeyPress's XmbLookupString, joined). */
  typed(from = 0) {
    return this.presses(from)
      .map((p) => p.text)
      .join('');
  }

  stop() {
    this.child?.kill('SIGTERM');
  }
}
