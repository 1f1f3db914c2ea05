// vnrit e2e: three viewers at once share one encoder; /api/stats counts them, and both
// counts fall back to zero once the pages are gone.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { waitForColour } from './lib/page.mjs';

let h;

before(async () => {
  h = await Harness.start('viewers');
});

after(async () => {
  await h?.close();
});

test('three pages decode the desktop; stats show 3 viewers and 1 encoder, then 0 and 0', { timeout: 90000 }, async () => {
  const idle = await h.stats();
  assert.equal(idle.viewers, 0, `before any page: ${JSON.stringify(idle)}`);
  assert.equal(idle.encoders, 0, `before any page: ${JSON.stringify(idle)}`);

  h.setRoot('#ff8000');
  const contexts = await Promise.all([0, 1, 2].map(() => h.browser.newContext()));
  const pages = await Promise.all(contexts.map((c) => c.newPage()));
  await Promise.all(pages.map((p) => p.goto(h.server.url, { timeout: 15000 })));
  await Promise.all(pages.map((p) => waitForColour(p, '#ff8000', { timeoutMs: 20000 })));

  h.setRoot('#00c0c0');
  await Promise.all(pages.map((p) => waitForColour(p, '#00c0c0', { timeoutMs: 5000 })));
  await Promise.all(pages.map((p, i) => h.screenshot(p, `viewer-${i}`)));

  const busy = await waitFor(
    async () => {
      const s = await h.stats();
      const ok =
        s.viewers === 3 &&
        s.encoders === 1 &&
        Array.isArray(s.sessions) &&
        s.sessions.length === 3 &&
        s.sessions.every((x) => x.frames_sent > 0);
      return ok ? s : null;
    },
    { timeoutMs: 5000, what: 'stats with 3 viewers, 1 encoder, frames sent to each session' },
  );
  assert.ok(busy.frames_encoded > 0, JSON.stringify(busy));
  assert.equal(new Set(busy.sessions.map((x) => x.id)).size, 3, 'session ids must differ');

  await Promise.all(contexts.map((c) => c.close()));
  await waitFor(
    async () => {
      const s = await h.stats();
      return s.viewers === 0 && s.encoders === 0;
    },
    { timeoutMs: 10000, what: 'viewers and encoders back to 0 after the pages closed' },
  );
});
