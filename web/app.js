// vnrit viewer: entry module. Owns the reconnect loop (exponential backoff, 1 s doubling to
// 30 s), the session counter that keeps callbacks of an old session away from the new one,
// and the wiring of the feature modules: input.js (mouse, physical keyboard, direct touch,
// remote cursor), view (fit/1:1, zoom, pan), fit (asks for a desktop of the window's size),
// stage gestures (trackpad mode, Alt+wheel zoom), special keys, on-screen keyboard, input
// methods (ime.js), clipboard panel with its type-text action, files panel, microphone,
// statistics, toolbar and notices, and presence.js (who is here, who has control: input goes
// out only while this page has it).
// Everything is reachable as `globalThis.vnrit` (the `viewer` object) for the console and
// the tests.

import { Session } from './signal.js';
import { StatusView, Notice } from './ui.js';
import { View } from './view.js';
import { attachInput } from './input.js';
import { RemoteInput } from './remote.js';
import * as wire from './wire.js';
import { PointerInput } from './pointer.js';
import { setupSpecialKeys } from './keyboard.js';
import { OnScreenKeyboard } from './osk.js';
import { ClipboardSync } from './clipboard.js';
import { TextCatcher } from './ime.js';
import { StatsOverlay } from './stats.js';
import { FitRequester } from './fit.js';
import { PageTitle } from './title.js';
import { PresenceUI, storedName, reconnectKey } from './presence.js';
import { FileTransfer } from './files.js';
import { MicControl } from './mic.js';

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30000;

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = params.get('token');
const stage = $('stage');
const video = /** @type {HTMLVideoElement} */ ($('screen'));
const status = new StatusView($('status'));
const notice = new Notice($('notice'));
const title = new PageTitle(video);

/** The page's state, shared with feature modules. */
export const viewer = {
  /** The live session, or null between attempts. */
  session: /** @type {Session|null} */ (null),
  /** Incremented for every attempt; a callback whose number differs is stale and ignored. */
  generation: 0,
  video,
  status,
  notice,
};

// For the browser console and the e2e tests: `vnrit.session.pc`, `vnrit.view.zoom`, ...
globalThis.vnrit = viewer;

const view = new View(stage, video);
/** Asks the server for a desktop the size of the stage (when its hello offers it). */
const fit = new FitRequester(stage, view, (w, h, dpr) => !!viewer.session && viewer.session.sendResize(w, h, dpr));

/** Sends one input wire message on the live session; false when there is none. */
function sendInput(text) {
  // input.js's release-all also lets go of what the on-screen keyboard holds.
  if (wire.isReleaseAll(text)) ownInput.keys.clear();
  // Without control only the version and release-all go out (the server would refuse the rest).
  if (!presence.mayControl && !wire.allowedWithoutControl(text)) {
    if (wire.isPress(text)) noControlHint();
    return false;
  }
  return !!viewer.session && viewer.session.sendInput(text);
}

let lastHint = 0;
/** Tells a user who types or clicks without control why nothing happens (every 3 s at most). */
function noControlHint() {
  if (Date.now() - lastHint < 3000) return;
  lastHint = Date.now();
  const who = presence.label || 'another viewer';
  status.note(`${who} has control: open the \u201cN here\u201d button in the toolbar to request it`);
}

const presence = new PresenceUI(
  Object.fromEntries(
    Object.entries({
      chip: 'people-chip', panel: 'people', list: 'people-list', note: 'people-note',
      request: 'ctl-request', release: 'ctl-release', take: 'ctl-take', admin: 'ctl-admin',
      adminToken: 'ctl-admin-token', name: 'my-name', nameSave: 'my-name-save',
      banner: 'ctl-banner', bannerText: 'ctl-banner-text', bannerGive: 'ctl-banner-give',
      bannerLater: 'ctl-banner-later', ask: 'name-ask', askName: 'name-ask-input',
      askOk: 'name-ask-ok', askSkip: 'name-ask-skip',
    }).map(([k, id]) => [k, $(id)]),
  ),
  {
    send: (msg) => viewer.session?.signal(msg),
    onControl: (may, label) => {
      if (!control) return;
      // Without control the page sends nothing and draws the controller's pointer, named.
      control.viewOnly = !may || viewOnlyToken;
      control.setCursorLabel(label);
      if (!may) {
        control.keysDown.clear();
        control.buttonsDown.clear();
        ownInput.keys.clear();
        osk.reset();
      } else if (!viewOnlyToken) {
        status.note('you have control: your keyboard and mouse drive the desktop');
        // The desktop takes the size of the window of whoever has control.
        fit.resend();
      }
    },
    note: (text) => status.note(text),
  },
);
/** The server's hello said this link is view-only. */
let viewOnlyToken = false;

/** Keys, buttons and clipboard from this module's features (same wire format as input.js). */
const ownInput = new RemoteInput(sendInput);
const remote = () => ownInput;
const pointer = new PointerInput(
  stage,
  view,
  remote,
  () => control.cursor,
  (x, y) => {
    // Local prediction for trackpad moves: draw the cursor there now; the server's next
    // position report confirms it.
    control.cursor.x = x;
    control.cursor.y = y;
    dispatchEvent(new Event('resize'));
  },
);
/** @type {import('./input.js').InputController|undefined} */
let control;
// Ctrl+Alt+Shift gives the keyboard back to the page (keyboard users can leave the desktop).
// Registered before input.js, so this capture listener runs first.
addEventListener(
  'keydown',
  (e) => {
    if (!control?.active || !e.ctrlKey || !e.altKey || !e.shiftKey) return;
    if (!['Control', 'Alt', 'Shift'].includes(e.key)) return;
    e.preventDefault();
    e.stopImmediatePropagation();
    releaseKeyboard();
    $('tb-toggle').focus();
    status.note('keyboard released: click the desktop or press Enter on it to type there again');
  },
  true,
);
/** The desktop stops getting keys; everything held there is let go. */
function releaseKeyboard() {
  control.active = false;
  control.keysDown.clear();
  sendInput(wire.releaseAll());
}
/** ime.js: a hidden field that has the focus while the desktop has the keyboard. */
const ime = new TextCatcher(stage, remote, () => !!control?.active, (text) => status.note(text));
/** input.js: mouse, physical keyboard (Keyboard Lock in fullscreen), direct touch, cursor. */
control = attachInput(video, sendInput, {
  onPinch: (scale, x, y) => pointer.pinch(scale, x, y),
  onMessage: (text) => status.note(text),
  focusTarget: () => ime.field,
  largeClipboard: (text) => clipboard.sendText(text),
});
video.addEventListener('pointerdown', () => {
  if (!presence.mayControl && !viewOnlyToken) noControlHint();
});
// Tab reaches the video without trapping the keyboard there; Enter hands it to the desktop.
video.addEventListener('keydown', (e) => {
  if (!control.active && e.key === 'Enter') {
    e.preventDefault();
    control.activate();
    status.note('keys go to the desktop now; Ctrl+Alt+Shift gives them back');
  }
});
const osk = new OnScreenKeyboard($('osk'), remote);
const clipboard = new ClipboardSync(
  {
    panel: $('clip-panel'),
    text: /** @type {HTMLTextAreaElement} */ ($('clip-text')),
    send: $('clip-send'),
    copy: $('clip-copy'),
    note: $('clip-note'),
    opener: $('tb-clip'),
    focus: ime.field,
    type: $('clip-type'),
    stop: $('clip-stop'),
  },
  remote,
);
const stats = new StatsOverlay($('stats'), () => viewer.session?.pc ?? null);
const files = new FileTransfer(
  {
    panel: $('files-panel'),
    opener: /** @type {HTMLButtonElement} */ ($('tb-files')),
    pick: /** @type {HTMLInputElement} */ ($('files-pick')),
    choose: /** @type {HTMLButtonElement} */ ($('files-send')),
    uploads: $('files-uploads'),
    list: $('files-list'),
    note: $('files-note'),
    drop: document.body,
  },
  (path) => withToken(path),
);
// `input` is input.js's controller (mouse, keyboard, cursor); `remote` sends this page's own
// input (on-screen keyboard, special keys, trackpad, clipboard panel).
const mic = new MicControl(/** @type {HTMLButtonElement} */ ($('tb-mic')), status, () => viewer.session);
Object.assign(viewer, { view, fit, input: control, remote: ownInput, pointer, osk, clipboard, stats, presence, files, mic, ime });

// input.js redraws its cursor overlay on window resizes; a zoom or pan is one for it too.
view.onChange(() => dispatchEvent(new Event('resize')));

/** One input wire message from the server. */
function onInput(text) {
  const m = wire.parse(text);
  switch (m?.type) {
    case 'cp':
      control.cursorAt(m.x, m.y);
      // A remote cursor moved by the desktop itself (not by this mouse) stays in view.
      if (!pointer.mouseAt) view.keepVisible(m.x, m.y);
      return;
    case 'cs':
      control.setCursorShape(m.shape);
      return;
    case 'cb':
      clipboard.fromDesktop(m.text);
      return;
    case 'ci':
      clipboard.imageFromDesktop(m.base64);
      return;
    case 'cbb':
    case 'cbp':
    case 'cbe':
      clipboard.chunk(m);
      return;
    case 'err':
      clipboard.serverSays(m.message);
      status.note(m.message);
      return;
    case 'v':
      // The server's input protocol version (a version 1 server never says).
      ownInput.serverVersion = m.version;
      clipboard.serverHello(m.version, m.maxClipboard);
      return;
    default:
      // not a message this page knows (a newer server's): ignored
  }
}

setupToolbar();

let retryDelay = FIRST_RETRY_MS;
/** Why the server last closed a live session, if it said (e.g. it lost its X display). */
let lastServerWord = '';
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
  ownInput.serverVersion = 1; // until the new session's server says otherwise
  if (viewer.session) viewer.session.close('replaced');
  const live = (fn) => (...args) => {
    if (gen === viewer.generation) fn(...args);
  };
  status.connecting();
  presence.reset();
  const ws = new URL(withToken('ws', location.protocol === 'https:' ? 'wss:' : 'ws:'));
  if (storedName()) ws.searchParams.set('name', storedName());
  ws.searchParams.set('key', reconnectKey());
  viewer.session = new Session(ws.href, {
    onTrack: live(showStream),
    onConnected: live(() => {
      retryDelay = FIRST_RETRY_MS;
      lastServerWord = '';
      status.connected();
      notice.hide();
    }),
    onServerError: live((message) => {
      // A refusal of control (someone else has it, a busy take) is news, not a failure.
      if (/^(input refused|.* has control|wrong operator token)/.test(message)) status.note(message);
      else status.error(`server: ${message}`);
    }),
    onInput: live(onInput),
    onHello: live((hello) => {
      title.setDisplay(hello.display);
      // A view-only viewer sends no input at all (the server would refuse it).
      viewOnlyToken = hello.control === false;
      if (viewer.input) viewer.input.viewOnly = viewOnlyToken || !presence.mayControl;
      fit.hello(hello);
      mic.hello(hello);
    }),
    onPresence: live((msg) => presence.update(msg)),
    onMic: live((msg) => mic.serverSays(msg)),
    onInputOpen: live(() => {
      ownInput.hello();
      ownInput.keys.clear(); // a new session holds nothing on the desktop
      osk.reset();
      pointer.reset();
    }),
    onClosed: live((reason, info) => sessionEnded(gen, reason, info)),
  });
}

function showStream(stream) {
  if (video.srcObject !== stream) video.srcObject = stream;
  for (const track of stream.getAudioTracks()) {
    // A remote track is muted until media flows: offer the control only while audio arrives.
    track.onunmute = () => setAudioAvailable(true);
    track.onmute = track.onended = () => setAudioAvailable(false);
    if (!track.muted) setAudioAvailable(true);
  }
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
  mic.sessionEnded();
  setAudioAvailable(false);
  if (!info.opened && (await tokenRejected())) {
    if (gen !== viewer.generation) return;
    status.error('wrong or missing token: open the link vnrit printed at start (…/?token=…)');
    notice.show(
      'auth',
      'This link needs the right token',
      'The vnrit server refused this page\u2019s token (HTTP 401). Open the exact link vnrit printed ' +
        'when it started (it ends in ?token=…), or ask whoever runs it for a fresh one. ' +
        'Reload once you have it.',
      { label: 'Reload', run: () => location.reload() },
    );
    return; // retrying cannot help until the user fixes the URL
  }
  if (gen !== viewer.generation) return;
  if (info.refused) {
    // The server refused this browser's offer (e.g. no video codec in common): say why, and
    // do not retry into the same refusal.
    status.error(`server: ${info.refused}`);
    notice.show('refused', 'This browser cannot play this desktop', info.refused, {
      label: 'Retry',
      run: connect,
    });
    return;
  }
  if (info.serverReason) lastServerWord = info.serverReason;
  const delay = retryDelay;
  retryDelay = Math.min(retryDelay * 2, MAX_RETRY_MS);
  status.reconnecting(delay, reason);
  retryTimer = setTimeout(connect, delay);
  if (!info.opened) showServerGone(delay);
}

/** The full-page "server gone" message, counting down to the next attempt. */
function showServerGone(delayMs) {
  const until = Date.now() + delayMs;
  const text = () =>
    'The vnrit server at ' +
    location.host +
    ' is not answering: it may have stopped or restarted, or the network is down. ' +
    (lastServerWord ? `Its last message: “${lastServerWord}”. ` : '') +
    `Trying again in ${Math.max(1, Math.ceil((until - Date.now()) / 1000))} s. ` +
    'If it stays away, start vnrit again and reopen the link it prints.';
  notice.show('gone', 'Cannot reach the desktop', text(), { label: 'Retry now', run: connect });
  const gen = viewer.generation;
  const tick = setInterval(() => {
    if (notice.kind !== 'gone' || gen !== viewer.generation) clearInterval(tick);
    else notice.update(text());
  }, 1000);
}

// ---- toolbar ----

function setAudioAvailable(on) {
  const b = /** @type {HTMLButtonElement} */ ($('tb-audio'));
  b.hidden = !on;
  b.disabled = !on;
  if (!on) return;
  b.title = video.muted ? 'Unmute audio' : 'Mute audio';
}

function setupToolbar() {
  const toggle = $('tb-toggle');
  toggle.addEventListener('click', () => {
    const open = toggle.getAttribute('aria-expanded') !== 'true';
    toggle.setAttribute('aria-expanded', String(open));
    toggle.setAttribute('aria-label', open ? 'Hide toolbar' : 'Show toolbar');
    toggle.title = open ? 'Hide toolbar' : 'Show toolbar';
    $('tb-items').hidden = !open;
  });

  const fit = $('tb-fit');
  fit.addEventListener('click', () => {
    view.setMode(view.mode === 'fit' ? 'pixel' : 'fit');
  });
  $('tb-zoom-in').addEventListener('click', () => view.zoomBy(1));
  $('tb-zoom-out').addEventListener('click', () => view.zoomBy(-1));
  $('tb-zoom-reset').addEventListener('click', () => view.setZoom(1));
  view.onChange(() => {
    fit.setAttribute('aria-pressed', String(view.mode === 'fit'));
    fit.textContent = view.mode === 'fit' ? 'Fit' : '1:1';
    $('tb-zoom-level').textContent = `${Math.round(view.zoom * 100)}%`;
  });

  const fs = $('tb-fullscreen');
  if (!document.fullscreenEnabled) fs.hidden = true;
  fs.addEventListener('click', () => {
    const p = document.fullscreenElement
      ? document.exitFullscreen()
      : document.documentElement.requestFullscreen({ navigationUI: 'hide' });
    p.catch((err) => status.error(`fullscreen refused: ${err.message}`));
  });
  document.addEventListener('fullscreenchange', () => {
    fs.setAttribute('aria-pressed', String(!!document.fullscreenElement));
    if (document.fullscreenElement) control.activate();
  });

  // Relative mouse: the pointer is locked to the desktop and motion goes as deltas, for games,
  // 3D apps and anything else that warps the pointer. The browser frees it on Escape.
  const lock = $('tb-lock');
  const touchOnly = matchMedia('(pointer: coarse)').matches && !matchMedia('(any-pointer: fine)').matches;
  if (!('requestPointerLock' in Element.prototype) || touchOnly) lock.hidden = true;
  lock.addEventListener('click', () => {
    Promise.resolve(control.lockPointer()).catch((err) => status.error(`pointer lock refused: ${err.message}`));
  });
  // A refused lock also fires this event (browsers whose requestPointerLock returns no promise say it only here).
  document.addEventListener('pointerlockerror', () => status.error('pointer lock refused by the browser'));
  document.addEventListener('pointerlockchange', () => {
    const locked = document.pointerLockElement === video;
    lock.setAttribute('aria-pressed', String(locked));
    if (locked) status.note('relative mouse: Escape frees the pointer');
  });

  setupSpecialKeys($('keys-menu'), /** @type {HTMLButtonElement} */ ($('tb-keys')), remote, () =>
    control.activate(),
  );

  const oskButton = $('tb-osk');
  const oskEl = $('osk');
  oskButton.addEventListener('click', () => {
    osk.visible = !osk.visible;
    oskButton.setAttribute('aria-pressed', String(osk.visible));
  });
  // The stage ends where the on-screen keyboard begins, so the whole desktop stays visible.
  new ResizeObserver(() => {
    document.documentElement.style.setProperty('--osk-h', `${oskEl.hidden ? 0 : oskEl.offsetHeight}px`);
  }).observe(oskEl);

  // This device's own keyboard (phones, tablets: autocorrect, swipe typing, input methods).
  $('tb-ime').addEventListener('click', () => {
    control.activate();
    ime.showSoftKeyboard();
    status.note("this device's keyboard types on the desktop");
  });

  const touch = $('tb-touch');
  touch.addEventListener('click', () => {
    pointer.touchMode = pointer.touchMode === 'trackpad' ? 'direct' : 'trackpad';
    const pad = pointer.touchMode === 'trackpad';
    touch.textContent = pad ? 'Pad' : 'Direct';
    touch.setAttribute('aria-label', `Touch mode: ${pad ? 'trackpad' : 'direct touch'}`);
    touch.title = `Touch mode: ${pad ? 'trackpad' : 'direct touch'} (tap to switch)`;
  });

  const statsButton = $('tb-stats');
  statsButton.addEventListener('click', () => {
    stats.visible = !stats.visible;
    statsButton.setAttribute('aria-pressed', String(stats.visible));
  });

  const audio = /** @type {HTMLButtonElement} */ ($('tb-audio'));
  audio.addEventListener('click', () => {
    video.muted = !video.muted;
    if (!video.muted) video.play().catch(() => {});
    audio.setAttribute('aria-pressed', String(!video.muted));
    audio.setAttribute('aria-label', video.muted ? 'Unmute audio' : 'Mute audio');
    audio.title = video.muted ? 'Unmute audio' : 'Mute audio';
  });
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

if (typeof RTCPeerConnection !== 'function') {
  status.error('this browser has no WebRTC');
  notice.show(
    'webrtc',
    'This browser cannot show the desktop',
    'vnrit streams the desktop over WebRTC, which this browser lacks or has switched off. ' +
      'Open the link in a current Chromium, Chrome, Edge, Firefox or Safari, and check that ' +
      'no extension or setting disables WebRTC.',
  );
} else {
  connect();
}
