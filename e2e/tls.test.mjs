// vnrit e2e: HTTPS with --tls-self-signed. The printed fingerprint matches the certificate the
// browser is served, the cookie is Secure, and the page decodes the desktop over https
// (certificate errors are ignored in this test's browser context only).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { connect } from 'node:tls';
import {
  Child, VNRIT_BIN, freePort, launchBrowser, startXvfb, waitFor, xrun, GaveUp,
} from './lib/harness.mjs';
import { waitForColour } from './lib/page.mjs';

let xvfb;
let server;
let browser;
let port;
const token = randomBytes(12).toString('hex');

/** The server's leaf certificate as served on the TLS handshake. */
function servedCertificate() {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      resolve(cert);
    });
    socket.on('error', reject);
    socket.setTimeout(5000, () => {
      socket.destroy();
      reject(new Error('TLS handshake timed out'));
    });
  });
}

before(async () => {
  xvfb = await startXvfb('tls-xvfb');
  port = await freePort();
  const env = { ...process.env };
  delete env.DISPLAY;
  server = new Child('tls-vnrit', VNRIT_BIN, [
    '--display', xvfb.display, '--bind', '127.0.0.1', '--port', String(port),
    '--token', token, '--tls-self-signed',
  ], env);
  await waitFor(() => {
    if (server.exited) throw new GaveUp(`vnrit exited: ${server.tail}`);
    return server.stdout.includes('vnrit: serving https://');
  }, { timeoutMs: 30000, what: 'vnrit to print its https URL' });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  await xvfb?.child.stop();
});

test('the printed fingerprint is the served certificate\'s', { timeout: 30000 }, async () => {
  const printed = /fingerprint ([0-9A-F:]{95})/.exec(server.stdout)?.[1];
  assert.ok(printed, `no fingerprint in: ${server.stdout}`);
  const cert = await servedCertificate();
  assert.ok(cert instanceof X509Certificate);
  assert.equal(cert.fingerprint256, printed);
  const sha = createHash('sha256').update(cert.raw).digest('hex').toUpperCase().match(/../g).join(':');
  assert.equal(sha, printed);
});

test('the page decodes the desktop over https with a Secure cookie', { timeout: 60000 }, async () => {
  xrun(xvfb.display, 'xsetroot', ['-solid', '#ff00ff']);
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  await page.goto(`https://127.0.0.1:${port}/?token=${token}`, { timeout: 15000 });
  assert.equal(new URL(page.url()).search, '', 'the token is gone from the address bar');
  const cookie = (await context.cookies()).find((c) => c.name === 'vnrit_session');
  assert.ok(cookie, 'cookie set');
  assert.equal(cookie.secure, true);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(await page.evaluate(() => window.isSecureContext), true);
  await waitForColour(page, '#ff00ff', { timeoutMs: 15000 });
  await context.close();
});
