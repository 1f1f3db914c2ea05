// vnrit e2e: which keys and pointer buttons the X server reports held down, read with the
// `xheld` example (x11rb QueryKeymap + QueryPointer), so tests can check nothing is stuck.

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './harness.mjs';

/** The helper binary; built by `cargo build --release --examples`. */
export const XHELD_BIN = process.env.VNRIT_XHELD || join(ROOT, 'target', 'release', 'examples', 'xheld');

/**
 * Keycodes and buttons (1-5) held down on `display` now.
 * @param {string} display e.g. ':123'
 * @returns {{keys: number[], buttons: number[]}}
 */
export function heldInX(display) {
  if (!existsSync(XHELD_BIN)) throw new Error(`${XHELD_BIN} is missing: run cargo build --release --examples`);
  const r = spawnSync(XHELD_BIN, [display], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) throw new Error(`xheld ${display} failed: ${r.error?.message ?? r.stderr}`);
  return JSON.parse(r.stdout);
}

/** True when nothing is held on `display`. */
export function nothingHeld(display) {
  const held = heldInX(display);
  return held.keys.length === 0 && held.buttons.length === 0;
}
