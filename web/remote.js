// vnrit viewer: the page side of the input wire format, version 3 (see src/input/wire/mod.rs):
// one JSON array per message. This module only encodes and decodes; the live session
// carries the text (the 'input' data channel when open, else the signalling WebSocket).
// Everything that sends input (mouse, touch, keyboard, on-screen keyboard, special keys,
// clipboard) calls the methods of `RemoteInput`; nothing else builds wire messages.

/** The input protocol version this page speaks. */
export const PROTOCOL_VERSION = 3;
/** Largest text the type-text action takes, in bytes of UTF-8. */
export const MAX_TYPE_BYTES = 65536;
/** UTF-16 units per `tx` message: even escaped, a chunk stays under the server's 64 KiB. */
const TYPE_CHUNK_UNITS = 8000;
/** Characters the server types per second (src/input/typing.rs: one every 4 ms). */
export const TYPE_RATE = 250;

/** Input the page sends to the desktop, as wire messages through `send(text)`. */
export class RemoteInput {
  /** @param {(text: string) => boolean} send delivers one message; false when nothing is connected */
  constructor(send) {
    this.send = send;
    /** `code`s this page holds down on the desktop (so they can be released). */
    this.keys = new Map();
    this.buttons = new Set();
    this.last = null;
    /** The input protocol version the server announced (`["v",n]`); 1 until it says. */
    this.serverVersion = 1;
  }

  #out(msg) {
    return this.send(JSON.stringify(msg));
  }

  /**
   * A key went down or up. `code` is KeyboardEvent.code, `key` KeyboardEvent.key.
   * @param {string} code
   * @param {string} key
   * @param {boolean} down
   */
  key(code, key, down) {
    if (down) this.keys.set(code, key);
    else this.keys.delete(code);
    this.#out([down ? 'kd' : 'ku', code, key]);
  }

  /** Presses and releases one key. */
  tap(code, key) {
    this.key(code, key, true);
    this.key(code, key, false);
  }

  /**
   * Presses `combo` in order and releases it in reverse, e.g. Ctrl+Alt+Delete.
   * @param {Array<[string, string]>} combo [code, key] pairs
   */
  combo(combo) {
    combo.forEach(([code, key]) => this.key(code, key, true));
    [...combo].reverse().forEach(([code, key]) => this.key(code, key, false));
  }

  /** Pointer to the normalised frame position (x, y), each in [0, 1]. */
  move(x, y) {
    const r = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;
    const m = [r(x), r(y)];
    if (this.last && this.last[0] === m[0] && this.last[1] === m[1]) return;
    this.last = m;
    this.#out(['m', m[0], m[1]]);
  }

  /** X button `b` (1 left, 2 middle, 3 right, 8 back, 9 forward) down or up. */
  button(b, down) {
    if (down) this.buttons.add(b);
    else this.buttons.delete(b);
    this.#out([down ? 'bd' : 'bu', b]);
  }

  /** A click of button `b`. */
  click(b = 1) {
    this.button(b, true);
    this.button(b, false);
  }

  /** Wheel motion in notches (positive = down/right). */
  wheel(dx, dy) {
    const c = (v) => Math.round(Math.min(100, Math.max(-100, v)) * 100) / 100;
    if (c(dx) || c(dy)) this.#out(['w', c(dx), c(dy)]);
  }

  /** Releases every key and button this page holds (focus lost, panel opened). */
  releaseAll() {
    const held = this.keys.size || this.buttons.size;
    this.keys.clear();
    this.buttons.clear();
    if (held) this.#out(['ra']);
  }

  /**
   * Sets the desktop's CLIPBOARD to a PNG image (base64, at most 45 000 bytes decoded).
   * @param {string} base64
   */
  clipboardImage(base64) {
    if (this.serverVersion < 2) return false;
    return this.#out(['ci', 'image/png', base64]);
  }

  /** Sets the desktop's clipboard to `text`. */
  clipboard(text) {
    return this.#out(['cb', text]);
  }

  /**
   * Types `text` on the desktop as key strokes, character by character (IME commits, soft
   * keyboards, the type-text action). Needs a version 2 server.
   * @param {string} text
   * @returns {string|null} null when sent, else why not (for the user)
   */
  typeText(text) {
    if (!text) return null;
    if (this.serverVersion < 2) return 'this server cannot type text (it is older than the page): update vnrit';
    const bytes = new TextEncoder().encode(text).length;
    if (bytes > MAX_TYPE_BYTES) return `text of ${bytes} bytes is over the ${MAX_TYPE_BYTES}-byte limit for typing`;
    for (let i = 0; i < text.length; ) {
      let end = Math.min(text.length, i + TYPE_CHUNK_UNITS);
      // Never split a surrogate pair between two messages.
      if (end < text.length && /[\uD800-\uDBFF]/.test(text[end - 1])) end -= 1;
      if (!this.#out(['tx', text.slice(i, end)])) return 'not connected';
      i = end;
    }
    return null;
  }

  /** Stops typing what `typeText` still has queued on the server. */
  cancelTyping() {
    if (this.serverVersion >= 2) this.#out(['txc']);
  }

  /** Says which protocol version the page speaks (sent when a channel opens). */
  hello() {
    this.last = null;
    this.#out(['v', PROTOCOL_VERSION]);
  }
}

/**
 * Decodes one message from the server.
 * @param {string} text
 * @returns {{type: string, args: any[]}|null} null when it is not a wire message
 */
export function decode(text) {
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return null;
  }
  if (!Array.isArray(msg) || typeof msg[0] !== 'string') return null;
  return { type: msg[0], args: msg.slice(1) };
}
