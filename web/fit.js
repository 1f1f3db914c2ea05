// vnrit viewer: asks the server to make the desktop the size of this window, in device pixels
// (CSS size x devicePixelRatio, rounded down to even numbers, within the server's maximum), so
// the picture can be shown 1:1 instead of scaled. Sends the `resize` signalling message (v1)
// once the server's hello offers it (an older server never sees it), again on every new
// session, and, debounced, whenever the stage or the device pixel ratio changes. Tells the
// view which size it asked for: the view shows a picture of exactly that size 1:1.

/** Window changes are sent once they have settled this long. */
const DEBOUNCE_MS = 250;
/** The version of the `resize` message this page sends. */
const RESIZE_VERSION = 1;
/** The smallest size the server sets (smaller windows get it and the view scales down). */
const MIN = { w: 320, h: 240 };

/** Requests the desktop size for this page. */
export class FitRequester {
  /**
   * @param {HTMLElement} stage the area the video is shown in
   * @param {{requested: {w: number, h: number}|null, layout: () => void}} view
   * @param {(w: number, h: number, dpr: number) => boolean} send sends one resize message
   */
  constructor(stage, view, send) {
    this.stage = stage;
    this.view = view;
    this.send = send;
    /** The server's offer from its hello ({version, maxWidth, maxHeight}), or null. */
    this.offer = null;
    /** The last size sent this session, `WxH@dpr`. */
    this.last = '';
    /** When the last request went out (Date.now()), and how many went out; for tests. */
    this.sentAt = 0;
    this.sent = 0;
    this.timer = 0;
    new ResizeObserver(() => this.#changed()).observe(stage);
    this.#watchPixelRatio();
  }

  /** A new session's hello: asks for this window's size at once when the server offers it. */
  hello(hello) {
    const offer = hello && hello.resize;
    this.offer = offer && offer.version === RESIZE_VERSION ? offer : null;
    this.last = '';
    if (!this.offer) {
      this.view.requested = null;
      this.view.layout();
      return;
    }
    this.#sendNow();
  }

  /** Asks for this window's size again (this page has just been given control). */
  resend() {
    this.last = '';
    this.#sendNow();
  }

  /** The size to ask for now: {w, h, dpr}. */
  wanted() {
    const dpr = devicePixelRatio || 1;
    const even = (v) => Math.max(2, Math.floor(v / 2) * 2);
    const fit = (css, lo, hi) => even(Math.min(hi, Math.max(lo, Math.round(css * dpr))));
    const max = this.offer ?? { maxWidth: 3840, maxHeight: 2160 };
    return {
      w: fit(this.stage.clientWidth, MIN.w, max.maxWidth),
      h: fit(this.stage.clientHeight, MIN.h, max.maxHeight),
      dpr,
    };
  }

  #changed() {
    if (!this.offer) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.#sendNow(), DEBOUNCE_MS);
  }

  #sendNow() {
    clearTimeout(this.timer);
    if (!this.offer || !this.stage.clientWidth || !this.stage.clientHeight) return;
    const { w, h, dpr } = this.wanted();
    const key = `${w}x${h}@${dpr}`;
    if (key === this.last) return;
    if (!this.send(w, h, dpr)) return;
    this.last = key;
    this.sentAt = Date.now();
    this.sent += 1;
    this.view.requested = { w, h };
    this.view.layout();
  }

  /** Browser zoom or a move to another screen changes the ratio without resizing the stage. */
  #watchPixelRatio() {
    const mq = matchMedia(`(resolution: ${devicePixelRatio || 1}dppx)`);
    mq.addEventListener?.(
      'change',
      () => {
        this.#changed();
        this.#watchPixelRatio();
      },
      { once: true },
    );
  }
}
