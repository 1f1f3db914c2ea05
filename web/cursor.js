// vnrit viewer: the remote cursor drawn over the video. The server sends the X cursor's
// shape (`cs`) and position (`cp`); the page moves the drawing at once to where the local
// pointer is (prediction) and lets the server's position win again once local motion stops.
// While a remote shape is known the local cursor is hidden over the stage.

/** After local motion, server positions older than this are ignored (they lag behind). */
const PREDICTION_MS = 250;

/** Draws the remote cursor on a canvas positioned over the video. */
export class CursorOverlay {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {HTMLElement} stage gets class `remote-cursor` while a shape is drawn
   * @param {import('./view.js').View} view
   */
  constructor(canvas, stage, view) {
    this.canvas = canvas;
    this.stage = stage;
    this.view = view;
    this.shape = null; // {w, h, hx, hy, sw, sh}
    /** Last known position (normalised frame coordinates), from the server or predicted. */
    this.x = 0.5;
    this.y = 0.5;
    this.known = false;
    this.localUntil = 0;
    this.listeners = new Set();
    view.onChange(() => this.place());
  }

  /** Calls `fn(x, y)` whenever the server moves the cursor (not for predicted moves). */
  onServerMove(fn) {
    this.listeners.add(fn);
  }

  /** The server's cursor image: `cs` arguments. */
  setShape([serial, w, h, hx, hy, sw, sh, rgba]) {
    w |= 0;
    h |= 0;
    if (w <= 0 || h <= 0 || w > 256 || h > 256 || typeof rgba !== 'string') {
      this.shape = null; // an empty cursor (hidden by the application) draws nothing
      this.place();
      return;
    }
    let bytes;
    try {
      bytes = Uint8ClampedArray.from(atob(rgba), (c) => c.charCodeAt(0));
    } catch {
      return;
    }
    if (bytes.length !== w * h * 4) return;
    this.canvas.width = w;
    this.canvas.height = h;
    this.canvas.getContext('2d').putImageData(new ImageData(bytes, w, h), 0, 0);
    this.shape = { serial, w, h, hx: +hx || 0, hy: +hy || 0, sw: +sw || 0, sh: +sh || 0 };
    this.place();
  }

  /** The server's pointer position: `cp` arguments. */
  setPosition(x, y) {
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    this.known = true;
    if (performance.now() < this.localUntil) return;
    this.x = x;
    this.y = y;
    this.place();
    this.listeners.forEach((fn) => fn(x, y));
  }

  /** The local pointer moved to (x, y): draw there now, ahead of the server's answer. */
  predict(x, y) {
    this.localUntil = performance.now() + PREDICTION_MS;
    this.x = x;
    this.y = y;
    this.place();
  }

  /** Forgets the shape (session ended). */
  reset() {
    this.shape = null;
    this.known = false;
    this.place();
  }

  /** Positions the canvas for the current view and position. */
  place() {
    const s = this.shape;
    const st = this.canvas.style;
    this.stage.classList.toggle('remote-cursor', !!s);
    if (!s || !this.view.rect.width) {
      st.display = 'none';
      return;
    }
    const { w: fw } = this.view.frameSize();
    // The image is in X pixels; the video may be scaled from the X screen, and then zoomed.
    const k = this.view.rect.width / (s.sw || fw);
    const p = this.view.toStage(this.x, this.y);
    st.display = 'block';
    st.width = `${s.w * k}px`;
    st.height = `${s.h * k}px`;
    st.transform = `translate(${p.x - s.hx * k}px, ${p.y - s.hy * k}px)`;
  }
}
