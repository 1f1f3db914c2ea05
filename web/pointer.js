// vnrit viewer: what the stage adds to input.js's mouse and touch handling.
//  - Alt+wheel (and a trackpad pinch, which browsers report as Ctrl+wheel) zooms the view
//    instead of scrolling the desktop; the event stops here, before input.js sees it.
//  - A mouse resting at an edge of a zoomed view pans it, and the desktop pointer follows.
//  - Touch has two modes. 'direct' is input.js's (the cursor goes where the finger is; tap =
//    click, drag = drag, long press = right click, two fingers scroll) plus pinch zoom.
//    'trackpad' is handled here and kept from input.js: a finger moves the cursor relative
//    to where it is; tap = left click, two-finger tap = right click, long press then drag =
//    drag, two fingers scroll, pinch zooms.

const LONG_PRESS_MS = 550;
const SLOP_PX = 10;
/** Trackpad speed: cursor travel per finger travel over the shown frame. */
const PAD_SPEED = 1.6;
/** CSS px of two-finger travel per wheel notch. */
const SCROLL_PX = 40;
const PINCH_RATIO = 0.12;

/** Stage-level gestures. */
export class PointerInput {
  /**
   * @param {HTMLElement} stage
   * @param {import('./view.js').View} view
   * @param {() => import('./remote.js').RemoteInput|null} remote
   * @param {() => {x: number|null, y: number|null}} serverCursor the desktop pointer as last reported
   * @param {(x: number, y: number) => void} predict draws the cursor where a trackpad move
   *   will put it, before the server confirms
   */
  constructor(stage, view, remote, serverCursor, predict) {
    this.predict = predict;
    this.stage = stage;
    this.view = view;
    this.remote = remote;
    this.serverCursor = serverCursor;
    /** 'trackpad' or 'direct'. */
    this.touchMode = 'trackpad';
    /** Last mouse client position while over the stage, else null. */
    this.mouseAt = null;
    this.touches = new Map();
    this.gesture = null;
    this.wheelRest = { x: 0, y: 0 };
    /** The trackpad cursor (normalised frame position), ahead of the server's reports. */
    this.pad = null;
    this.pinchZoom0 = null;

    stage.addEventListener('wheel', (e) => this.#wheel(e), { capture: true, passive: false });
    stage.addEventListener('pointermove', (e) => this.#mouse(e));
    stage.addEventListener('pointerleave', (e) => {
      if (e.pointerType === 'mouse') {
        this.mouseAt = null;
        view.pointerAt(null);
      }
    });
    // Edge panning moves the frame under a resting mouse: tell the desktop where it now is.
    view.onChange(() => {
      if (!this.mouseAt) return;
      const f = view.toFrame(this.mouseAt.x, this.mouseAt.y);
      this.remote()?.move(f.x, f.y);
    });
    // Trackpad mode owns touch: keep the touch events from input.js (capture phase).
    for (const type of ['touchstart', 'touchmove', 'touchend', 'touchcancel']) {
      stage.addEventListener(
        type,
        (e) => {
          if (type === 'touchstart' && e.touches.length === 1) this.pinchZoom0 = null;
          if (this.touchMode !== 'trackpad') return;
          e.stopPropagation();
          if (e.cancelable) e.preventDefault();
        },
        { capture: true, passive: false },
      );
    }
    stage.addEventListener('pointerdown', (e) => this.#touch(e, 'down'));
    stage.addEventListener('pointermove', (e) => this.#touch(e, 'move'));
    stage.addEventListener('pointerup', (e) => this.#touch(e, 'up'));
    stage.addEventListener('pointercancel', (e) => this.#touch(e, 'cancel'));
  }

  /** input.js's pinch callback (direct mode): zoom around the fingers' centre. */
  pinch(scale, clientX, clientY) {
    this.pinchZoom0 ??= this.view.zoom;
    const b = this.stage.getBoundingClientRect();
    this.view.setZoom(this.pinchZoom0 * scale, clientX - b.left, clientY - b.top);
  }

  #wheel(e) {
    if (!e.altKey && !e.ctrlKey) return; // plain wheel: input.js scrolls the desktop
    e.preventDefault();
    e.stopPropagation();
    const per = e.deltaMode === 1 ? 3 : e.deltaMode === 2 ? 0.1 : 100;
    const b = this.stage.getBoundingClientRect();
    this.view.setZoom(this.view.zoom * Math.exp((-e.deltaY / per) * 0.2), e.clientX - b.left, e.clientY - b.top);
  }

  #mouse(e) {
    if (e.pointerType !== 'mouse' && e.pointerType !== 'pen') return;
    this.mouseAt = { x: e.clientX, y: e.clientY };
    const b = this.stage.getBoundingClientRect();
    this.view.pointerAt({ x: e.clientX - b.left, y: e.clientY - b.top });
  }

  // ---- trackpad mode ----

  #touch(e, phase) {
    if (e.pointerType !== 'touch' || this.touchMode !== 'trackpad') return;
    if (phase === 'down') this.#down(e);
    else if (phase === 'move') this.#move(e);
    else this.#up(e, phase === 'cancel');
  }

  #down(e) {
    const t = { x: e.clientX, y: e.clientY, x0: e.clientX, y0: e.clientY, t0: performance.now() };
    this.touches.set(e.pointerId, t);
    if (this.touches.size === 1) {
      const c = this.serverCursor();
      this.pad = { x: c.x ?? this.pad?.x ?? 0.5, y: c.y ?? this.pad?.y ?? 0.5 };
      this.gesture = { kind: 'one', moved: false, pressed: false };
      this.gesture.timer = setTimeout(() => this.#longPress(), LONG_PRESS_MS);
    } else if (this.gesture && this.touches.size === 2) {
      clearTimeout(this.gesture.timer);
      const [a, b] = [...this.touches.values()];
      Object.assign(this.gesture, {
        kind: 'two',
        dist0: Math.hypot(a.x - b.x, a.y - b.y) || 1,
        zoom0: this.view.zoom,
        mid: { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 },
        mode: null, // 'pinch' or 'scroll', decided by the first clear motion
      });
    }
  }

  #longPress() {
    const g = this.gesture;
    if (!g || g.kind !== 'one' || g.moved) return;
    this.remote()?.button(1, true); // long press then drag = drag
    g.pressed = true;
    navigator.vibrate?.(20);
  }

  #move(e) {
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
      // Finger travel over the shown frame moves the cursor PAD_SPEED times as far, so a
      // zoomed view gives finer control.
      const r = this.view.rect;
      const x = Math.min(1, Math.max(0, this.pad.x + (dx * PAD_SPEED) / (r.width || 1)));
      const y = Math.min(1, Math.max(0, this.pad.y + (dy * PAD_SPEED) / (r.height || 1)));
      this.pad = { x, y };
      this.remote()?.move(x, y);
      this.predict(x, y);
      this.view.keepVisible(x, y);
    } else if (g.kind === 'two' && this.touches.size === 2) {
      const [a, b] = [...this.touches.values()];
      const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      const ratio = Math.hypot(a.x - b.x, a.y - b.y) / g.dist0;
      if (!g.mode) {
        if (Math.abs(ratio - 1) > PINCH_RATIO) g.mode = 'pinch';
        else if (Math.hypot(mid.x - g.mid.x, mid.y - g.mid.y) > SLOP_PX) g.mode = 'scroll';
        else return;
      }
      if (g.mode === 'pinch') {
        const box = this.stage.getBoundingClientRect();
        this.view.setZoom(g.zoom0 * ratio, mid.x - box.left, mid.y - box.top);
        this.view.panBy(mid.x - g.mid.x, mid.y - g.mid.y);
      } else {
        this.#scroll(-(mid.x - g.mid.x) / SCROLL_PX, -(mid.y - g.mid.y) / SCROLL_PX);
      }
      g.mid = mid;
    }
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

  #up(e, cancelled) {
    const t = this.touches.get(e.pointerId);
    this.touches.delete(e.pointerId);
    const g = this.gesture;
    if (!t || !g || this.touches.size > 0) return;
    clearTimeout(g.timer);
    this.gesture = null;
    if (g.pressed) {
      this.remote()?.button(1, false);
      return;
    }
    if (cancelled) return;
    const quick = performance.now() - t.t0 < LONG_PRESS_MS;
    if (g.kind === 'two' && !g.mode && quick) this.remote()?.click(3);
    else if (g.kind === 'one' && !g.moved && quick) this.remote()?.click(1);
  }

  /** Forgets the trackpad cursor (it follows the server's again), e.g. on a new session. */
  reset() {
    this.pad = null;
  }
}
