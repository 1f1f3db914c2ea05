// vnrit viewer: the page side of the input wire format, version 1 (see src/input/wire.rs):
// one JSON array per message. This module only encodes and decodes; the live session
// carries the text (the 'input' data channel when open, else the signalling WebSocket).
// Everything that sends input (mouse, touch, keyboard, on-screen keyboard, special keys,
// clipboard) calls the methods of `RemoteInput`; nothing else builds wire messages.

/** Input the page sends to the desktop, as wire messages through `send(text)`. */
export class RemoteInput {
  /** @param {(text: string) => boolean} send delivers one message; false when nothing is connected */
  constructor(send) {
    this.send = send;
    /** `code`s this page holds down on the desktop (so they can be released). */
    this.keys = new Map();
    this.buttons = new Set();
    this.last = null;
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

  /** Sets the desktop's clipboard to `text`. */
  clipboard(text) {
    return this.#out(['cb', text]);
  }

  /** Says which protocol version the page speaks (sent when a channel opens). */
  hello() {
    this.last = null;
    this.#out(['v', 1]);
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
