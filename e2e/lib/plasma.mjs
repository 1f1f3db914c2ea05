// vnrit e2e: a moving screen that needs several Mbit/s — ImageMagick `animate` cycling six
// different 1280x720 plasma pictures at 5 fps over the whole X screen. Shared by the
// adaptive-bitrate tests, whose link caps prove nothing unless the picture needs more.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startChild } from './harness.mjs';

/** Frames per second of the animation (`animate -delay 20` = 0.2 s per picture). */
export const PLASMA_FPS = 5;

/**
 * Renders the pictures into a temp dir and starts `animate` on `display`.
 * @param {string} display e.g. ':123'
 * @param {string} name log name under e2e/artifacts/
 * @returns {Promise<{stop: () => Promise<void>}>} stop() ends `animate` and removes the pictures
 */
export async function startPlasma(display, name) {
  const dir = mkdtempSync(join(tmpdir(), 'vnrit-plasma-'));
  try {
    const files = [];
    for (let i = 0; i < 6; i++) {
      const file = join(dir, `p${i}.ppm`);
      const r = spawnSync('convert', ['-seed', String(i + 1), '-size', '1280x720', 'plasma:fractal', '-depth', '8', file], {
        timeout: 60000,
      });
      if (r.status !== 0) throw new Error(`convert failed: ${r.error?.message ?? r.stderr}`);
      files.push(file);
    }
    const child = startChild(name, 'animate', ['-display', display, '-geometry', '+0+0', '-delay', String(100 / PLASMA_FPS), '-loop', '0', ...files]);
    return {
      async stop() {
        await child.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
