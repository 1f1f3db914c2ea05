// vnrit viewer: file transfer. Files dropped onto the page or picked in the files panel are
// sent with `PUT api/files/{name}` (XMLHttpRequest, for upload progress), each with its own
// progress bar and a one-line result (the server's own line for a refusal). The panel lists
// the desktop's download folder (`GET api/files`) and refreshes it while the page is shown:
// every 2 s with the panel open, every 10 s otherwise, marking the button when a new file
// appears. View-only viewers get the server's 403 line.

const OPEN_POLL_MS = 2000;
const CLOSED_POLL_MS = 10000;

/** Readable size: 1.5 MB, 320 kB, 12 bytes. */
function size(n) {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kB`;
  return `${n} bytes`;
}

/** The files panel: uploads with progress, and the download folder's listing. */
export class FileTransfer {
  /**
   * @param {{panel: HTMLElement, opener: HTMLButtonElement, pick: HTMLInputElement, choose: HTMLButtonElement,
   *   uploads: HTMLElement, list: HTMLElement, note: HTMLElement, drop: HTMLElement}} els
   * @param {(path: string) => string} url a same-directory URL for `path` (carries the token)
   */
  constructor(els, url) {
    this.els = els;
    this.url = url;
    /** Names seen in the last listing (null before the first). */
    this.known = null;
    /** Every upload this page started: {name, element, loaded, total, state, message}. */
    this.uploads = [];
    this.timer = null;
    els.opener.addEventListener('click', () => this.toggle());
    els.choose.addEventListener('click', () => els.pick.click());
    els.pick.addEventListener('change', () => {
      this.send([...(els.pick.files ?? [])]);
      els.pick.value = '';
    });
    els.panel.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') {
        this.toggle(false);
        els.opener.focus();
      }
    });
    this.#acceptDrops(els.drop);
    document.addEventListener('visibilitychange', () => this.#schedule(0));
    this.#schedule(0);
  }

  /** Shows (or hides, or flips) the panel; opening it refreshes the listing. */
  toggle(open = this.els.panel.hidden) {
    this.els.panel.hidden = !open;
    this.els.opener.setAttribute('aria-expanded', String(open));
    if (open) {
      this.els.opener.classList.remove('fresh');
      this.#schedule(0);
    }
  }

  /** Uploads each file (all at once; the server bounds how many run per viewer). */
  send(files) {
    if (files.length) this.toggle(true);
    for (const file of files) this.#upload(file);
  }

  #acceptDrops(target) {
    const files = (e) => [...(e.dataTransfer?.types ?? [])].includes('Files');
    target.addEventListener('dragover', (e) => {
      if (!files(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = 'copy';
      document.body.classList.add('dropping');
    });
    target.addEventListener('dragleave', () => document.body.classList.remove('dropping'));
    target.addEventListener('drop', (e) => {
      document.body.classList.remove('dropping');
      if (!files(e)) return;
      e.preventDefault();
      this.send([...e.dataTransfer.files]);
    });
  }

  #upload(file) {
    const row = document.createElement('li');
    const label = document.createElement('span');
    const bar = document.createElement('progress');
    const line = document.createElement('span');
    label.textContent = file.name;
    bar.max = file.size || 1;
    bar.value = 0;
    line.className = 'line';
    row.append(label, bar, line);
    this.els.uploads.prepend(row);
    /** progress: every `loaded` the browser reported, in order (the tests read it). */
    const entry = { name: file.name, element: row, loaded: 0, total: file.size, progress: [], state: 'sending', message: '' };
    this.uploads.push(entry);
    const done = (state, message) => {
      entry.state = state;
      entry.message = message;
      row.dataset.state = state;
      line.textContent = message;
      bar.hidden = state !== 'sending';
    };
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', this.url(`api/files/${encodeURIComponent(file.name)}`));
    xhr.upload.onprogress = (e) => {
      entry.loaded = e.loaded;
      entry.progress.push(e.loaded);
      bar.value = e.loaded;
      line.textContent = `${Math.floor((100 * e.loaded) / (e.total || 1))} %`;
    };
    xhr.onload = () => {
      if (xhr.status === 201) {
        let saved = file.name;
        try {
          saved = JSON.parse(xhr.responseText).name ?? saved;
        } catch {
          /* the name as sent */
        }
        entry.loaded = file.size;
        done('done', saved === file.name ? `saved (${size(file.size)})` : `saved as “${saved}”`);
        this.#schedule(0);
      } else {
        // The server's refusal is one line: "413 Payload Too Large: ...".
        done('refused', xhr.responseText.trim().split('\n')[0] || `refused (HTTP ${xhr.status})`);
      }
    };
    xhr.onerror = () => done('failed', 'failed: the connection to the server broke');
    xhr.onabort = () => done('failed', 'cancelled');
    done('sending', '0 %');
    xhr.send(file);
  }

  /** Fetches the listing now (delay 0) or later, then keeps polling while the page is shown. */
  #schedule(delay) {
    clearTimeout(this.timer);
    if (document.hidden) return;
    this.timer = setTimeout(async () => {
      // A view-only viewer is refused for good: no polling for it.
      if ((await this.refresh()) === 403) return;
      this.#schedule(this.els.panel.hidden ? CLOSED_POLL_MS : OPEN_POLL_MS);
    }, delay);
  }

  /** Reads the download folder's listing and shows it; returns the HTTP status. */
  async refresh() {
    let res;
    try {
      res = await fetch(this.url('api/files'), { cache: 'no-store' });
    } catch {
      return 0; // server away: the status pill says so already
    }
    if (!res.ok) {
      this.els.note.textContent = (await res.text()).trim().split('\n')[0];
      this.els.list.replaceChildren();
      return res.status;
    }
    /** @type {{name: string, size: number, modified: number}[]} */
    const entries = await res.json();
    const names = new Set(entries.map((e) => e.name));
    const fresh = this.known ? entries.filter((e) => !this.known.has(e.name)) : [];
    this.known = names;
    if (fresh.length && this.els.panel.hidden) this.els.opener.classList.add('fresh');
    this.els.note.textContent = entries.length ? '' : 'the download folder is empty';
    this.els.list.replaceChildren(
      ...entries.map((e) => {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = this.url(`api/files/${encodeURIComponent(e.name)}`);
        a.download = e.name;
        a.textContent = e.name;
        const meta = document.createElement('span');
        meta.className = 'meta';
        meta.textContent = `${size(e.size)} · ${new Date(e.modified * 1000).toLocaleString()}`;
        if (fresh.some((f) => f.name === e.name)) li.className = 'fresh';
        li.append(a, meta);
        return li;
      }),
    );
    return res.status;
  }
}
