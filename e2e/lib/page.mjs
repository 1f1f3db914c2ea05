// vnrit e2e: helpers that look at the viewer page from inside Chromium — pixel colours of
// the decoded <video>, the status pill, and when the first frame arrived.

import { waitFor } from './harness.mjs';

/** Points (fractions of width/height) sampled from the video; the pointer sits in the centre. */
const SAMPLE_POINTS = [
  [0.2, 0.2],
  [0.8, 0.2],
  [0.2, 0.8],
  [0.8, 0.8],
  [0.5, 0.1],
];

/**
 * Draws the current video frame into a canvas and returns the RGB at SAMPLE_POINTS, or null
 * while no frame has been decoded yet.
 * @param {import('playwright-core').Page} page
 * @returns {Promise<number[][]|null>}
 */
export function samplePixels(page) {
  return page.evaluate((points) => {
    const v = document.getElementById('screen');
    if (!v || v.readyState < 2 || !v.videoWidth) return null;
    const c = document.createElement('canvas');
    c.width = v.videoWidth;
    c.height = v.videoHeight;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0);
    return points.map(([fx, fy]) => {
      const d = g.getImageData(Math.floor(fx * c.width), Math.floor(fy * c.height), 1, 1).data;
      return [d[0], d[1], d[2]];
    });
  }, SAMPLE_POINTS);
}

/** `#rrggbb` -> [r, g, b]. */
export function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** True when every sampled pixel is within `tolerance` of `rgb` on every channel. */
export function allNear(pixels, rgb, tolerance) {
  return !!pixels && pixels.every((p) => p.every((v, i) => Math.abs(v - rgb[i]) <= tolerance));
}

/**
 * Waits (bounded) until the decoded video shows `hex` everywhere sampled.
 * @returns {Promise<number[][]>} the matching samples
 */
export async function waitForColour(page, hex, { timeoutMs = 10000, tolerance = 40 } = {}) {
  const rgb = hexToRgb(hex);
  let last = null;
  try {
    return await waitFor(
      async () => {
        last = await samplePixels(page);
        return allNear(last, rgb, tolerance) ? last : null;
      },
      { timeoutMs, intervalMs: 100, what: `video colour ${hex}` },
    );
  } catch (err) {
    err.message += `; last samples: ${JSON.stringify(last)}`;
    throw err;
  }
}

/** The status pill's state attribute and text. */
export function status(page) {
  return page.evaluate(() => {
    const el = document.getElementById('status');
    return el ? { state: el.dataset.state, text: el.textContent } : null;
  });
}

/**
 * An init script that records, before the page's own scripts run, when the first video frame
 * became available (`loadeddata`) and when it was first presented (requestVideoFrameCallback),
 * as performance.now() values (milliseconds since navigation start).
 */
export function recordFirstFrame() {
  document.addEventListener('DOMContentLoaded', () => {
    const v = document.getElementById('screen');
    if (!v) return;
    v.addEventListener('loadeddata', () => {
      window.__vnritFirstData ??= performance.now();
    });
    if (v.requestVideoFrameCallback) {
      v.requestVideoFrameCallback((now) => {
        window.__vnritFirstFrame ??= now;
      });
    }
  });
}

/** Console errors the browser itself prints for refused or failed requests (not page bugs). */
export const NETWORK_NOISE = /WebSocket connection to .* failed|Failed to load resource/;

/**
 * Opens the viewer at `url` in a new page of `opener` (a browser or a browser context) and
 * waits until the desktop colour `hex` is decoded. `problems` collects the page's errors
 * (see watchConsole) for the test to assert empty.
 * @param {{newPage: Function}} opener
 * @param {string} url
 * @param {string} hex
 * @param {{viewport?: {width: number, height: number}}} [opts]
 */
export async function openPage(opener, url, hex, { viewport } = {}) {
  const page = await opener.newPage(viewport ? { viewport } : {});
  const problems = watchConsole(page);
  await page.goto(url, { timeout: 15000 });
  await waitForColour(page, hex, { timeoutMs: 15000 });
  return { page, problems };
}

/**
 * Collects uncaught page exceptions and console errors of `page` (network noise from a
 * stopped server excepted) into the returned array, which a test asserts empty.
 * @param {import('playwright-core').Page} page
 * @returns {string[]}
 */
export function watchConsole(page) {
  const problems = [];
  page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !NETWORK_NOISE.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  return problems;
}

/**
 * An init script (page.addInitScript) that records every RTCPeerConnection the page makes in
 * `window.__pcs`, so a test can read its stats.
 */
export function trackConnections() {
  const Original = window.RTCPeerConnection;
  window.__pcs = [];
  window.RTCPeerConnection = function RTCPeerConnection(...args) {
    const pc = new Original(...args);
    window.__pcs.push(pc);
    return pc;
  };
  window.RTCPeerConnection.prototype = Original.prototype;
}
