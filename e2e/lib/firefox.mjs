// vnrit e2e: Debian's Firefox ESR as a real viewer, driven headless by puppeteer-core over
// WebDriver BiDi (no downloaded browser). Debian's Firefox has no H.264 for WebRTC on a
// machine without internet (its H.264 is a plugin fetched at run time): it offers VP8, VP9
// and AV1 only. Pages are puppeteer pages; e2e/lib/page.mjs's helpers work on them too
// (they use only evaluate, goto, screenshot and the console events both libraries share).

import puppeteer from 'puppeteer-core';
import { waitFor, xrun } from './harness.mjs';

/** The Firefox under test; FIREFOX overrides. */
export const FIREFOX = process.env.FIREFOX || '/usr/bin/firefox-esr';

/** Preferences of the fresh profile, and why each is set (not each was measured to matter). */
export const FIREFOX_PREFS = {
  // Video (and, once unmuted by the page's control, audio) plays without a click.
  'media.autoplay.default': 0,
  'media.autoplay.blocking_policy': 0,
  // Host candidates as addresses, not mDNS names the server cannot resolve.
  'media.peerconnection.ice.obfuscate_host_addresses': false,
  // Loopback candidates too (the server listens on 127.0.0.1 in most tests).
  'media.peerconnection.ice.loopback': true,
  // getUserMedia answers without a prompt, from a fake device (a tone), as Chromium's flags do.
  'media.navigator.permission.disabled': true,
  'media.navigator.streams.fake': true,
  // Fullscreen on a click the test makes (BiDi input counts as a user gesture, but be sure).
  'full-screen-api.allow-trusted-requests-only': false,
  'full-screen-api.transition-duration.enter': '0 0',
  'full-screen-api.transition-duration.leave': '0 0',
  // Nothing reaches out to the network on its own.
  'app.update.enabled': false,
  'browser.shell.checkDefaultBrowser': false,
  'datareporting.policy.dataSubmissionEnabled': false,
  'toolkit.telemetry.enabled': false,
  'media.gmp-manager.url': '',
  'media.gmp-gmpopenh264.enabled': false,
};

/**
 * Launches headless Firefox ESR with a fresh profile (puppeteer makes a temporary one and
 * removes it on close). `prefs` are added to FIREFOX_PREFS; `env` to the environment (the
 * DISPLAY is removed: headless Firefox needs none, and must not open windows on the test's X).
 * With `display`, Firefox runs with a window on that X display instead: key strokes sent
 * there with xdotool go through the X keyboard layout and Firefox's own key translation, as a
 * user's do (WebDriver key actions bypass both and always read as a US keyboard).
 * @param {{prefs?: Record<string, unknown>, env?: Record<string, string>, display?: string|null}} [opts]
 * @returns {Promise<import('puppeteer-core').Browser>}
 */
export async function launchFirefox({ prefs = {}, env = {}, display = null } = {}) {
  const environment = { ...process.env, PULSE_SERVER: 'unix:/nonexistent/vnrit-e2e-no-pulse', MOZ_CRASHREPORTER_DISABLE: '1', ...env };
  delete environment.DISPLAY;
  if (display) environment.DISPLAY = display;
  return puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: !display,
    protocol: 'webDriverBiDi',
    extraPrefsFirefox: { ...FIREFOX_PREFS, ...prefs },
    env: environment,
    timeout: 60000,
    protocolTimeout: 60000,
  });
}

/**
 * A new Firefox page of `width`x`height` CSS pixels (watch its errors with page.mjs's
 * watchConsole, which takes puppeteer pages too).
 * @param {import('puppeteer-core').Browser} browser
 */
export async function newFirefoxPage(browser, { width = 960, height = 600 } = {}) {
  const page = await browser.newPage();
  await page.setViewport({ width, height });
  return page;
}

/** An init page whose keydown events are counted in `window.__keys`. */
const KEY_PROBE = 'data:text/html,<title>probe</title><script>window.__keys=0;addEventListener("keydown",()=>window.__keys++)</script>';

/**
 * Gives the keyboard of `display` to the page of a windowed Firefox (see launchFirefox's
 * `display`) and waits until key strokes sent there arrive. Measured: X focus on the window is
 * not enough, a new window's address bar has the keyboard (the first keys typed went there);
 * a real click in the content area moves it to the page. Probes with Shift, which types
 * nothing. Leaves `page` on a blank probe page.
 * @param {import('puppeteer-core').Page} page
 * @param {string} display
 */
export async function focusFirefoxWindow(page, display) {
  await page.goto(KEY_PROBE);
  const id = await waitFor(() => xrun(display, 'xdotool', ['search', '--onlyvisible', '--class', 'firefox']).trim().split('\n')[0], {
    timeoutMs: 10000,
    what: `the Firefox window on ${display}`,
  });
  xrun(display, 'xdotool', ['windowfocus', '--sync', id]);
  const geo = /Geometry: (\d+)x(\d+)/.exec(xrun(display, 'xdotool', ['getwindowgeometry', id]));
  const [w, h] = geo ? [Number(geo[1]), Number(geo[2])] : [800, 600];
  xrun(display, 'xdotool', ['mousemove', '--window', id, String(w >> 1), String((h * 3) >> 2), 'click', '1']);
  await waitFor(
    async () => {
      xrun(display, 'xdotool', ['key', 'shift']);
      return (await page.evaluate(() => window.__keys)) > 0;
    },
    { timeoutMs: 10000, intervalMs: 200, what: `the Firefox page on ${display} to take key strokes` },
  );
}
