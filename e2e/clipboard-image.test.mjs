// vnrit e2e: images on the clipboard both ways between an X client (xclip) and Chromium. A
// PNG an X client copies shows up in the page's clipboard panel with the same pixels; a PNG
// given to the page arrives on the X CLIPBOARD as the same bytes.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, Harness, startChild, waitFor } from './lib/harness.mjs';

let h;
let page;
const pageErrors = [];

before(async () => {
  h = await Harness.start('clipimg');
  page = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => vnrit.remote.serverVersion === 3), {
    timeoutMs: 15000,
    what: 'the server to announce input protocol version 3',
  });
});

after(async () => {
  await h?.close();
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});

/** A small PNG made by ImageMagick: a two-colour gradient with a few odd pixels. */
function makePng(name, colours) {
  const file = join(ARTIFACTS, `clipimg-${name}.png`);
  const r = spawnSync('convert', ['-size', '40x30', `gradient:${colours}`, '-fill', '#00ff00', '-draw', 'point 3,4', file], {
    encoding: 'utf8',
    timeout: 10000,
  });
  assert.equal(r.status, 0, `convert: ${r.stderr}`);
  return { file, bytes: readFileSync(file) };
}

test('a PNG copied by an X client shows in the panel with the same pixels', { timeout: 60000 }, async () => {
  const png = makePng('x', 'red-blue');
  const env = { ...process.env, DISPLAY: h.display };
  const owner = startChild('clipimg-xclip', 'xclip', ['-quiet', '-selection', 'clipboard', '-t', 'image/png', '-i', png.file], env);
  try {
    await waitFor(() => page.evaluate(() => !document.getElementById('clip-image').hidden), {
      timeoutMs: 10000,
      what: 'the image in the clipboard panel',
    });
    const same = await page.evaluate(async (b64) => {
      const pixels = async (src) => {
        const img = new Image();
        img.src = src;
        await img.decode();
        const c = new OffscreenCanvas(img.naturalWidth, img.naturalHeight);
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        return { w: img.naturalWidth, h: img.naturalHeight, data: [...g.getImageData(0, 0, c.width, c.height).data] };
      };
      const shown = await pixels(document.getElementById('clip-image').src);
      const original = await pixels(`data:image/png;base64,${b64}`);
      const diff = shown.data.findIndex((v, i) => v !== original.data[i]);
      return { w: shown.w, h: shown.h, diff, n: shown.data.length, m: original.data.length };
    }, png.bytes.toString('base64'));
    assert.deepEqual(same, { w: 40, h: 30, diff: -1, n: 4800, m: 4800 });
    assert.match(await page.locator('#clip-note').textContent(), /an image of \d+ bytes/);
  } finally {
    await owner.stop();
  }
});

test('a PNG given to the page arrives on the X clipboard byte-identical', { timeout: 60000 }, async () => {
  const png = makePng('page', 'yellow-navy');
  const sent = await page.evaluate(
    (b64) => vnrit.clipboard.sendImage(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: 'image/png' })),
    png.bytes.toString('base64'),
  );
  assert.equal(sent, true);
  const env = { ...process.env, DISPLAY: h.display };
  const read = () => spawnSync('xclip', ['-o', '-selection', 'clipboard', '-t', 'image/png'], { env, timeout: 5000 }).stdout;
  await waitFor(() => read()?.equals(png.bytes), { timeoutMs: 10000, what: 'the X clipboard to hold the PNG' });
  const targets = spawnSync('xclip', ['-o', '-selection', 'clipboard', '-t', 'TARGETS'], { env, encoding: 'utf8', timeout: 5000 }).stdout;
  assert.match(targets, /image\/png/);
});
