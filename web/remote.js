// vnrit viewer: input from the page's own controls (trackpad mode, on-screen keyboard,
// special keys, input methods, the clipboard panel). `RemoteInput` keeps what they hold on
// the desktop and what the server can take; the messages themselves are wire.js's. The live
// session carries them (the 'input' data channel when open, else the signalling WebSocket).

import * as wire from './wire.js';

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
    return this.send(msg);
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
    this.#out(wire.key(code, key, down));
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
    const m = wire.movePosition(x, y);
    if (this.last && this.last[0] === m[0] && this.last[1] === m[1]) return;
    this.last = m;
    this.#out(wire.move(x, y));
  }

  /** X button `b` (1 left, 2 middle, 3 right, 8 back, 9 forward) down or up. */
  button(b, down) {
    if (down) this.buttons.add(b);
    else this.buttons.delete(b);
    this.#out(wire.button(b, down));
  }

  /** A click of button `b`. */
  click(b = 1) {
    this.button(b, true);
    this.button(b, false);
  }

  /** Wheel motion in notches (positive = down/right). */
  wheel(dx, dy) {
    const msg = wire.wheel(dx, dy);
    if (msg) this.#out(msg);
  }

  /** Releases every key and button this page holds (focus lost, panel opened). */
  releaseAll() {
    const held = this.keys.size || this.buttons.size;
    this.keys.clear();
    this.buttons.clear();
    if (held) this.#out(wire.releaseAll());
  }

  /**
   * Sets the desktop's CLIPBOARD to a PNG image (base64, at most 45 000 bytes decoded).
   * @param {string} base64
   */
  clipboardImage(base64) {
    if (this.serverVersion < 2) return false;
    return this.#out(wire.clipboardImage(base64));
  }

  /** Sets the desktop's clipboard to `text`. */
  clipboard(text) {
    return this.#out(wire.clipboard(text));
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
    const bytes = wire.utf8Bytes(text);
    if (bytes > wire.MAX_TYPE_BYTES) return `text of ${bytes} bytes is over the ${wire.MAX_TYPE_BYTES}-byte limit for typing`;
    for (const msg of wire.typeText(text)) {
      if (!this.#out(msg)) return 'not connected';
    }
    return null;
  }

  /** Stops typing what `typeText` still has queued on the server. */
  cancelTyping() {
    if (this.serverVersion >= 2) this.#out(wire.cancelTyping());
  }

  /** Says which protocol version the page speaks (sent when a channel opens). */
  hello() {
    this.last = null;
    this.#out(wire.hello());
  }
}
