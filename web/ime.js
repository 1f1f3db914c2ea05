// vnrit viewer: text from input methods (IME: Chinese, Japanese, Korean, ...), dead-key
// compositions and soft keyboards. While the desktop has the keyboard, a hidden text field
// holds the focus. Physical keys still go by key (input.js sends them and cancels their
// default, so they never reach the field); what an input method composes does not: its
// keys ("Process", keyCode 229) are not sent, and the committed text goes to the server as
// text (`tx`), which types it character by character. Soft keyboards (autocorrect, swipe
// typing) arrive as beforeinput insertText / insertReplacementText / deleteContentBackward.

/** The field keeps at most this much text (context for soft keyboards' autocorrect). */
const KEEP_CHARS = 200;

/** The hidden field and its listeners. */
export class TextCatcher {
  /**
   * @param {HTMLElement} stage where the field lives (over the video)
   * @param {() => import('./remote.js').RemoteInput|null} remote
   * @param {() => boolean} active whether the desktop has the keyboard now
   * @param {(text: string) => void} note tells the user something
   */
  constructor(stage, remote, active, note) {
    this.remote = remote;
    this.active = active;
    this.note = note;
    /** Between compositionstart and compositionend. */
    this.composing = false;
    /** Texts committed so far (for the console and tests). */
    this.committed = 0;
    const f = document.createElement('textarea');
    f.id = 'vnrit-ime';
    f.tabIndex = -1;
    f.setAttribute('aria-label', 'Text for the remote desktop');
    for (const [k, v] of [['autocomplete', 'off'], ['autocorrect', 'off'], ['autocapitalize', 'off'], ['spellcheck', 'false']]) {
      f.setAttribute(k, v);
    }
    // No soft keyboard pops up when the desktop is tapped; showSoftKeyboard() asks for one.
    f.inputMode = 'none';
    Object.assign(f.style, {
      position: 'absolute', left: '0', bottom: '0', width: '1px', height: '1px', opacity: '0',
      border: '0', padding: '0', resize: 'none', overflow: 'hidden', pointerEvents: 'none',
    });
    stage.append(f);
    this.field = f;
    f.addEventListener('compositionstart', () => (this.composing = true));
    f.addEventListener('compositionend', (e) => {
      this.composing = false;
      this.#type(e.data);
      this.#trim(true);
    });
    f.addEventListener('beforeinput', (e) => this.#beforeInput(e));
    f.addEventListener('input', () => {
      if (!this.composing) this.#trim(false);
    });
    // The soft keyboard stays away again until asked for.
    f.addEventListener('blur', () => (f.inputMode = 'none'));
  }

  /** Shows this device's own keyboard (phones, tablets) for typing on the desktop. */
  showSoftKeyboard() {
    this.field.blur(); // a focused field shows its keyboard only when focused again
    this.field.inputMode = 'text';
    this.field.focus({ preventScroll: true });
  }

  #beforeInput(e) {
    // A composition's text is typed once, when it is committed (compositionend).
    if (this.composing || e.isComposing || !this.active()) return;
    const r = this.remote();
    if (!r) return;
    switch (e.inputType) {
      case 'insertText':
        this.#type(e.data);
        break;
      case 'insertReplacementText': {
        // Autocorrect replaces the selected word: erase it on the desktop first.
        const f = this.field;
        for (let n = Math.max(0, f.selectionEnd - f.selectionStart); n > 0; n--) r.tap('Backspace', 'Backspace');
        this.#type(e.dataTransfer?.getData('text/plain') ?? e.data);
        break;
      }
      case 'insertLineBreak':
      case 'insertParagraph':
        r.tap('Enter', 'Enter');
        break;
      case 'deleteContentBackward':
        r.tap('Backspace', 'Backspace');
        break;
      case 'deleteContentForward':
        r.tap('Delete', 'Delete');
        break;
      default:
        break;
    }
  }

  #type(text) {
    if (!text || !this.active()) return;
    const r = this.remote();
    if (!r) return;
    const why = r.typeText(text);
    if (why) this.note(`text not typed: ${why}`);
    else this.committed += 1;
  }

  /** Empties the field after a commit, or keeps only its tail as context. */
  #trim(all) {
    const f = this.field;
    if (all || f.value.length > KEEP_CHARS) f.value = all ? '' : f.value.slice(-KEEP_CHARS);
  }
}
