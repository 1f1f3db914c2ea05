// vnrit e2e: the token guards every route. A wrong or missing token gets 401 and nothing of
// the desktop; the WebSocket upgrade is refused; the cookie from a good first visit works;
// and a page whose WebSocket is refused for its token says "wrong or missing token", in the
// status pill and in a full-page message.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Harness, ROOT, waitFor } from './lib/harness.mjs';
import { status } from './lib/page.mjs';

let h;

before(async () => {
  h = await Harness.start('auth');
});

after(async () => {
  await h?.close();
});

/** Sends a WebSocket upgrade for `path`; resolves with the HTTP status the server answered. */
function upgradeStatus(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      timeout: 5000,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==',
        ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve(res.statusCode);
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy(new Error('upgrade request timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('GET / and /api/stats answer 401 to a wrong or missing token, 200 to the right one', { timeout: 30000 }, async () => {
  const base = h.server.base;
  for (const path of ['/', '/app.js', '/api/stats', '/?token=wrong', '/api/stats?token=wrong']) {
    const res = await fetch(base + path);
    const body = await res.text();
    assert.equal(res.status, 401, `${path} answered ${res.status}`);
    assert.ok(!body.includes('<video'), `${path} leaked the page`);
  }
  const printed = `vnrit: serving http://127.0.0.1:${h.server.port}/?token=${h.token}`;
  assert.ok(h.server.child.stdout.includes(printed), `stdout lacks "${printed}": ${h.server.child.stdout}`);
  const good = await fetch(h.server.url);
  assert.equal(good.status, 200);
  assert.match(await good.text(), /<video/);
});

test('a first good visit sets an HttpOnly SameSite=Strict cookie that admits later requests', { timeout: 30000 }, async () => {
  const res = await fetch(h.server.url);
  const cookie = res.headers.get('set-cookie') ?? '';
  // A signed session (role, expiry, MAC), not the token itself.
  const session = /vnrit_session=(c\.\d+\.[A-Za-z0-9_-]{43});/.exec(cookie)?.[1];
  assert.ok(session, `no signed session cookie in ${cookie}`);
  assert.ok(!cookie.includes(h.token), 'the cookie carries the token');
  assert.match(cookie, /HttpOnly/i);
  assert.match(cookie, /SameSite=Strict/i);
  assert.match(cookie, /Max-Age=43200/i);
  const js = await fetch(`${h.server.base}/app.js`, { headers: { cookie: `vnrit_session=${session}` } });
  assert.equal(js.status, 200);
  const bad = await fetch(`${h.server.base}/app.js`, { headers: { cookie: 'vnrit_session=wrong' } });
  assert.equal(bad.status, 401);
  const raw = await fetch(`${h.server.base}/app.js`, { headers: { cookie: `vnrit_session=${h.token}` } });
  assert.equal(raw.status, 401, 'the bare token is not a session');
});

test('/ws refuses a wrong or missing token and upgrades with the right one', { timeout: 30000 }, async () => {
  const port = h.server.port;
  assert.equal(await upgradeStatus(port, '/ws?token=wrong'), 401);
  assert.equal(await upgradeStatus(port, '/ws'), 401);
  assert.equal(await upgradeStatus(port, '/ws', { Cookie: 'vnrit_session=wrong' }), 401);
  assert.equal(await upgradeStatus(port, `/ws?token=${h.token}`), 101);
});

test('in the browser a wrong token shows nothing of the desktop', { timeout: 30000 }, async () => {
  const page = await h.browser.newPage();
  const requested = [];
  page.on('request', (r) => requested.push(new URL(r.url()).pathname));
  const res = await page.goto(`${h.server.base}/?token=wrong`, { timeout: 15000 });
  assert.equal(res.status(), 401);
  assert.equal(await page.locator('video').count(), 0);
  assert.deepEqual(requested, ['/'], 'nothing but the refused document may load');
  await h.screenshot(page, 'wrong-token');
  await page.close();
});

test('a page whose WebSocket is refused for its token says "wrong or missing token"', { timeout: 30000 }, async () => {
  // The page's own files come from disk (as if cached from an earlier visit); /ws and
  // /api/stats go to the real server with the wrong token.
  const context = await h.browser.newContext();
  await context.route(/\/(\?.*)?$|\.(js|css|html)$/, async (route) => {
    const path = new URL(route.request().url()).pathname;
    const file = path === '/' ? 'index.html' : path.slice(1);
    const type = file.endsWith('.js') ? 'text/javascript' : file.endsWith('.css') ? 'text/css' : 'text/html';
    await route.fulfill({ status: 200, contentType: type, body: await readFile(join(ROOT, 'web', file)) });
  });
  const page = await context.newPage();
  await page.goto(`${h.server.base}/?token=wrong`, { timeout: 15000 });
  const shown = await waitFor(
    async () => {
      const s = await status(page);
      return s && s.state === 'error' ? s : null;
    },
    { timeoutMs: 10000, what: 'the error state' },
  );
  assert.match(shown.text, /wrong or missing token/);
  // A full-page message says what happened and what to do.
  const notice = page.locator('#notice');
  await waitFor(() => notice.isVisible(), { timeoutMs: 5000, what: 'the full-page 401 message' });
  assert.equal(await notice.getAttribute('data-kind'), 'auth');
  assert.match(await page.locator('#notice-title').textContent(), /token/);
  assert.match(await page.locator('#notice-text').textContent(), /401.*\?token=/s);
  assert.equal(await page.locator('#notice-action').textContent(), 'Reload');
  await h.screenshot(page, 'refused-token');
  await context.close();
});
