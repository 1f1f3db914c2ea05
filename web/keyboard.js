// vnrit viewer: the special-keys menu. It sends combinations a browser or the local system
// would keep for itself (Ctrl+Alt+Del, Alt+Tab, Ctrl+W, ...). The physical keyboard and the
// Keyboard Lock API in fullscreen are input.js's.

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
