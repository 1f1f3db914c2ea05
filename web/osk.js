// vnrit viewer: the on-screen keyboard for phones and tablets. Three layers (letters,
// numbers and symbols, function and navigation keys) and sticky modifiers: a tap arms a
// modifier for the next key, a long press locks it until tapped again. Modifiers are held
// down on the desktop while armed, so a locked Ctrl also applies to clicks. Buttons never
// take focus from the stage, whose keyboard focus the physical keyboard needs.

const LONG_PRESS_MS = 500;

/** US-layout code of a printable character on the main block (the server types by `key`). */
const PUNCT = {
  '-': 'Minus', _: 'Minus', '=': 'Equal', '+': 'Equal', '[': 'BracketLeft', '{': 'BracketLeft',
  ']': 'BracketRight', '}': 'BracketRight', '\\': 'Backslash', '|': 'Backslash',
  ';': 'Semicolon', ':': 'Semicolon', "'": 'Quote', '"': 'Quote', ',': 'Comma', '<': 'Comma',
  '.': 'Period', '>': 'Period', '/': 'Slash', '?': 'Slash', '`': 'Backquote', '~': 'Backquote',
  ' ': 'Space',
};
const SHIFTED_DIGITS = ')!@#$%^&*(';

function codeOf(ch) {
  if (/^[a-z]$/i.test(ch)) return `Key${ch.toUpperCase()}`;
  if (/^[0-9]$/.test(ch)) return `Digit${ch}`;
  const d = SHIFTED_DIGITS.indexOf(ch);
  if (d >= 0) return `Digit${d}`;
  return PUNCT[ch] || 'Unidentified';
}

/** Modifier name -> [code, key]. */
const MODS = {
  Shift: ['ShiftLeft', 'Shift'],
  Ctrl: ['ControlLeft', 'Control'],
  Alt: ['AltLeft', 'Alt'],
  Super: ['MetaLeft', 'Meta'],
};

// A key is a character string, or [label, kind, value, width?]:
// kind 'k' = named key (value = [code, key]), 'm' = modifier, 'l' = switch layer.
const K = (label, code, key, w) => [label, 'k', [code, key ?? code], w];
const M = (name, w) => [name, 'm', name, w];
const L = (label, layer, w) => [label, 'l', layer, w];
const BKSP = K('⌫', 'Backspace', 'Backspace', 1.5);
const ENTER = K('⏎', 'Enter', 'Enter', 1.5);
const SPACE = K('space', 'Space', ' ', 4);

const LAYERS = {
  main: [
    [...'qwertyuiop'],
    [...'asdfghjkl'],
    [M('Shift', 1.5), ...'zxcvbnm', BKSP],
    [L('123', 'num', 1.5), L('Fn', 'fn'), M('Ctrl'), M('Alt'), SPACE, ENTER],
  ],
  num: [
    [...'1234567890'],
    [...'-/:;()$&@"'],
    [...'#%_\\|~<>[]'],
    [M('Shift', 1.5), ...".,?!'=+*", BKSP],
    [L('abc', 'main', 1.5), L('Fn', 'fn'), M('Ctrl'), M('Alt'), SPACE, ENTER],
  ],
  fn: [
    [K('Esc', 'Escape'), ...[1, 2, 3, 4, 5, 6].map((n) => K(`F${n}`, `F${n}`))],
    [...[7, 8, 9, 10, 11, 12].map((n) => K(`F${n}`, `F${n}`)), K('Del', 'Delete')],
    [K('Tab', 'Tab'), K('Home', 'Home'), K('↑', 'ArrowUp'), K('End', 'End'), K('PgUp', 'PageUp'), K('Ins', 'Insert')],
    [M('Super'), K('←', 'ArrowLeft'), K('↓', 'ArrowDown'), K('→', 'ArrowRight'), K('PgDn', 'PageDown'), K('PrtSc', 'PrintScreen')],
    [L('abc', 'main', 1.5), L('123', 'num', 1.5), M('Ctrl'), M('Alt'), M('Shift'), ENTER],
  ],
};

/** Names read out for keys whose label is a symbol. */
const SPOKEN = { '⌫': 'Backspace', '⏎': 'Enter', '↑': 'Up', '↓': 'Down', '←': 'Left', '→': 'Right' };

/** The on-screen keyboard. */
export class OnScreenKeyboard {
  /**
   * @param {HTMLElement} el the #osk container
   * @param {() => import('./remote.js').RemoteInput|null} remote
   */
  constructor(el, remote) {
    this.el = el;
    this.remote = remote;
    this.layer = 'main';
    /** Modifier name -> 'once' | 'locked' (absent = off). */
    this.mods = new Map();
    /** Per-button functions that bring a label or state up to date. */
    this.updaters = [];
    // Never take focus away from the stage (a blur there releases every held key).
    el.addEventListener('mousedown', (e) => e.preventDefault());
    this.render();
  }

  /** Shows or hides the keyboard. */
  set visible(on) {
    this.el.hidden = !on;
  }

  get visible() {
    return !this.el.hidden;
  }

  /** Forgets every armed modifier (the desktop side was released, e.g. a new session). */
  reset() {
    this.mods.clear();
    this.refresh();
  }

  /** Builds the current layer's buttons. */
  render() {
    this.el.replaceChildren();
    this.el.dataset.layer = this.layer;
    this.updaters = [];
    for (const row of LAYERS[this.layer]) {
      const line = document.createElement('div');
      line.className = 'osk-row';
      for (const spec of row) line.append(this.#button(spec));
      this.el.append(line);
    }
    this.refresh();
  }

  /** Updates labels and modifier states in place (the buttons stay, so a press survives). */
  refresh() {
    const shift = this.mods.has('Shift');
    this.updaters.forEach((fn) => fn(shift));
  }

  #button(spec) {
    const b = document.createElement('button');
    b.type = 'button';
    const [label, kind, value, w] = typeof spec === 'string' ? [spec, 'c', spec, 1] : spec;
    b.style.flexGrow = String(w || 1);
    b.textContent = label;
    b.dataset.key = label;
    const name = SPOKEN[label] || (label === 'space' ? 'Space' : null);
    if (name) b.setAttribute('aria-label', name);
    if (kind === 'c') {
      this.updaters.push((shift) => {
        b.textContent = b.dataset.key = shift ? label.toUpperCase() : label;
      });
      b.addEventListener('click', () => {
        const ch = b.dataset.key;
        this.press([codeOf(ch), ch]);
      });
    } else if (kind === 'm') {
      b.classList.add('mod');
      this.updaters.push(() => {
        const state = this.mods.get(value);
        if (state) b.dataset.state = state;
        else delete b.dataset.state;
        b.setAttribute('aria-pressed', state ? 'true' : 'false');
        b.setAttribute('aria-label', `${value}${state === 'locked' ? ' (locked)' : ''}; long-press to lock`);
      });
      this.#modifierEvents(b, value);
    } else if (kind === 'l') {
      b.classList.add('layer');
      b.setAttribute('aria-label', { main: 'Letters', num: 'Numbers and symbols', fn: 'Function keys' }[value]);
      b.addEventListener('click', () => {
        this.layer = value;
        this.render();
      });
    } else {
      b.addEventListener('click', () => this.press(value));
    }
    return b;
  }

  #modifierEvents(b, name) {
    let timer = 0;
    let long = false;
    b.addEventListener('pointerdown', () => {
      long = false;
      clearTimeout(timer);
      timer = setTimeout(() => {
        long = true;
        this.setModifier(name, 'locked');
      }, LONG_PRESS_MS);
    });
    const end = () => clearTimeout(timer);
    b.addEventListener('pointercancel', end);
    b.addEventListener('pointerleave', end);
    b.addEventListener('pointerup', () => {
      end();
      if (!long) this.#tapModifier(name);
    });
    // Keyboard activation (Enter/Space on a focused key) arrives as a click with detail 0.
    b.addEventListener('click', (e) => {
      if (e.detail === 0) this.#tapModifier(name);
    });
    b.addEventListener('contextmenu', (e) => e.preventDefault());
  }

  #tapModifier(name) {
    this.setModifier(name, this.mods.has(name) ? null : 'once');
  }

  /**
   * Arms ('once'), locks ('locked') or releases (null) a modifier, holding it on the desktop
   * while armed.
   */
  setModifier(name, state) {
    const [code, key] = MODS[name];
    const r = this.remote();
    if (state) {
      this.mods.set(name, state);
      if (r && !r.keys.has(code)) r.key(code, key, true);
    } else {
      this.mods.delete(name);
      if (r && r.keys.has(code)) r.key(code, key, false);
    }
    this.refresh();
  }

  /** Types one key with the armed modifiers, then releases the once-only ones. */
  press([code, key]) {
    const r = this.remote();
    if (!r) return;
    for (const name of this.mods.keys()) {
      const [mc, mk] = MODS[name];
      if (!r.keys.has(mc)) r.key(mc, mk, true); // re-press after a release-all
    }
    r.tap(code, key);
    let changed = false;
    for (const [name, state] of [...this.mods]) {
      if (state === 'once') {
        this.mods.delete(name);
        r.key(...MODS[name], false);
        changed = true;
      }
    }
    if (changed) this.refresh();
  }
}
