// vnrit viewer: loader guard (a classic script, so it runs even when the modules do not).
// If app.js or one of its imports failed to load (a network blip while the page loaded, a
// proxy hiccup), the page would sit at "connecting…" forever. Once the page has loaded, this
// checks that app.js ran; if it did not, it says so and reloads the page, waiting 1 s, then
// 2 s, 4 s … up to 30 s between tries (the count lives in sessionStorage, and is cleared by
// the first load where app.js ran).

(() => {
  const KEY = 'vnrit-load-retries';
  const FIRST_MS = 1000;
  const MAX_MS = 30000;

  const retries = () => {
    try {
      return Number(sessionStorage.getItem(KEY)) || 0;
    } catch {
      return 0; // storage disabled: every retry waits the first delay
    }
  };

  window.addEventListener('load', () => {
    if (globalThis.vnrit) {
      // app.js is running: a later failed load starts counting again.
      try {
        sessionStorage.removeItem(KEY);
      } catch {
        // storage disabled
      }
      return;
    }
    const n = retries();
    const wait = Math.min(FIRST_MS * 2 ** n, MAX_MS);
    try {
      sessionStorage.setItem(KEY, String(n + 1));
    } catch {
      // nothing to remember the count in
    }
    const el = document.getElementById('status');
    if (el) {
      el.dataset.state = 'error';
      el.textContent = `the viewer did not load; retrying in ${Math.round(wait / 1000)} s`;
    }
    console.warn(`vnrit: app.js did not start; reloading in ${wait} ms (try ${n + 1})`);
    setTimeout(() => location.reload(), wait);
  });
})();
