// vnrit viewer: the status pill (connecting / connected / reconnecting in Ns / error text)
// and the full-page notice (wrong token, server gone, no WebRTC).
// Only this module writes to the status element; everything else calls its methods.

/** How long the "connected" pill stays visible before it fades out. */
const QUIET_AFTER_MS = 2000;

/** Shows the connection state in one small element (textContent only, never HTML). */
export class StatusView {
  /** @param {HTMLElement} el the status element (#status) */
  constructor(el) {
    this.el = el;
    this.countdown = null;
    this.quietTimer = null;
  }

  /** A connection attempt is under way. */
  connecting() {
    this.#show('connecting', 'connecting…');
  }

  /** The stream is up; the pill fades out shortly after. */
  connected() {
    this.#show('connected', 'connected');
    this.quietTimer = setTimeout(() => this.el.classList.add('quiet'), QUIET_AFTER_MS);
  }

  /**
   * The last attempt ended; the next one starts in `delayMs`. Counts down once a second.
   * @param {number} delayMs
   * @param {string} [reason] why the last attempt ended, shown in brackets
   */
  reconnecting(delayMs, reason) {
    const until = Date.now() + delayMs;
    const render = () => {
      const secs = Math.max(1, Math.ceil((until - Date.now()) / 1000));
      const why = reason ? ` (${reason})` : '';
      this.el.textContent = `reconnecting in ${secs} s${why}`;
    };
    this.#show('reconnecting', '');
    render();
    this.countdown = setInterval(render, 1000);
  }

  /**
   * Something the user must act on, or a message from the server; stays until the next state.
   * @param {string} text
   */
  error(text) {
    this.#show('error', text);
  }

  /**
   * A passing remark (keyboard captured or released, ...); fades out like "connected".
   * @param {string} text
   */
  note(text) {
    this.#show('note', text);
    this.quietTimer = setTimeout(() => this.el.classList.add('quiet'), 4000);
  }

  #show(state, text) {
    clearInterval(this.countdown);
    clearTimeout(this.quietTimer);
    this.countdown = null;
    this.quietTimer = null;
    this.el.classList.remove('quiet');
    this.el.dataset.state = state;
    this.el.textContent = text;
  }
}

/**
 * A full-page message for situations the user must act on (wrong token, server gone, no
 * WebRTC), with an optional action button. Only this class writes to #notice.
 */
export class Notice {
  /** @param {HTMLElement} el the #notice element */
  constructor(el) {
    this.el = el;
    this.title = el.querySelector('#notice-title');
    this.text = el.querySelector('#notice-text');
    this.button = /** @type {HTMLButtonElement} */ (el.querySelector('#notice-action'));
    this.kind = null;
    this.button.addEventListener('click', () => this.action?.());
  }

  /**
   * Shows the message.
   * @param {string} kind a short name kept in data-kind ('auth', 'gone', 'webrtc')
   * @param {string} title
   * @param {string} text
   * @param {{label: string, run: () => void}} [action]
   */
  show(kind, title, text, action) {
    const was = this.kind;
    this.kind = kind;
    this.el.dataset.kind = kind;
    this.title.textContent = title;
    this.text.textContent = text;
    this.action = action ? action.run : null;
    this.button.hidden = !action;
    if (action) this.button.textContent = action.label;
    this.el.hidden = false;
    if (was !== kind && action) this.button.focus();
  }

  /** Updates only the text of the message shown (e.g. a countdown). */
  update(text) {
    this.text.textContent = text;
  }

  /** Hides the message. */
  hide() {
    this.kind = null;
    this.el.hidden = true;
    delete this.el.dataset.kind;
  }
}
