// vnrit viewer: the clipboard between this device and the desktop. Automatic where the
// browser permits: text the desktop copies is written to the local clipboard while the page
// has focus, and local text is sent when the video gets focus if reading was granted
// (pasting into the video is input.js's). The panel does the same by hand: type or paste, "Send to desktop"; the
// desktop's latest text is shown there to copy from. "Type into desktop" types the panel's
// text as key strokes instead (for programs without a clipboard: VM consoles, password
// fields that refuse paste), at the server's steady rate, with "Stop typing" to cancel.
// Images (PNG) go both ways: the desktop's is previewed in the panel and written to the local
// clipboard where allowed; one pasted into the panel goes to the desktop's CLIPBOARD. Large
// contents travel as chunk streams (clipstream.js), up to the server's --max-clipboard.

import { TYPE_RATE } from './remote.js';
import { StreamReceiver, fromBase64, sendStream, toBase64 } from './clipstream.js';
import * as wire from './wire.js';

/** The clipboard panel and the automatic paths. */
export class ClipboardSync {
  /**
   * @param {{panel: HTMLElement, text: HTMLTextAreaElement, send: HTMLButtonElement,
   *   copy: HTMLButtonElement, note: HTMLElement, opener: HTMLButtonElement, focus: HTMLElement,
   *   type: HTMLButtonElement, stop: HTMLButtonElement}} els
   *   focus: the element whose focus means "the user is about to work on the desktop"
   * @param {() => import('./remote.js').RemoteInput|null} remote
   */
  constructor(els, remote) {
    this.els = els;
    this.remote = remote;
    /** The desktop's latest clipboard text. */
    this.remoteText = '';
    /** The last local text sent automatically (not sent again). */
    this.sentText = null;
    /** `["v",3,max]`'s limit (0: one message only). */
    this.maxBytes = 0;
    this.lastError = '';
    this.errors = 0;
    this.receiver = new StreamReceiver(
      (type, bytes) => this.#streamArrived(type, bytes),
      (why) => this.#error(`desktop clipboard lost: ${why}`),
    );
    els.opener.addEventListener('click', () => this.toggle());
    els.send.addEventListener('click', () => this.sendText(els.text.value, 'sent to the desktop'));
    els.copy.addEventListener('click', () => this.#copyHere());
    els.type.addEventListener('click', () => this.typeText(els.text.value));
    els.stop.addEventListener('click', () => this.stopTyping());
    els.text.addEventListener('paste', (e) => {
      const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type === 'image/png');
      if (!file) return;
      e.preventDefault();
      this.sendImage(file);
    });
    /** Hides "Stop typing" once the server should be done. */
    this.typingTimer = null;
    els.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        this.toggle(false);
        els.opener.focus();
      }
    });
    els.focus.addEventListener('focus', () => this.#readLocal());
  }

  /** Shows (or hides, or flips) the panel. */
  toggle(open = this.els.panel.hidden) {
    this.els.panel.hidden = !open;
    this.els.opener.setAttribute('aria-expanded', String(open));
    if (open) this.els.text.focus();
  }

  /** The desktop's clipboard now holds a PNG image (`ci`: base64; a chunk stream: bytes). */
  imageFromDesktop(data) {
    if (!data) return;
    const bytes = typeof data === 'string' ? fromBase64(data) : data;
    this.remoteImage = bytes;
    const blob = new Blob([bytes], { type: 'image/png' });
    const img = /** @type {HTMLImageElement} */ (document.getElementById('clip-image'));
    if (img) {
      if (img.src.startsWith('blob:')) URL.revokeObjectURL(img.src);
      img.src = URL.createObjectURL(blob);
      img.hidden = false;
    }
    this.#note(`desktop clipboard: an image of ${bytes.length} bytes`);
    if (document.hasFocus() && navigator.clipboard?.write && globalThis.ClipboardItem) {
      navigator.clipboard.write([new ClipboardItem({ 'image/png': blob })]).catch(() => {
        this.#note('desktop image ready: open the clipboard panel to see it');
      });
    }
  }

  /**
   * Puts a PNG image on the desktop's CLIPBOARD.
   * @param {Blob} blob
   * @returns {Promise<boolean>} whether it was sent
   */
  async sendImage(blob) {
    const r = this.remote();
    if (!r) return false;
    const bytes = new Uint8Array(await blob.arrayBuffer());
    if (bytes.length > wire.MAX_IMAGE_BYTES) return this.#sendLarge('image/png', bytes, 'image');
    const ok = r.clipboardImage(toBase64(bytes));
    this.#note(ok ? `image of ${bytes.length} bytes sent to the desktop` : 'image not sent: the server cannot take images');
    return ok;
  }

  /** Sets the desktop's clipboard to `text`, of any size up to the limit; whether sent. */
  async sendText(text, note = 'sent to the desktop') {
    const bytes = new TextEncoder().encode(text);
    if (bytes.length <= wire.MAX_CLIPBOARD_BYTES) return this.#send(text, note);
    const ok = await this.#sendLarge('text/plain', bytes, 'text');
    if (ok) this.sentText = text;
    return ok;
  }

  /** `["v",n,max]`: the server's protocol version and clipboard limit. */
  serverHello(version, max) {
    this.maxBytes = version >= 3 && Number.isSafeInteger(max) ? max : 0;
  }

  /** A parsed `cbb`, `cbp` or `cbe` from the server. */
  chunk(m) {
    this.receiver.handle(m);
  }

  /** An `err` from the server (input ones are all about the clipboard). */
  serverSays(message) {
    this.#error(message);
  }

  /** Sends a content too large for one message as a chunk stream. */
  async #sendLarge(type, bytes, what) {
    const r = this.remote();
    const max = this.maxBytes;
    const not = `${what} of ${bytes.length} bytes not sent:`;
    if (!r || !max) return this.#error(`${not} this server is too old for it`);
    if (bytes.length > max) return this.#error(`${not} over the server's ${max}-byte clipboard limit`);
    const backlog = () => globalThis.vnrit?.session?.inputBacklog?.() ?? 0;
    const errors = this.errors;
    const progress = (sent) => this.#note(`sending ${what}: ${Math.floor((sent * 100) / bytes.length)} %`);
    // The server's refusal (`err`) stops the rest; its message stays shown.
    const refused = () => (this.errors !== errors ? this.lastError : null);
    const why = await sendStream((m) => r.send(m), backlog, type, bytes, progress, refused);
    if (this.errors !== errors) return false;
    if (why) return this.#error(`${not} ${why}`);
    this.#note(`${what} of ${bytes.length} bytes sent to the desktop`);
    return true;
  }

  #streamArrived(type, bytes) {
    if (type === 'image/png') this.imageFromDesktop(bytes);
    else if (type === 'text/plain') this.fromDesktop(new TextDecoder().decode(bytes));
  }

  /** Shows a clipboard error; false. */
  #error(message) {
    this.errors += 1;
    this.lastError = message;
    this.#note(message);
    return false;
  }

  /** The desktop's clipboard changed (`cb` from the server). */
  fromDesktop(text) {
    if (typeof text !== 'string') return;
    this.remoteText = text;
    this.sentText = text; // do not echo it back
    this.#note(`desktop clipboard: ${text.length} characters`);
    if (document.hasFocus() && navigator.clipboard?.writeText) {
      navigator.clipboard.writeText(text).catch(() => {
        this.#note('desktop text ready: open the clipboard panel to copy it');
      });
    }
  }

  /**
   * Types `text` on the desktop as key strokes (up to 64 KiB).
   * @param {string} text
   * @returns {boolean} whether it was sent
   */
  typeText(text) {
    const r = this.remote();
    if (!r || !text) return false;
    const why = r.typeText(text);
    if (why) {
      this.#note(`not typed: ${why}`);
      return false;
    }
    const chars = [...text].length;
    const ms = Math.ceil((chars / TYPE_RATE) * 1000) + 1000;
    this.#note(`typing ${chars} characters (about ${Math.ceil(ms / 1000)} s)…`);
    this.els.stop.hidden = false;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => {
      this.els.stop.hidden = true;
      this.#note(`typed ${chars} characters`);
    }, ms);
    return true;
  }

  /** Cancels what the type-text action still has to type. */
  stopTyping() {
    clearTimeout(this.typingTimer);
    this.els.stop.hidden = true;
    this.remote()?.cancelTyping();
    this.#note('typing stopped');
  }

  #send(text, note) {
    const r = this.remote();
    if (!r || !text) return false;
    if (r.clipboard(text)) {
      this.sentText = text;
      if (note) this.#note(note);
      return true;
    }
    if (note) this.#note('not connected: try again once the desktop is shown');
    return false;
  }

  #copyHere() {
    this.els.text.value = this.remoteText;
    this.els.text.select();
    navigator.clipboard?.writeText(this.remoteText).then(
      () => this.#note('copied to this device'),
      () => this.#note('selected: press Ctrl+C (or long-press, Copy) to copy'),
    );
  }

  /** Sends the local clipboard when reading it needs no prompt (permission granted). */
  async #readLocal() {
    if (!navigator.clipboard?.readText || !navigator.permissions?.query) return;
    try {
      const p = await navigator.permissions.query({ name: /** @type {any} */ ('clipboard-read') });
      if (p.state !== 'granted') return;
      const text = await navigator.clipboard.readText();
      if (text && text !== this.sentText) this.sendText(text, '');
    } catch {
      // no permission API for this name (Firefox) or reading refused: the panel remains
    }
  }

  #note(text) {
    this.els.note.textContent = text;
  }
}
