// vnrit viewer: mouse, wheel and touch over the stage, turned into remote input and view
// changes. Mouse: absolute moves, buttons, wheel; Alt+wheel (and a trackpad pinch, which
// browsers report as Ctrl+wheel) zooms. Touch has two modes:
//  - trackpad: a finger moves the remote cursor relative to where it is; tap = left click,
//    two-finger tap = right click, long press then drag = drag, two fingers = scroll or pinch;
//  - direct: the remote cursor goes where the finger is; tap = click, drag = drag,
//    long press = right click, two fingers = pan (when zoomed) or scroll, or pinch.

const LONG_PRESS_MS = 550;
const SLOP_PX = 10;
/** Trackpad speed: cursor travel per finger travel over the shown frame. */
const PAD_SPEED = 1.6;
/** CSS px of two-finger travel per wheel notch. */
const SCROLL_PX = 40;

/** Browser button number -> X button. */
const X_BUTTON = [1, 2, 3, 8, 9];

/** Routes pointer events on the stage. */
export class PointerInput {
  /**
   * @param {HTMLElement} stage
   * @param {import('./view.js').View} view
   * @param {import('./cursor.js').CursorOverlay} cursor
   * @param {() => import('./remote.js').RemoteInput|null} remote the live input, if any
   */
  constructor(stage, view, cursor, remote) {
    this.stage = stage;
    this.view = view;
    this.cursor = cursor;
    this.remote = remote;
    /** 'trackpad' or 'direct'. */
    this.touchMode = 'trackpad';
    this.mouseAt = null; // last mouse client position while over the stage
    this.touches = new Map();
    this.gesture = null;
    this.wheelRest = { x: 0, y: 0 };

    stage.addEventListener('pointerdown', (e) => this.#down(e));
    stage.addEventListener('pointermove', (e) => this.#move(e));
    stage.addEventListener('pointerup', (e) => this.#up(e));
    stage.addEventListener('pointercancel', (e) => this.#up(e, true));
    stage.addEventListener('pointerleave', (e) => {
      if (e.pointerType === 'mouse') {
        this.mouseAt = null;
        view.pointerAt(null);
      }
    });
    stage.addEventListener('wheel', (e) => this.#wheel(e), { passive: false });
    stage.addEventListener('contextmenu', (e) => e.preventDefault());
    // Edge panning moves the frame under a resting mouse: tell the desktop where it now is.
    view.onChange(() => {
      if (this.mouseAt) this.#sendMouse(this.mouseAt.x, this.mouseAt.y, false);
    });
  }

  #sendMouse(clientX, clientY, edge = true) {
    const f = this.view.toFrame(clientX, clientY);
    this.remote()?.move(f.x, f.y);
    this.cursor.predict(f.x, f.y);
    if (edge) {
      const b = this.stage.getBoundingClientRect();
      this.view.pointerAt({ x: clientX - b.left, y: clientY - b.top });
    }
  }

  #down(e) {
    if (e.pointerType !== 'mouse' && e.pointerType !== 'pen') return this.#touchDown(e);
    e.preventDefault();
    this.stage.focus({ preventScroll: true });
    this.stage.setPointerCapture?.(e.pointerId);
    this.mouseAt = { x: e.clientX, y: e.clientY };
    this.#sendMouse(e.clientX, e.clientY);
    const b = X_BUTTON[e.button];
    if (b) this.remote()?.button(b, true);
  }

  #move(e) {
    if (e.pointerType !== 'mouse' && e.pointerType !== 'pen') return this.#touchMove(e);
    this.mouseAt = { x: e.clientX, y: e.clientY };
    this.#sendMouse(e.clientX, e.clientY);
  }

  #up(e, cancelled = false) {
    if (e.pointerType !== 'mouse' && e.pointerType !== 'pen') return this.#touchUp(e, cancelled);
    const b = X_BUTTON[e.button];
    if (b) this.remote()?.button(b, false);
  }

  #wheel(e) {
    e.preventDefault();
    const b = this.stage.getBoundingClientRect();
    const per = e.deltaMode === 1 ? 3 : e.deltaMode === 2 ? 0.1 : 100;
    if (e.altKey || e.ctrlKey) {
      this.view.setZoom(this.view.zoom * Math.exp((-e.deltaY / per) * 0.2), e.clientX - b.left, e.clientY - b.top);
      return;
    }
    this.#scroll(e.deltaX / per, e.deltaY / per);
  }

  /** Sends whole wheel notches (fractions add up until they make one). */
  #scroll(nx, ny) {
    const w = this.wheelRest;
    w.x += nx;
    w.y += ny;
    const sx = Math.trunc(w.x);
    const sy = Math.trunc(w.y);
    if (sx || sy) {
      w.x -= sx;
      w.y -= sy;
      this.remote()?.wheel(sx, sy);
    }
  }

  // ---- touch ----

  #touchDown(e) {
    e.preventDefault();
    this.stage.focus({ preventScroll: true });
    this.stage.setPointerCapture?.(e.pointerId);
    const t = { x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY, t0: performance.now() };
    this.touches.set(e.pointerId, t);
    if (this.touches.size === 1) {
      this.gesture = { kind: 'one', moved: false, pressed: false, maxTouches: 1, done: false };
      if (this.touchMode === 'direct') this.#sendMouse(e.clientX, e.clientY, false);
      this.gesture.timer = setTimeout(() => this.#longPress(), LONG_PRESS_MS);
    } else if (this.gesture) {
      clearTimeout(this.gesture.timer);
      this.gesture.maxTouches = Math.max(this.gesture.maxTouches, this.touches.size);
      if (this.touches.size === 2) {
        const [a, b] = [...this.touches.values()];
        this.gesture.kind = 'two';
        this.gesture.dist0 = Math.hypot(a.x - b.x, a.y - b.y) || 1;
        this.gesture.zoom0 = this.view.zoom;
        this.gesture.mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
        this.gesture.mode = null; // 'pinch' | 'scroll' | 'pan', decided by the first motion
      }
    }
  }

  #longPress() {
    const g = this.gesture;
    if (!g || g.kind !== 'one' || g.moved) return;
    if (this.touchMode === 'direct') {
      this.remote()?.click(3);
      g.done = true;
    } else {
      this.remote()?.button(1, true); // long press then drag = drag
      g.pressed = true;
    }
    navigator.vibrate?.(20);
  }

  #touchMove(e) {
    const t = this.touches.get(e.pointerId);
    const g = this.gesture;
    if (!t || !g) return;
    const dx = e.clientX - t.x;
    const dy = e.clientY - t.y;
    t.x = e.clientX;
    t.y = e.clientY;
    if (g.kind === 'one') {
      if (!g.moved && Math.hypot(t.x - t.x0, t.y - t.y0) < SLOP_PX) return;
      if (!g.moved) clearTimeout(g.timer);
      g.moved = true;
      if (g.done) return;
      if (this.touchMode === 'direct') {
        if (!g.pressed) {
          this.remote()?.button(1, true);
          g.pressed = true;
        }
        this.#sendMouse(e.clientX, e.clientY, false);
      } else {
        // Finger travel over the shown frame moves the cursor PAD_SPEED times as far, so a
        // zoomed view gives finer control.
        const r = this.view.rect;
        const x = Math.min(1, Math.max(0, this.cursor.x + (dx * PAD_SPEED) / (r.width || 1)));
        const y = Math.min(1, Math.max(0, this.cursor.y + (dy * PAD_SPEED) / (r.height || 1)));
        this.remote()?.move(x, y);
        this.cursor.predict(x, y);
        this.view.keepVisible(x, y);
      }
    } else if (g.kind === 'two' && this.touches.size === 2) {
      const [a, b] = [...this.touches.values()];
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      const ratio = Math.hypot(a.x - b.x, a.y - b.y) / g.dist0;
      if (!g.mode) {
        if (Math.abs(ratio - 1) > 0.12) g.mode = 'pinch';
        else if (Math.hypot(mid.x - g.mid.x, mid.y - g.mid.y) > SLOP_PX) {
          g.mode = this.touchMode === 'direct' && this.view.cropped() ? 'pan' : 'scroll';
        } else return;
      }
      const box = this.stage.getBoundingClientRect();
      if (g.mode === 'pinch') {
        this.view.setZoom(g.zoom0 * ratio, mid.x - box.left, mid.y - box.top);
        this.view.panBy(mid.x - g.mid.x, mid.y - g.mid.y);
      } else if (g.mode === 'pan') {
        this.view.panBy(mid.x - g.mid.x, mid.y - g.mid.y);
      } else {
        this.#scroll(-(mid.x - g.mid.x) / SCROLL_PX, -(mid.y - g.mid.y) / SCROLL_PX);
      }
      g.mid = mid;
    }
  }

  #touchUp(e, cancelled) {
    const t = this.touches.get(e.pointerId);
    this.touches.delete(e.pointerId);
    const g = this.gesture;
    if (!t || !g) return;
    if (this.touches.size > 0) return;
    clearTimeout(g.timer);
    this.gesture = null;
    if (g.pressed) {
      this.remote()?.button(1, false);
      return;
    }
    if (cancelled || g.done) return;
    const quick = performance.now() - t.t0 < LONG_PRESS_MS;
    if (g.kind === 'two' && !g.mode && quick) this.remote()?.click(3);
    else if (g.kind === 'one' && !g.moved && quick) this.remote()?.click(1);
  }
}
