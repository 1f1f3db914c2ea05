// vnrit viewer: where the video sits in the window. Owns the layout (fit with letterbox, or
// 1:1 device pixels; fit is 1:1 too when the picture is the size fit.js asked for), zoom (1x to 8x) and pan, keeps the remote cursor in view while zoomed,
// pans when the pointer rests at an edge of a zoomed view, and maps window points to the
// normalised frame coordinates the input wire format uses. Follows window, orientation and
// toolbar changes through a ResizeObserver on the stage.

const MIN_ZOOM = 1;
const MAX_ZOOM = 8;
/** Zoom factor of one toolbar click. */
const ZOOM_STEP = 1.25;
/** The remote cursor is kept at least this far (CSS px) inside the stage while zoomed. */
const CURSOR_MARGIN = 48;
/** Pointer this close (CSS px) to an edge of a zoomed view pans it. */
const EDGE = 24;
/** Edge panning speed, CSS px per animation frame. */
const EDGE_SPEED = 14;

/** Layout, zoom and pan of the video element inside the stage. */
export class View {
  /**
   * @param {HTMLElement} stage the positioned container filling the window
   * @param {HTMLVideoElement} video
   */
  constructor(stage, video) {
    this.stage = stage;
    this.video = video;
    /** 'fit' (letterboxed to the window) or 'pixel' (one video pixel per device pixel). */
    this.mode = 'fit';
    /**
     * The desktop size this page asked the server for (fit.js), in device pixels, or null.
     * In fit mode a picture of exactly that size is shown 1:1 rather than scaled.
     */
    this.requested = null;
    this.zoom = 1;
    /** The frame point (normalised) at the centre of the stage. */
    this.cx = 0.5;
    this.cy = 0.5;
    /** The video's box in stage CSS pixels. */
    this.rect = { left: 0, top: 0, width: 0, height: 0 };
    this.listeners = new Set();
    this.edge = null; // {dx, dy} while the pointer rests at an edge
    this.edgeFrame = 0;
    new ResizeObserver(() => this.layout()).observe(stage);
    video.addEventListener('resize', () => this.layout());
    video.addEventListener('loadedmetadata', () => this.layout());
    this.#watchPixelRatio();
  }

  /** Re-lays out when the device pixel ratio changes (browser zoom, another screen): 1:1 depends on it. */
  #watchPixelRatio() {
    const mq = matchMedia(`(resolution: ${devicePixelRatio || 1}dppx)`);
    mq.addEventListener?.(
      'change',
      () => {
        this.layout();
        this.#watchPixelRatio();
      },
      { once: true },
    );
  }

  /** Calls `fn(view)` after every layout change. */
  onChange(fn) {
    this.listeners.add(fn);
  }

  /** The stream's size in pixels, or 16:9 placeholders before the first frame. */
  frameSize() {
    const w = this.video.videoWidth || 1280;
    const h = this.video.videoHeight || 720;
    return { w, h };
  }

  /** Switches between fit-to-window and 1:1 pixels; resets zoom. */
  setMode(mode) {
    this.mode = mode === 'pixel' ? 'pixel' : 'fit';
    this.zoom = 1;
    this.layout();
  }

  /**
   * Sets the zoom, keeping the frame point under stage point (fx, fy) where it is.
   * @param {number} zoom
   * @param {number} [fx] stage x (CSS px); default the stage centre
   * @param {number} [fy]
   */
  setZoom(zoom, fx, fy) {
    const z = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
    const { width: W, height: H } = this.stageSize();
    fx ??= W / 2;
    fy ??= H / 2;
    const r = this.rect;
    const u = r.width ? (fx - r.left) / r.width : 0.5;
    const v = r.height ? (fy - r.top) / r.height : 0.5;
    this.zoom = z;
    const s = this.scale();
    const { w, h } = this.frameSize();
    // Put frame point (u, v) back under (fx, fy): left' = fx - u * w * s.
    this.cx = (W / 2 - (fx - u * w * s)) / (w * s);
    this.cy = (H / 2 - (fy - v * h * s)) / (h * s);
    this.layout();
  }

  /** Zooms in (or out for a negative `steps`) by toolbar steps around a stage point. */
  zoomBy(steps, fx, fy) {
    this.setZoom(this.zoom * ZOOM_STEP ** steps, fx, fy);
  }

  /** Moves the view by (dx, dy) CSS pixels (positive = content moves right/down). */
  panBy(dx, dy) {
    const { w, h } = this.frameSize();
    const s = this.scale();
    this.cx -= dx / (w * s);
    this.cy -= dy / (h * s);
    this.layout();
  }

  stageSize() {
    return { width: this.stage.clientWidth, height: this.stage.clientHeight };
  }

  /** CSS pixels per frame pixel. */
  scale() {
    const { width: W, height: H } = this.stageSize();
    const { w, h } = this.frameSize();
    const base = this.mode === 'pixel' || this.#fitsOneToOne(W, H, w, h) ? 1 / (devicePixelRatio || 1) : Math.min(W / w, H / h);
    return base * this.zoom;
  }

  /** True when the picture is the size this page asked for and fits the stage 1:1. */
  #fitsOneToOne(W, H, w, h) {
    const r = this.requested;
    const dpr = devicePixelRatio || 1;
    return !!r && r.w === w && r.h === h && w <= W * dpr + 1 && h <= H * dpr + 1;
  }

  /** Recomputes the video box from the stage size, mode, zoom and pan, and applies it. */
  layout() {
    const { width: W, height: H } = this.stageSize();
    const { w, h } = this.frameSize();
    const s = this.scale();
    const dw = w * s;
    const dh = h * s;
    const place = (size, room, c) => {
      if (size <= room) return { off: (room - size) / 2, c: 0.5 };
      const off = Math.min(0, Math.max(room - size, room / 2 - c * size));
      return { off, c: (room / 2 - off) / size };
    };
    const x = place(dw, W, this.cx);
    const y = place(dh, H, this.cy);
    this.cx = x.c;
    this.cy = y.c;
    this.rect = { left: x.off, top: y.off, width: dw, height: dh };
    const st = this.video.style;
    st.left = `${x.off}px`;
    st.top = `${y.off}px`;
    st.width = `${dw}px`;
    st.height = `${dh}px`;
    this.listeners.forEach((fn) => fn(this));
  }

  /** True when part of the frame is outside the stage (zoomed or 1:1 on a small window). */
  cropped() {
    const { width: W, height: H } = this.stageSize();
    return this.rect.width > W + 0.5 || this.rect.height > H + 0.5;
  }

  /**
   * A window point (clientX/Y) as normalised frame coordinates, clamped to [0, 1].
   * @returns {{x: number, y: number, inside: boolean}}
   */
  toFrame(clientX, clientY) {
    const b = this.stage.getBoundingClientRect();
    const r = this.rect;
    const x = (clientX - b.left - r.left) / (r.width || 1);
    const y = (clientY - b.top - r.top) / (r.height || 1);
    const inside = x >= 0 && x <= 1 && y >= 0 && y <= 1;
    return { x: Math.min(1, Math.max(0, x)), y: Math.min(1, Math.max(0, y)), inside };
  }

  /** A normalised frame point as stage CSS pixels. */
  toStage(x, y) {
    return { x: this.rect.left + x * this.rect.width, y: this.rect.top + y * this.rect.height };
  }

  /** Pans the least needed so the frame point (x, y) lies CURSOR_MARGIN inside the stage. */
  keepVisible(x, y) {
    if (!this.cropped()) return;
    const { width: W, height: H } = this.stageSize();
    const p = this.toStage(x, y);
    const m = Math.min(CURSOR_MARGIN, W / 4, H / 4);
    let dx = 0;
    let dy = 0;
    if (p.x < m) dx = m - p.x;
    else if (p.x > W - m) dx = W - m - p.x;
    if (p.y < m) dy = m - p.y;
    else if (p.y > H - m) dy = H - m - p.y;
    if (dx || dy) this.panBy(dx, dy);
  }

  /**
   * Edge panning: call with the pointer's stage position (or null when it left). While it
   * rests within EDGE of a side of a zoomed view, the view scrolls that way.
   */
  pointerAt(p) {
    let dx = 0;
    let dy = 0;
    if (p && this.cropped()) {
      const { width: W, height: H } = this.stageSize();
      if (p.x < EDGE) dx = EDGE_SPEED;
      else if (p.x > W - EDGE) dx = -EDGE_SPEED;
      if (p.y < EDGE) dy = EDGE_SPEED;
      else if (p.y > H - EDGE) dy = -EDGE_SPEED;
    }
    this.edge = dx || dy ? { dx, dy } : null;
    if (this.edge && !this.edgeFrame) {
      const tick = () => {
        if (!this.edge) {
          this.edgeFrame = 0;
          return;
        }
        this.panBy(this.edge.dx, this.edge.dy);
        this.edgeFrame = requestAnimationFrame(tick);
      };
      this.edgeFrame = requestAnimationFrame(tick);
    }
  }
}
