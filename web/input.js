// vnrit viewer: remote control. Turns keyboard, mouse, wheel, touch and paste on the video
// into input messages (built by wire.js) and draws the remote cursor. Transport is the
// caller's: attachInput() gets a `send(text)`; the caller parses server messages (wire.js)
// and hands the cursor's to cursorAt() and setCursorShape().
//
// Positions are normalised to the picture inside the video element (letterbox bars removed),
// so the server maps them to the X screen whatever size the stream is encoded at.

import * as wire from './wire.js';

/** Pixels of wheel delta per notch (Chromium reports 100 per notch at zoom 1). */
const WHEEL_PIXELS_PER_NOTCH = 100;
/** Lines per notch (the usual desktop setting). */
const WHEEL_LINES_PER_NOTCH = 3;
/** Touch: a finger that moves less than this before lifting is a tap. */
const TAP_SLOP_PX = 10;
/** Touch: holding still this long is a right click (shorter and still: a tap). */
const LONG_PRESS_MS = 550;
/** Touch: two-finger scroll, pixels of finger travel per wheel notch. */
const TOUCH_PIXELS_PER_NOTCH = 40;
/** Two fingers whose distance changes by this ratio are a pinch (reserved for client zoom). */
const PINCH_RATIO = 0.15;
/** How long Ctrl+V waits for the browser's paste event before sending the key anyway. */
const PASTE_WAIT_MS = 150;

/** DOM MouseEvent.button -> X button. */
const X_BUTTON = [1, 2, 3, 8, 9];

let current = null;

/**
 * Starts sending input from `video` (and the keyboard while the video is active).
 * @param {HTMLVideoElement} video
 * @param {(msg: string) => void} send sends one message (data channel, else WebSocket)
 * @param {{ onPinch?: (scale: number, x: number, y: number) => void,
 *           onMessage?: (text: string) => void, viewOnly?: boolean,
 *           focusTarget?: () => HTMLElement|null, largeClipboard?: (text: string) => void }} [options]
 *   onPinch: a two-finger pinch (scale since the gesture started, centre in client pixels);
 *   onMessage: shows text to the user (default: the console); viewOnly: send nothing;
 *   focusTarget: what takes the focus while the desktop has the keyboard (ime.js's hidden
 *   text field, so input methods work; default the video); largeClipboard: sends big pastes.
 * @returns {InputController}
 */
export function attachInput(video, send, options = {}) {
  if (current) current.detach();
  current = new InputController(video, send, options);
  return current;
}

/** Remote control for one video element. */
export class InputController {
  constructor(video, send, options) {
    this.video = video;
    this.send = send;
    this.options = options;
    this.viewOnly = !!options.viewOnly;
    /** Keyboard goes to the remote side after a click on the video, until focus leaves. */
    this.active = false;
    this.keysDown = new Set();
    this.buttonsDown = new Set();
    this.pendingPaste = null;
    this.touch = null;
    /** Last cursor state from the server, for drawing (and tests). */
    this.cursor = { x: null, y: null, shape: null, cssCursor: 'default' };
    this.pointerOver = false;
    this.listeners = [];
    this.overlay = this.#makeOverlay();
    /** The name drawn beside the remote cursor (whoever has control), '' for none. */
    this.cursorLabel = '';
    this.label = this.#makeLabel();

    video.tabIndex = 0;
    video.style.touchAction = 'none';
    const on = (target, type, fn, opts) => {
      target.addEventListener(type, fn, opts);
      this.listeners.push(() => target.removeEventListener(type, fn, opts));
    };
    on(video, 'mousedown', (e) => this.#mouseButton(e, true));
    on(window, 'mouseup', (e) => this.#mouseButton(e, false));
    on(video, 'mousemove', (e) => this.#mouseMove(e));
    on(video, 'mouseenter', () => this.#hover(true));
    on(video, 'mouseleave', () => this.#hover(false));
    on(video, 'wheel', (e) => this.#wheel(e), { passive: false });
    on(video, 'contextmenu', (e) => e.preventDefault());
    on(video, 'auxclick', (e) => e.preventDefault());
    on(video, 'touchstart', (e) => this.#touchStart(e), { passive: false });
    on(video, 'touchmove', (e) => this.#touchMove(e), { passive: false });
    on(video, 'touchend', (e) => this.#touchEnd(e), { passive: false });
    on(video, 'touchcancel', (e) => this.#touchEnd(e), { passive: false });
    on(document, 'mousedown', (e) => {
      if (e.target !== video) this.#deactivate();
    });
    on(window, 'keydown', (e) => this.#key(e, true), true);
    on(window, 'keyup', (e) => this.#key(e, false), true);
    on(window, 'paste', (e) => this.#paste(e), true);
    on(window, 'blur', () => this.#deactivate());
    on(document, 'visibilitychange', () => {
      if (document.hidden) this.#deactivate();
    });
    on(document, 'fullscreenchange', () => this.#fullscreenChanged());
    on(window, 'resize', () => this.#drawCursor());
    on(video, 'resize', () => this.#drawCursor());
  }

  /** Stops listening, releases everything held, removes the overlay. */
  detach() {
    this.#releaseAll();
    this.listeners.forEach((off) => off());
    this.listeners = [];
    this.overlay.remove();
    this.label.remove();
    if (current === this) current = null;
  }

  /** Makes the keyboard go to the remote desktop (as a click on the video does). */
  activate() {
    this.active = true;
    (this.options.focusTarget?.() ?? this.video).focus({ preventScroll: true });
  }

  /** Relative mouse (pointer lock); Escape leaves it. */
  lockPointer() {
    this.activate();
    return this.video.requestPointerLock();
  }

  /** Full screen on `element` with the Keyboard Lock API, so Escape, Alt+Tab... reach X. */
  async enterFullscreen(element = this.video.parentElement || this.video) {
    await element.requestFullscreen();
    this.activate();
  }

  #out(msg) {
    if (this.viewOnly) return;
    try {
      this.send(msg);
    } catch (err) {
      console.warn('vnrit: input not sent:', err && err.message);
    }
  }

  /** The picture's rectangle in client pixels (object-fit: contain letterboxing removed). */
  #picture() {
    const r = this.video.getBoundingClientRect();
    const vw = this.video.videoWidth || r.width;
    const vh = this.video.videoHeight || r.height;
    const scale = Math.min(r.width / vw, r.height / vh) || 1;
    const w = vw * scale;
    const h = vh * scale;
    return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, width: w, height: h };
  }

  /** The pointer to a client pixel (wire.move clamps to the picture). */
  #moveTo(clientX, clientY) {
    const p = this.#picture();
    this.#out(wire.move((clientX - p.left) / p.width, (clientY - p.top) / p.height));
  }

  #mouseMove(e) {
    if (document.pointerLockElement === this.video) {
      const p = this.#picture();
      if (e.movementX || e.movementY) this.#out(wire.moveBy(e.movementX / p.width, e.movementY / p.height));
      return;
    }
    this.#moveTo(e.clientX, e.clientY);
  }

  #mouseButton(e, down) {
    const b = X_BUTTON[e.button];
    if (!b) return;
    if (down) {
      if (e.target !== this.video) return;
      this.activate();
      e.preventDefault();
      if (document.pointerLockElement !== this.video) this.#moveTo(e.clientX, e.clientY);
      this.buttonsDown.add(b);
      this.#out(wire.button(b, true));
    } else if (this.buttonsDown.delete(b)) {
      e.preventDefault(); // also stops back/forward navigation for buttons 8 and 9
      this.#out(wire.button(b, false));
    }
  }

  #wheel(e) {
    e.preventDefault();
    const per = e.deltaMode === 1 ? WHEEL_LINES_PER_NOTCH : e.deltaMode === 2 ? 1 : WHEEL_PIXELS_PER_NOTCH;
    const msg = wire.wheel(e.deltaX / per, e.deltaY / per);
    if (msg) this.#out(msg);
  }

  #key(e, down) {
    if (!this.active || e.isComposing) return;
    // An input method's keys ("Process", 229) compose text that ime.js types once committed.
    if (down && (e.key === 'Process' || e.keyCode === 229)) return;
    if (down && e.repeat) {
      e.preventDefault(); // X repeats held keys itself
      return;
    }
    const code = e.code || '';
    const key = e.key || '';
    if (!code && !key) return;
    if (down) {
      // Ctrl+V / Cmd+V: let the browser fire 'paste' first, so the clipboard goes over
      // before the key that pastes it.
      if ((e.ctrlKey || e.metaKey) && code === 'KeyV' && !this.pendingPaste) {
        this.pendingPaste = { code, key, timer: setTimeout(() => this.#flushPaste(), PASTE_WAIT_MS) };
        this.keysDown.add(code);
        return;
      }
      this.keysDown.add(code);
      this.#out(wire.key(code, key, true));
    } else {
      if (this.pendingPaste && this.pendingPaste.code === code) this.#flushPaste();
      if (!this.keysDown.delete(code)) return;
      this.#out(wire.key(code, key, false));
    }
    e.preventDefault();
    e.stopPropagation();
  }

  #flushPaste() {
    const p = this.pendingPaste;
    if (!p) return;
    clearTimeout(p.timer);
    this.pendingPaste = null;
    this.#out(wire.key(p.code, p.key, true));
  }

  #paste(e) {
    if (!this.active) return;
    const text = e.clipboardData ? e.clipboardData.getData('text/plain') : '';
    e.preventDefault();
    if (text) this.sendClipboard(text);
    this.#flushPaste();
  }

  /**
   * Sets the remote clipboard (CLIPBOARD and PRIMARY) to `text`.
   * @param {string} text
   * @returns {boolean} false when the text is over the size limit (the user is told)
   */
  sendClipboard(text) {
    const bytes = wire.utf8Bytes(text);
    if (bytes > wire.MAX_CLIPBOARD_BYTES && this.options.largeClipboard) {
      this.options.largeClipboard(text);
      return true;
    }
    if (bytes > wire.MAX_CLIPBOARD_BYTES) {
      this.#show(`Clipboard not sent: ${bytes} bytes is over the ${wire.MAX_CLIPBOARD_BYTES}-byte limit.`);
      return false;
    }
    this.#out(wire.clipboard(text));
    return true;
  }

  #deactivate() {
    this.active = false;
    if (this.keysDown.size || this.buttonsDown.size || this.touch) this.#releaseAll();
  }

  #releaseAll() {
    if (this.pendingPaste) clearTimeout(this.pendingPaste.timer);
    this.pendingPaste = null;
    this.keysDown.clear();
    this.buttonsDown.clear();
    this.#cancelTouch();
    this.#out(wire.releaseAll());
  }

  async #fullscreenChanged() {
    const kb = navigator.keyboard;
    if (!kb || !kb.lock) return;
    try {
      if (document.fullscreenElement) await kb.lock();
      else kb.unlock();
    } catch (err) {
      console.warn('vnrit: keyboard lock unavailable:', err && err.message);
    }
  }

  // ---- touch: tap = click, drag = move with button 1, long press = right click,
  //      two fingers = scroll, pinch = client zoom (options.onPinch) ----

  #touchStart(e) {
    e.preventDefault();
    this.activate();
    const ts = e.touches;
    if (ts.length === 1) {
      const t = ts[0];
      this.#cancelTouch();
      this.touch = {
        mode: 'pending',
        x0: t.clientX,
        y0: t.clientY,
        timer: setTimeout(() => this.#longPress(), LONG_PRESS_MS),
      };
    } else if (ts.length === 2) {
      const wasDragging = this.touch && this.touch.mode === 'drag';
      this.#cancelTouch();
      if (wasDragging) this.#out(wire.button(1, false));
      const [a, b] = [ts[0], ts[1]];
      this.touch = {
        mode: 'two',
        cx: (a.clientX + b.clientX) / 2,
        cy: (a.clientY + b.clientY) / 2,
        d0: Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY) || 1,
        pinch: false,
      };
    }
  }

  #longPress() {
    const t = this.touch;
    if (!t || t.mode !== 'pending') return;
    t.mode = 'done';
    this.#moveTo(t.x0, t.y0);
    this.#out(wire.button(3, true));
    this.#out(wire.button(3, false));
  }

  #touchMove(e) {
    e.preventDefault();
    const t = this.touch;
    if (!t) return;
    const ts = e.touches;
    if (t.mode === 'two' && ts.length >= 2) {
      const [a, b] = [ts[0], ts[1]];
      const cx = (a.clientX + b.clientX) / 2;
      const cy = (a.clientY + b.clientY) / 2;
      const d = Math.hypot(a.clientX - b.clientX, a.clientY - b.clientY);
      if (t.pinch || Math.abs(d / t.d0 - 1) > PINCH_RATIO) {
        t.pinch = true;
        if (this.options.onPinch) this.options.onPinch(d / t.d0, cx, cy);
        return;
      }
      // Fingers moving up scroll the content down, as on a phone.
      const dx = (t.cx - cx) / TOUCH_PIXELS_PER_NOTCH;
      const dy = (t.cy - cy) / TOUCH_PIXELS_PER_NOTCH;
      if (Math.abs(dx) >= 0.05 || Math.abs(dy) >= 0.05) {
        const msg = wire.wheel(dx, dy);
        if (msg) this.#out(msg);
        t.cx = cx;
        t.cy = cy;
      }
      return;
    }
    if (ts.length !== 1) return;
    const p = ts[0];
    if (t.mode === 'pending' && Math.hypot(p.clientX - t.x0, p.clientY - t.y0) > TAP_SLOP_PX) {
      clearTimeout(t.timer);
      t.mode = 'drag';
      this.#moveTo(t.x0, t.y0);
      this.#out(wire.button(1, true));
    }
    if (t.mode === 'drag') this.#moveTo(p.clientX, p.clientY);
  }

  #touchEnd(e) {
    e.preventDefault();
    const t = this.touch;
    if (!t || e.touches.length > 0) return;
    clearTimeout(t.timer);
    if (t.mode === 'pending') {
      this.#moveTo(t.x0, t.y0);
      this.#out(wire.button(1, true));
      this.#out(wire.button(1, false));
    } else if (t.mode === 'drag') {
      this.#out(wire.button(1, false));
    }
    this.touch = null;
  }

  #cancelTouch() {
    if (this.touch) clearTimeout(this.touch.timer);
    this.touch = null;
  }

  // ---- from the server (parsed by wire.js): the cursor ----

  /** The X pointer is at the normalised picture position (x, y) (`cp`). */
  cursorAt(x, y) {
    this.cursor.x = x;
    this.cursor.y = y;
    this.#drawCursor();
  }

  #makeOverlay() {
    const c = document.createElement('canvas');
    c.id = 'vnrit-cursor';
    Object.assign(c.style, {
      position: 'fixed',
      left: '0',
      top: '0',
      pointerEvents: 'none',
      zIndex: '10',
      display: 'none',
      imageRendering: 'pixelated',
    });
    document.body.appendChild(c);
    return c;
  }

  #makeLabel() {
    const l = document.createElement('div');
    l.id = 'vnrit-cursor-label';
    document.body.appendChild(l);
    return l;
  }

  /** Shows `text` (the controller's name) beside the remote cursor; '' hides it. */
  setCursorLabel(text) {
    this.cursorLabel = text;
    this.#drawCursor();
  }

  /**
   * The cursor's shape (`cs`): size, hot spot and the X screen's size, and its pixels as
   * base64 of RGBA (null for none).
   * @param {{serial: number, w: number, h: number, hx: number, hy: number, sw: number, sh: number, rgba: string|null}} s
   */
  setCursorShape(s) {
    const { serial, w, h, hx, hy, sw, sh, rgba: b64 } = s;
    const shape = { serial, w, h, hx, hy, sw, sh };
    this.cursor.shape = shape;
    const c = this.overlay;
    if (!(w > 0 && h > 0) || b64 === null) {
      c.width = c.height = 0;
      this.cursor.cssCursor = 'default';
      this.#drawCursor();
      return;
    }
    const bytes = Uint8ClampedArray.from(atob(b64), (ch) => ch.charCodeAt(0));
    if (bytes.length !== w * h * 4) return;
    c.width = w;
    c.height = h;
    c.getContext('2d').putImageData(new ImageData(bytes, w, h), 0, 0);
    // Over the video, a controlling user sees the remote shape as the local cursor (no lag).
    this.cursor.cssCursor = `url(${c.toDataURL()}) ${hx} ${hy}, default`;
    this.#drawCursor();
  }

  #hover(over) {
    this.pointerOver = over;
    this.#drawCursor();
  }

  #drawCursor() {
    const { x, y, shape } = this.cursor;
    const local = this.pointerOver && !this.viewOnly;
    this.video.style.cursor = local ? this.cursor.cssCursor : '';
    const c = this.overlay;
    this.label.style.display = 'none';
    if (local || x === null || !shape || !(shape.w > 0) || !this.video.videoWidth) {
      c.style.display = 'none';
      return;
    }
    const p = this.#picture();
    const scale = p.width / shape.sw;
    c.style.width = `${shape.w * scale}px`;
    c.style.height = `${shape.h * scale}px`;
    const left = p.left + x * p.width - shape.hx * scale;
    const top = p.top + y * p.height - shape.hy * scale;
    c.style.transform = `translate(${left}px, ${top}px)`;
    c.style.display = 'block';
    if (this.cursorLabel) {
      this.label.textContent = this.cursorLabel;
      this.label.style.transform = `translate(${left + shape.w * scale}px, ${top + shape.h * scale}px)`;
      this.label.style.display = 'block';
    }
  }

  /** Tells the user `message` (options.onMessage, else the console). */
  #show(message) {
    if (this.options.onMessage) this.options.onMessage(message);
    else console.info(`vnrit: ${message}`);
  }
}
