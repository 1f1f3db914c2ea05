// vnrit e2e: file transfer through the page. A 200 MiB file picked with the files panel's own
// input (playwright's setInputFiles) uploads with a progress sequence and lands byte-identical in
// --upload-dir; a file made on the server side meanwhile shows up in the panel's listing by
// itself, and its link downloads it byte-identical. A refusal (over --max-upload) is one line
// in the panel, and nothing is written.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, truncateSync, readdirSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Harness, startServer, waitFor } from './lib/harness.mjs';

let h;
let dir;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vnrit-e2e-files-'));
  h = await Harness.start('files', { server: false });
  h.server = await startServer({
    display: h.display,
    token: h.token,
    name: 'files-vnrit',
    extraArgs: ['--upload-dir', dir, '--max-upload', '210M'],
  });
});

/** Where the test's own files to pick are made (beside the upload folder, not in it). */
const picks = () => join(dir, '..', `vnrit-e2e-upload-${process.pid}`);

after(async () => {
  await h?.close();
  if (dir) {
    rmSync(dir, { recursive: true, force: true });
    rmSync(picks(), { recursive: true, force: true });
  }
});

test('a picked file uploads with progress, and the panel lists and downloads a new server file', { timeout: 60000 }, async () => {
  const page = await h.browser.newPage();
  await page.goto(h.server.url, { timeout: 15000 });
  await page.click('#tb-files');
  await waitFor(() => page.isVisible('#files-panel'), { what: 'the files panel' });

  // 200 MiB from a file on disk (the browser reads it itself, as from a user's pick).
  const source = join(picks(), 'notes é 1.bin');
  mkdirSync(dirname(source), { recursive: true });
  const sent = createHash('sha256');
  const fd = openSync(source, 'w');
  for (let i = 0; i < 200; i += 1) {
    const chunk = randomBytes(1 << 20);
    sent.update(chunk);
    writeSync(fd, chunk);
  }
  closeSync(fd);
  const size = 200 << 20;
  await page.setInputFiles('#files-pick', source);
  const upload = await waitFor(
    () => page.evaluate(() => {
      const u = window.vnrit.files.uploads.at(-1);
      return u && u.state !== 'sending' ? { state: u.state, message: u.message, progress: u.progress, total: u.total } : null;
    }),
    { timeoutMs: 30000, what: 'the upload to finish' },
  );
  console.log(`# progress events: ${upload.progress.length}, ${JSON.stringify(upload.progress.slice(0, 4))} … ${upload.progress.at(-1)}`);
  assert.equal(upload.state, 'done', upload.message);
  assert.ok(upload.progress.length >= 2, `a progress sequence: ${JSON.stringify(upload.progress)}`);
  for (let i = 1; i < upload.progress.length; i += 1) assert.ok(upload.progress[i] >= upload.progress[i - 1]);
  assert.equal(upload.progress.at(-1), size);
  const received = createHash('sha256').update(readFileSync(join(dir, 'notes é 1.bin'))).digest('hex');
  assert.equal(received, sent.digest('hex'), 'the upload is byte-identical');
  assert.deepEqual(readdirSync(dir), ['notes é 1.bin'], 'no temporary file left');

  // A file made on the desktop while the panel is open appears by itself.
  const made = randomBytes(300000);
  writeFileSync(join(dir, 'from-desktop.txt'), made);
  await waitFor(
    () => page.evaluate(() => [...document.querySelectorAll('#files-list a')].find((a) => a.textContent === 'from-desktop.txt')?.href),
    { timeoutMs: 10000, what: 'the new server file in the panel' },
  );
  const [download] = await Promise.all([
    page.waitForEvent('download', { timeout: 10000 }),
    page.click('#files-list a:text-is("from-desktop.txt")'),
  ]);
  assert.equal(download.suggestedFilename(), 'from-desktop.txt');
  const saved = await download.path();
  assert.ok(readFileSync(saved).equals(made), 'the download is byte-identical');

  // A refusal is one line in the panel, and nothing is written.
  const huge = join(dirname(source), 'huge.bin');
  closeSync(openSync(huge, 'w'));
  truncateSync(huge, 211 << 20); // sparse: nothing to write
  await page.setInputFiles('#files-pick', huge);
  const refused = await waitFor(
    () => page.evaluate(() => {
      const u = window.vnrit.files.uploads.at(-1);
      return u && u.name === 'huge.bin' && u.state !== 'sending' ? u.message : null;
    }),
    { timeoutMs: 30000, what: 'the oversized upload to be refused' },
  );
  assert.match(refused, /^413 Payload Too Large: files over 210 MiB are refused/);
  assert.equal(refused.includes('\n'), false);
  const shown = await page.textContent('#files-uploads li:first-child .line');
  assert.equal(shown, refused);
  assert.deepEqual(readdirSync(dir).sort(), ['from-desktop.txt', 'notes é 1.bin']);
  await h.screenshot(page, 'panel');
  await page.close();
  rmSync(dirname(source), { recursive: true, force: true });
});
