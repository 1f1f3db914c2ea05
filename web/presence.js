// vnrit viewer: presence and control (control protocol v1, docs/web.md). Owns the user's
// display name (asked once, the first time someone else is connected; kept in localStorage),
// the per-tab reconnect key (sessionStorage, so a reload keeps control), the people panel
// (who is connected, their role, who has control; request, give, release, take), the banner
// that shows the controller a request, the chip that says who has control, and the name on the
// remote pointer. It tells app.js whether this page may send input now (`mayControl`).

const NAME_KEY = 'vnrit.name';
const ASKED_KEY = 'vnrit.nameAsked';
const RECONNECT_KEY = 'vnrit.reconnect';
const MAX_NAME = 32;

function load(store, key) {
  try {
    return store.getItem(key);
  } catch {
    return null; // storage disabled: ask again next time
  }
}

function save(store, key, value) {
  try {
    store.setItem(key, value);
  } catch {
    /* storage disabled: the name lasts for this page only */
  }
}

/** The name this browser chose, or '' (the server then says "viewer N"). */
export function storedName() {
  return (load(localStorage, NAME_KEY) || '').slice(0, MAX_NAME);
}

/** This tab's reconnect key: survives a reload of the tab, not shared with other tabs. */
export function reconnectKey() {
  let key = load(sessionStorage, RECONNECT_KEY);
  if (!key || !/^[A-Za-z0-9_-]{8,64}$/.test(key)) {
    const bytes = crypto.getRandomValues(new Uint8Array(18));
    key = btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_');
    save(sessionStorage, RECONNECT_KEY, key);
  }
  return key;
}

const ROLE_TEXT = { control: 'full access', 'view-only': 'view-only', whep: 'WHEP player' };

/** Presence and control UI; `update` takes each {"type":"presence"} message. */
export class PresenceUI {
  /**
   * @param {Record<string, HTMLElement>} els chip, panel, list, note, request, release, take,
   *   admin, adminToken, name, nameSave, banner, bannerText, bannerGive, bannerLater, ask,
   *   askName, askOk, askSkip
   * @param {{send: (msg: object) => void, onControl: (may: boolean, label: string) => void,
   *   note: (text: string) => void}} hooks
   */
  constructor(els, hooks) {
    this.els = els;
    this.hooks = hooks;
    /** The last presence message, or null before the first. */
    this.state = null;
    /** Whether this page may send input (true until the server says otherwise). */
    this.mayControl = true;
    this.dismissed = '';
    this.tick = null;
    const click = (el, fn) => el.addEventListener('click', fn);
    click(els.chip, () => this.toggle());
    click(els.request, () => this.act('request'));
    click(els.release, () => this.act('release'));
    click(els.take, () => this.act('take'));
    click(els.admin, () => {
      const token = /** @type {HTMLInputElement} */ (els.adminToken).value.trim();
      if (token) this.act('take', { admin: token });
      else els.adminToken.focus();
    });
    click(els.nameSave, () => this.setName(/** @type {HTMLInputElement} */ (els.name).value));
    click(els.bannerGive, () => {
      const to = Number(els.banner.dataset.viewer);
      if (to) this.act('give', { to });
      els.banner.hidden = true;
    });
    click(els.bannerLater, () => {
      this.dismissed = els.banner.dataset.key || '';
      els.banner.hidden = true;
    });
    click(els.askOk, () => {
      this.setName(/** @type {HTMLInputElement} */ (els.askName).value);
      els.ask.hidden = true;
    });
    click(els.askSkip, () => {
      save(localStorage, ASKED_KEY, '1');
      els.ask.hidden = true;
    });
    els.askName.addEventListener('keydown', (e) => {
      if (e.key === 'Enter') els.askOk.click();
    });
    /** @type {HTMLInputElement} */ (els.name).value = storedName();
  }

  /** Opens or closes the people panel. */
  toggle(open = this.els.panel.hidden) {
    this.els.panel.hidden = !open;
    this.els.chip.setAttribute('aria-expanded', String(open));
  }

  /** Sends a control action ('request', 'give', 'release', 'take'). */
  act(action, extra = {}) {
    this.hooks.send({ type: 'control', action, ...extra });
  }

  /** Keeps `name` in this browser and tells the server. */
  setName(name) {
    const clean = String(name).trim().slice(0, MAX_NAME);
    if (!clean) return;
    save(localStorage, NAME_KEY, clean);
    save(localStorage, ASKED_KEY, '1');
    /** @type {HTMLInputElement} */ (this.els.name).value = clean;
    this.hooks.send({ type: 'name', name: clean });
  }

  /** The session ended: nothing is known until the next presence message. */
  reset() {
    this.state = null;
    clearInterval(this.tick);
  }

  /** One {"type":"presence"} message from the server. */
  update(p) {
    if (!p || p.v !== 1 || !Array.isArray(p.viewers)) return; // another version: keep the old UI
    p.receivedAt = Date.now();
    this.state = p;
    const me = p.viewers.find((v) => v.id === p.you);
    const controller = p.viewers.find((v) => v.id === p.controller);
    const may = !!me && me.control;
    const label = p.mode === 'exclusive' && controller && !may ? controller.name : '';
    if (may !== this.mayControl || label !== this.label) {
      this.mayControl = may;
      this.label = label;
      this.hooks.onControl(may, label);
    }
    if (p.viewers.length > 1 && !storedName() && !load(localStorage, ASKED_KEY)) {
      this.els.ask.hidden = false;
    }
    this.render();
    clearInterval(this.tick);
    // The take button counts down to the end of the controller's idle time.
    if (controller && !may) this.tick = setInterval(() => this.renderActions(), 1000);
  }

  render() {
    const p = this.state;
    if (!p) return;
    const me = p.viewers.find((v) => v.id === p.you);
    const controller = p.viewers.find((v) => v.id === p.controller);
    const chip = this.els.chip;
    // Alone and in control there is nothing to tell: the toolbar stays as it was.
    chip.hidden = p.viewers.length < 2 && !!me?.control;
    if (chip.hidden) this.toggle(false);
    chip.dataset.mine = String(!!me?.control);
    chip.textContent = `${p.viewers.length} here · ` + this.who(p, me, controller);
    this.els.list.replaceChildren(...p.viewers.map((v) => this.row(p, v, me)));
    this.renderActions();
    this.renderBanner(p, me);
  }

  /** Who has control, in words. */
  who(p, me, controller) {
    if (p.mode !== 'exclusive') return 'shared control';
    if (controller) return controller === me ? 'you have control' : `${controller.name} has control`;
    if (p.reserved_for) return `${p.reserved_for} is reconnecting`;
    return 'nobody has control';
  }

  row(p, v, me) {
    const li = document.createElement('li');
    li.dataset.viewer = String(v.id);
    const name = document.createElement('span');
    name.className = 'who';
    name.textContent = v.name + (v.id === p.you ? ' (you)' : '');
    const role = document.createElement('span');
    role.className = 'role';
    role.textContent = v.control && p.mode === 'exclusive' ? 'has control' : ROLE_TEXT[v.role] || v.role;
    if (v.control) li.classList.add('controller');
    li.append(name, role);
    if (v.requesting) {
      const ask = document.createElement('span');
      ask.className = 'asks';
      ask.textContent = 'asks for control';
      li.append(ask);
    }
    if (p.mode === 'exclusive' && me?.control && v.id !== p.you && v.role === 'control') {
      const give = document.createElement('button');
      give.type = 'button';
      give.className = 'give';
      give.textContent = 'Give control';
      give.setAttribute('aria-label', `Give control to ${v.name}`);
      give.addEventListener('click', () => this.act('give', { to: v.id }));
      li.append(give);
    }
    return li;
  }

  renderActions() {
    const p = this.state;
    if (!p) return;
    const { request, release, take, admin, adminToken, note } = this.els;
    const me = p.viewers.find((v) => v.id === p.you);
    const full = me?.role === 'control';
    const exclusive = p.mode === 'exclusive';
    const mine = !!me?.control;
    const other = p.controller !== null && !mine;
    request.hidden = !exclusive || !full || mine;
    request.disabled = !!me?.requesting;
    request.textContent = me?.requesting ? 'Control requested…' : 'Request control';
    release.hidden = !exclusive || !mine;
    take.hidden = admin.hidden = adminToken.hidden = !exclusive || !full || !other;
    const waitMs = p.idle_limit_ms - p.idle_ms - (Date.now() - p.receivedAt);
    take.disabled = waitMs > 0;
    take.textContent = waitMs > 0 ? `Take control (in ${Math.ceil(waitMs / 1000)} s)` : 'Take control (idle)';
    note.textContent = !me
      ? ''
      : me.role !== 'control'
        ? 'You can watch; this link never gets control.'
        : !exclusive
          ? 'Everyone with full access controls at once.'
          : mine
            ? 'Your keyboard and mouse drive the desktop.'
            : 'You watch until you have control.';
  }

  renderBanner(p, me) {
    const { banner, bannerText } = this.els;
    const asking = p.viewers.filter((v) => v.requesting);
    const key = asking.map((v) => v.id).join(',');
    if (!me?.control || !asking.length || key === this.dismissed) {
      banner.hidden = true;
      return;
    }
    const first = asking[0];
    bannerText.textContent =
      asking.length === 1 ? `${first.name} asks for control` : `${first.name} and ${asking.length - 1} more ask for control`;
    banner.dataset.viewer = String(first.id);
    banner.dataset.key = key;
    this.els.bannerGive.textContent = `Give to ${first.name}`;
    banner.hidden = false;
  }
}
