// vnrit viewer: the physical keyboard and the special-keys menu. Keys typed while the stage
// has focus go to the desktop (and nowhere else); leaving the stage releases whatever is
// held. In fullscreen the Keyboard Lock API (where the browser has it) lets Escape, Alt+Tab-
// and Ctrl+W-like shortcuts reach the desktop. The menu sends combinations a browser or the
// local system would otherwise keep for itself.

/** [label, [[code, key], ...]] for the special-keys menu. */
const SPECIAL = [
  ['Ctrl+Alt+Del', [['ControlLeft', 'Control'], ['AltLeft', 'Alt'], ['Delete', 'Delete']]],
  ['Ctrl+Alt+Backspace', [['ControlLeft', 'Control'], ['AltLeft', 'Alt'], ['Backspace', 'Backspace']]],
  ['Alt+Tab', [['AltLeft', 'Alt'], ['Tab', 'Tab']]],
  ['Alt+F4', [['AltLeft', 'Alt'], ['F4', 'F4']]],
  ['Ctrl+W', [['ControlLeft', 'Control'], ['KeyW', 'w']]],
  ['Ctrl+Esc', [['ControlLeft', 'Control'], ['Escape', 'Escape']]],
  ['Super', [['MetaLeft', 'Meta']]],
  ['Escape', [['Escape', 'Escape']]],
  ['Print Screen', [['PrintScreen', 'PrintScreen']]],
  ['Ctrl+Alt+F1', [['ControlLeft', 'Control'], ['AltLeft', 'Alt'], ['F1', 'F1']]],
  ['Ctrl+Alt+F7', [['ControlLeft', 'Control'], ['AltLeft', 'Alt'], ['F7', 'F7']]],
];

/** Keys the Keyboard Lock API is asked to route to the page in fullscreen (all when empty). */
const LOCK_KEYS = [];

/** Captures the physical keyboard over the stage. */
export class KeyboardInput {
  /**
   * @param {HTMLElement} stage focusable element whose keys go to the desktop
   * @param {() => import('./remote.js').RemoteInput|null} remote
   */
  constructor(stage, remote) {
    this.stage = stage;
    this.remote = remote;
    stage.addEventListener('keydown', (e) => this.#key(e, true));
    stage.addEventListener('keyup', (e) => this.#key(e, false));
    stage.addEventListener('blur', () => this.remote()?.releaseAll());
    addEventListener('blur', () => this.remote()?.releaseAll());
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) this.remote()?.releaseAll();
    });
    document.addEventListener('fullscreenchange', () => this.#lock());
  }

  #key(e, down) {
    if (e.isComposing || !e.code) return;
    e.preventDefault();
    e.stopPropagation();
    this.remote()?.key(e.code, e.key, down);
  }

  async #lock() {
    const kb = navigator.keyboard;
    if (!kb || !kb.lock) return;
    try {
      if (document.fullscreenElement) await kb.lock(LOCK_KEYS.length ? LOCK_KEYS : undefined);
      else kb.unlock();
    } catch {
      // not allowed here (e.g. not top-level): shortcuts stay with the browser
    }
  }
}

/**
 * Fills the special-keys menu and wires its button. Each entry is a menuitem button;
 * arrow keys move between them, Escape closes the menu.
 * @param {HTMLElement} menu
 * @param {HTMLButtonElement} opener
 * @param {() => import('./remote.js').RemoteInput|null} remote
 * @param {() => void} done called after a combination was sent (e.g. to refocus the stage)
 */
export function setupSpecialKeys(menu, opener, remote, done) {
  for (const [label, combo] of SPECIAL) {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'menuitem');
    b.textContent = label;
    b.addEventListener('click', () => {
      remote()?.combo(combo);
      show(false);
      done();
    });
    menu.append(b);
  }
  const items = () => [...menu.querySelectorAll('button')];
  const show = (open) => {
    menu.hidden = !open;
    opener.setAttribute('aria-expanded', String(open));
    if (open) items()[0]?.focus();
  };
  opener.addEventListener('click', () => show(menu.hidden));
  menu.addEventListener('keydown', (e) => {
    const list = items();
    const i = list.indexOf(/** @type {HTMLButtonElement} */ (document.activeElement));
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      const n = (i + (e.key === 'ArrowDown' ? 1 : list.length - 1)) % list.length;
      list[n].focus();
    } else if (e.key === 'Escape') {
      show(false);
      opener.focus();
    }
  });
  return { show };
}
