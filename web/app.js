// vnrit viewer: entry module. Owns the reconnect loop (exponential backoff, 1 s doubling to
// 30 s) and the session counter that keeps callbacks of an old session away from the new one.
// Sessions come from signal.js, the status pill from ui.js. Later features (input, zoom/pan,
// keyboard, stats overlay) hook in through `viewer` below: its `session` is the live one.

import { Session } from './signal.js';
import { StatusView } from './ui.js';

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

const params = new URLSearchParams(location.search);
const token = params.get('token');
const video = /** @type {HTMLVideoElement} */ (document.getElementById('screen'));
const status = new StatusView(document.getElementById('status'));

/** The page's state, shared with feature modules. */
export const viewer = {
  /** The live session, or null between attempts. */
  session: /** @type {Session|null} */ (null),
  /** Incremented for every attempt; a callback whose number differs is stale and ignored. */
  generation: 0,
  video,
  status,
};

// For the browser console and the e2e tests: `vnrit.session.pc`, `vnrit.session.input`, ...
globalThis.vnrit = viewer;

let retryDelay = FIRST_RETRY_MS;
let retryTimer = null;

/** A same-directory URL carrying the page's token, if it has one (the cookie covers the rest). */
function withToken(path, protocol) {
  const url = new URL(path, location.href);
  url.search = '';
  url.hash = '';
  if (protocol) url.protocol = protocol;
  if (token) url.searchParams.set('token', token);
  return url.href;
}

function connect() {
  clearTimeout(retryTimer);
  const gen = ++viewer.generation; // first, so the old session's onClosed is already stale
  if (viewer.session) viewer.session.close('replaced');
  const live = (fn) => (...args) => {
    if (gen === viewer.generation) fn(...args);
  };
  status.connecting();
  viewer.session = new Session(withToken('ws', location.protocol === 'https:' ? 'wss:' : 'ws:'), {
    onTrack: live(showStream),
    onConnected: live(() => {
      retryDelay = FIRST_RETRY_MS;
      status.connected();
    }),
    onServerError: live((message) => status.error(`server: ${message}`)),
    onClosed: live((reason, info) => sessionEnded(gen, reason, info)),
  });
}

function showStream(stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  video.play().catch((err) => {
    if (err && err.name === 'NotAllowedError') {
      status.error('click the page to start the video');
      document.addEventListener('click', () => video.play().catch(() => {}), { once: true });
    }
  });
}

/** True when the server answers our token with 401, i.e. the token is wrong or missing. */
async function tokenRejected() {
  try {
    const res = await fetch(withToken('api/stats'), { cache: 'no-store' });
    return res.status === 401;
  } catch {
    return false; // server unreachable: not an auth problem
  }
}

async function sessionEnded(gen, reason, info) {
  viewer.session = null;
  if (!info.opened && (await tokenRejected())) {
    if (gen !== viewer.generation) return;
    status.error('wrong or missing token: open the link vnrit printed at start (…/?token=…)');
    return; // retrying cannot help until the user fixes the URL
  }
  if (gen !== viewer.generation) return;
  const delay = retryDelay;
  retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
  status.reconnecting(delay, reason);
  retryTimer = setTimeout(connect, delay);
}

/** Ends the live session for good (no reconnect), e.g. when the page goes away. */
export function stop() {
  viewer.generation += 1;
  clearTimeout(retryTimer);
  if (viewer.session) viewer.session.close('page closed');
  viewer.session = null;
}

addEventListener('pagehide', stop);
addEventListener('pageshow', (ev) => {
  if (ev.persisted) connect(); // back from the back/forward cache
});
connect();
