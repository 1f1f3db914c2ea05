// vnrit e2e: large clipboard contents both ways between Chromium and X clients (xclip),
// through the page's chunk streams (input protocol v3) and the X selection's INCR protocol:
// 5 MiB of text and a 2-3 MiB PNG arrive byte-identical (sha256 compared); over
// --max-clipboard both directions give a clear error in the page and nothing partial
// arrives; a view-only page can neither set the clipboard nor receive it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, Harness, startChild, startServer, startXvfb, waitFor } from './lib/harness.mjs';

const VIEW_TOKEN = 'cliplarge-view-only';
const MIB = 1024 * 1024;

let h;
let page;
const pageErrors = [];

before(async () => {
  h = await Harness.start('cliplarge', { serverArgs: ['--view-token', VIEW_TOKEN, '--control', 'shared'] });
  page = await openPage(h.server.url);
});

after(async () => {
  await h?.close();
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});

async function openPage(url, version = 3) {
  const p = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
  p.on('pageerror', (err) => pageErrors.push(err.message));
  await p.goto(url, { timeout: 15000 });
  await waitFor(() => p.evaluate((v) => vnrit.remote.serverVersion === v && vnrit.session?.input?.readyState === 'open', version), {
    timeoutMs: 15000,
    what: `the server to announce input protocol version ${version}`,
  });
  return p;
}

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const env = (display = h.display) => ({ ...process.env, DISPLAY: display });

/** What an X client reads from CLIPBOARD as `target` (bytes; empty when there is nothing). */
function xclipReadOn(target = 'UTF8_STRING', display = h.display) {
  const r = spawnSync('xclip', ['-o', '-selection', 'clipboard', '-t', target], { env: env(display), timeout: 15000, maxBuffer: 64 * MIB });
  return r.stdout ?? Buffer.alloc(0);
}

/** Deterministic text of about `bytes` UTF-8 bytes, with multi-byte characters. */
function bigText(bytes, tag) {
  const lines = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const line = `${tag} ${i}: héllo ✓ 中文 ${'x'.repeat(i % 61)}\n`;
    lines.push(line);
    n += Buffer.byteLength(line);
  }
  return lines.join('');
}

/** SHA-256 (hex) in the page of the clipboard text or image it last received. */
const pageSha = (p, what) =>
  p.evaluate(async (w) => {
    const c = vnrit.clipboard;
    const bytes = w === 'text' ? new TextEncoder().encode(c.remoteText) : c.remoteImage;
    if (!bytes) return null;
    const d = await crypto.subtle.digest('SHA-256', bytes);
    return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
  }, what);

const xclipRead = (target) => xclipReadOn(target);

/** An X client owning CLIPBOARD with a file's bytes (xclip stays until stopped). */
function xclipOwn(name, file, target = 'UTF8_STRING', display = h.display) {
  return startChild(`cliplarge-${name}`, 'xclip', ['-quiet', '-selection', 'clipboard', '-t', target, '-i', file], env(display));
}

/** A PNG of random pixels (incompressible: about 3 bytes a pixel). */
function noisePng(name, w, hgt) {
  const file = join(ARTIFACTS, `cliplarge-${name}.png`);
  const r = spawnSync('convert', ['-size', `${w}x${hgt}`, 'xc:', '+noise', 'Random', '-depth', '8', file], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `convert: ${r.stderr}`);
  return { file, bytes: readFileSync(file) };
}

test('5 MiB of text from the page reaches X byte-identical (INCR)', { timeout: 90000 }, async () => {
  const t0 = Date.now();
  const { ok, sha, size } = await page.evaluate(async () => {
    const lines = [];
    for (let i = 0, n = 0; n < 5 * 1024 * 1024; i++) {
      const line = `page ${i}: héllo ✓ 中文 ${'y'.repeat(i % 53)}\n`;
      lines.push(line);
      n += new TextEncoder().encode(line).length;
    }
    const text = lines.join('');
    const bytes = new TextEncoder().encode(text);
    const d = await crypto.subtle.digest('SHA-256', bytes);
    const sha = [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, '0')).join('');
    return { ok: await vnrit.clipboard.sendText(text), sha, size: bytes.length };
  });
  assert.equal(ok, true, 'the page sent it');
  assert.ok(size >= 5 * MIB);
  const got = await waitFor(
    () => {
      const out = xclipRead();
      return out.length === size && sha256(out) === sha ? out : null;
    },
    { timeoutMs: 30000, intervalMs: 250, what: `xclip to read the page's ${size} bytes` },
  );
  console.log(`page -> X: ${got.length} bytes of text in ${Date.now() - t0} ms`);
  assert.match(await page.locator('#clip-note').textContent(), /text of \d+ bytes sent to the desktop/);
});

test('5 MiB of text copied by an X client reaches the page byte-identical (INCR)', { timeout: 90000 }, async () => {
  const text = bigText(5 * MIB, 'x');
  const file = join(ARTIFACTS, 'cliplarge-x.txt');
  writeFileSync(file, text);
  const want = sha256(Buffer.from(text));
  const t0 = Date.now();
  const owner = xclipOwn('x-text', file);
  try {
    await waitFor(async () => (await pageSha(page, 'text')) === want, {
      timeoutMs: 30000,
      intervalMs: 250,
      what: `the page to hold the X client's ${Buffer.byteLength(text)} bytes`,
    });
    console.log(`X -> page: ${Buffer.byteLength(text)} bytes of text in ${Date.now() - t0} ms`);
  } finally {
    await owner.stop();
  }
});

test('a 2-3 MiB PNG goes both ways byte-identical', { timeout: 90000 }, async () => {
  const fromX = noisePng('x', 900, 900);
  assert.ok(fromX.bytes.length > 2 * MIB && fromX.bytes.length < 3 * MIB, `${fromX.bytes.length} bytes`);
  const owner = xclipOwn('x-png', fromX.file, 'image/png');
  try {
    await waitFor(async () => (await pageSha(page, 'image')) === sha256(fromX.bytes), {
      timeoutMs: 30000,
      intervalMs: 250,
      what: 'the page to hold the X client\'s PNG',
    });
  } finally {
    await owner.stop();
  }
  assert.equal(await page.evaluate(() => document.getElementById('clip-image').hidden), false, 'the image is shown');

  const fromPage = noisePng('page', 880, 900);
  const sent = await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return vnrit.clipboard.sendImage(new Blob([bytes], { type: 'image/png' }));
  }, fromPage.bytes.toString('base64'));
  assert.equal(sent, true);
  await waitFor(() => sha256(xclipRead('image/png')) === sha256(fromPage.bytes), {
    timeoutMs: 30000,
    intervalMs: 250,
    what: 'xclip to read the page\'s PNG',
  });
});

test('over --max-clipboard: a clear error both ways, nothing partial', { timeout: 120000 }, async () => {
  // Its own X display: xclip serves one INCR requestor at a time, and the other server
  // would be one.
  const x2 = await startXvfb('cliplarge-xvfb-1m');
  const small = await startServer({ display: x2.display, token: h.token, name: 'cliplarge-vnrit-1m', extraArgs: ['--max-clipboard', '1M'] });
  const p = await openPage(small.url);
  const xclipRead = (target) => xclipReadOn(target, x2.display);
  try {
    assert.equal(await p.evaluate(() => vnrit.clipboard.maxBytes), MIB);
    const before = sha256(xclipRead());
    // The page knows the limit and refuses at once.
    const local = await p.evaluate(() => vnrit.clipboard.sendText('z'.repeat(2 * 1024 * 1024)));
    assert.equal(local, false);
    assert.match(await p.evaluate(() => vnrit.clipboard.lastError), /over the server's 1048576-byte clipboard limit/);
    // A page that does not check is refused by the server at the stream's start.
    await p.evaluate(() => {
      vnrit.clipboard.maxBytes = 64 * 1024 * 1024;
      vnrit.clipboard.lastError = '';
    });
    // (Whether the page finished sending before the refusal arrived is a race: not checked.)
    await p.evaluate(() => vnrit.clipboard.sendText('w'.repeat(2 * 1024 * 1024)));
    await waitFor(() => p.evaluate(() => vnrit.clipboard.lastError), { timeoutMs: 10000, what: 'the server\'s refusal in the page' });
    assert.match(await p.evaluate(() => vnrit.clipboard.lastError), /over the server's 1048576-byte limit \(--max-clipboard\)/);
    assert.match(await p.locator('#clip-note').textContent(), /1048576-byte limit/);
    assert.equal(sha256(xclipRead()), before, 'the X clipboard is unchanged');

    // X to page: 2 MiB copied in X is refused with a message; the page keeps what it had.
    await p.evaluate(() => {
      vnrit.clipboard.lastError = '';
      vnrit.clipboard.remoteText = 'before';
    });
    const file = join(ARTIFACTS, 'cliplarge-over.txt');
    writeFileSync(file, bigText(2 * MIB, 'over'));
    const owner = xclipOwn('x-over', file, 'UTF8_STRING', x2.display);
    try {
      await waitFor(() => p.evaluate(() => vnrit.clipboard.lastError), { timeoutMs: 15000, what: 'the too-large notice in the page' });
    } finally {
      await owner.stop();
    }
    assert.match(await p.evaluate(() => vnrit.clipboard.lastError), /remote clipboard holds \d+ bytes of text, over the server's 1048576-byte limit/);
    assert.equal(await p.evaluate(() => vnrit.clipboard.remoteText), 'before', 'nothing partial arrived');
  } finally {
    await p.close();
    await small.child.stop();
    await x2.child.stop();
  }
});

test('a view-only page neither sets nor receives the clipboard', { timeout: 90000 }, async () => {
  const view = await openPage(`${h.server.base}/?token=${VIEW_TOKEN}`);
  try {
    const before = sha256(xclipRead());
    const ok = await view.evaluate(() => vnrit.clipboard.sendText('v'.repeat(200000)));
    assert.equal(ok, false, 'the page does not send');
    // Sent anyway, the server refuses it.
    await view.evaluate(() => {
      const s = vnrit.session;
      s.sendInput(JSON.stringify(['cbb', 77, 'text/plain', 4]));
      s.sendInput(JSON.stringify(['cbp', 77, 0, btoa('view')]));
      s.sendInput(JSON.stringify(['cbe', 77]));
    });
    await waitFor(() => view.evaluate(() => /view-only/.test(document.body.textContent)), {
      timeoutMs: 10000,
      what: 'the view-only refusal shown in the page',
    });
    assert.equal(sha256(xclipRead()), before, 'the X clipboard is unchanged');

    // A large X clipboard reaches the controlling page, not the view-only one.
    const text = bigText(300 * 1024, 'seen');
    const file = join(ARTIFACTS, 'cliplarge-view.txt');
    writeFileSync(file, text);
    const owner = xclipOwn('x-view', file);
    try {
      await waitFor(async () => (await pageSha(page, 'text')) === sha256(Buffer.from(text)), {
        timeoutMs: 15000,
        what: 'the controlling page to get the X clipboard',
      });
    } finally {
      await owner.stop();
    }
    assert.equal(await view.evaluate(() => vnrit.clipboard.remoteText), '', 'the view-only page got nothing');
  } finally {
    await view.close();
  }
});
