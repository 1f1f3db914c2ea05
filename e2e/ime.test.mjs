// vnrit e2e: text in every language from headless Chromium into X, read back by xev in a
// UTF-8 locale. An input method's composition (DevTools Input.imeSetComposition, then
// Input.insertText, as a real IME does) arrives as exactly the committed characters with no
// raw key of the composition, and shortcuts still go by key afterwards; dead keys (the
// browser's composed character, and a composition as macOS makes them) give é on an X
// server whose layout has no é; the clipboard panel's type-text action types a
// 2,000-character mixed-script text exactly; a soft keyboard's plain insertText is typed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Harness, waitFor } from './lib/harness.mjs';
import { Xev } from './lib/xev.mjs';

let h;
let xev;
let page;
let cdp;
const pageErrors = [];

before(async () => {
  h = await Harness.start('ime');
  xev = await Xev.start(h.display);
  page = await h.browser.newPage({ viewport: { width: 960, height: 600 } });
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(h.server.url, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => document.getElementById('screen').videoWidth === 1280), {
    timeoutMs: 15000,
    what: 'the video',
  });
  await waitFor(() => page.evaluate(() => vnrit.remote.serverVersion === 3), {
    timeoutMs: 10000,
    what: 'the server to announce input protocol version 3',
  });
  cdp = await page.context().newCDPSession(page);
});

after(async () => {
  xev?.stop();
  await h?.close();
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});

/** Clicks the picture: the desktop gets the keyboard, and the X pointer is over xev. */
async function focusDesktop() {
  await page.mouse.click(480, 300);
  await waitFor(() => page.evaluate(() => vnrit.input.active && document.activeElement?.id === 'vnrit-ime'), {
    timeoutMs: 5000,
    what: 'the hidden text field to have the focus',
  });
}

/** Composes `steps` (what the IME shows while the user types) and commits `text`. */
async function compose(steps, text) {
  for (const s of steps) {
    await cdp.send('Input.imeSetComposition', { text: s, selectionStart: s.length, selectionEnd: s.length });
  }
  await cdp.send('Input.insertText', { text });
}

test('IME compositions arrive as exactly the committed text, and Ctrl+A still goes by key', { timeout: 60000 }, async () => {
  await focusDesktop();
  const from = xev.mark();
  await compose(['z', 'zh', 'zhong', '中', '中w', '中文', '中文输入'], '中文输入');
  await compose(['に', 'にほ', 'にほん', 'にほんご'], 'にほんご');
  const want = '中文输入にほんご';
  await waitFor(() => xev.typed(from) === want, {
    timeoutMs: 10000,
    what: `xev to read ${want} (read ${JSON.stringify(xev.typed(from))})`,
  });
  // Exactly one KeyPress per committed character: no raw key of the composition reached X.
  assert.deepEqual(
    xev.presses(from).map((p) => p.text),
    [...want],
    'one press per character, nothing else',
  );
  const afterIme = xev.mark();
  await page.keyboard.press('Control+a');
  await waitFor(() => xev.presses(afterIme).length >= 2, { timeoutMs: 5000, what: 'Ctrl+A in xev' });
  const [ctrl, a] = xev.presses(afterIme);
  assert.equal(ctrl.name, 'Control_L');
  assert.equal(a.keysym, 0x61, `then a, not ${a.name}`);
  assert.equal(a.state & 0x4, 0x4, 'with Control held');
  assert.equal(await page.evaluate(() => document.getElementById('vnrit-ime').value), '', 'the field is left empty');
});

test("a soft keyboard's text (insertText, no composition) is typed too", { timeout: 60000 }, async () => {
  await page.click('#tb-ime');
  await waitFor(
    () =>
      page.evaluate(
        () => vnrit.input.active && document.activeElement?.id === 'vnrit-ime' && document.activeElement.inputMode === 'text',
      ),
    { timeoutMs: 5000, what: "the field focused for this device's keyboard" },
  );
  const from = xev.mark();
  await cdp.send('Input.insertText', { text: 'Grüße, мир' });
  await waitFor(() => xev.typed(from) === 'Grüße, мир', {
    timeoutMs: 10000,
    what: `xev to read "Grüße, мир" (read ${JSON.stringify(xev.typed(from))})`,
  });
  assert.equal(xev.presses(from).filter((p) => p.name === 'Shift_L').length, 1, 'Shift only around G');
});

test('dead keys give é on an X layout without é', { timeout: 60000 }, async () => {
  await focusDesktop();
  const from = xev.mark();
  // A US-international layout in the browser: ´ is dead, then e gives é in the key event.
  const key = (type, key, code, vk, text) =>
    cdp.send('Input.dispatchKeyEvent', { type, key, code, windowsVirtualKeyCode: vk, ...(text ? { text } : {}) });
  await key('keyDown', 'Dead', 'Quote', 222);
  await key('keyUp', 'Dead', 'Quote', 222);
  await key('keyDown', 'é', 'KeyE', 69, 'é');
  await key('keyUp', 'é', 'KeyE', 69);
  // The same as a composition (how macOS reports dead keys).
  await compose(['´'], 'é');
  await waitFor(() => xev.typed(from) === 'éé', {
    timeoutMs: 10000,
    what: `xev to read éé (read ${JSON.stringify(xev.typed(from))})`,
  });
  assert.deepEqual(
    xev.presses(from).map((p) => p.name),
    ['eacute', 'eacute'],
    'the dead key itself typed nothing',
  );
});

/** 2,000 characters from many scripts, with spaces, line breaks and tabs, the same every run. */
function mixedText() {
  const pools = [
    'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789',
    '!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~',
    'éèêëàâäçñößøåæÿÉÜ',
    'абвгдежзийклмнопрстуфхцчшщыэюяЖЩЯ',
    'αβγδεζηθικλμνξοπρστυφχψωΩΣΔ',
    '中文输入法汉字简体繁體東京大阪',
    'にほんごひらがなカタカナ',
    '한국어입력',
    'שלוםعربى',
    '😀🎉👍🚀',
    '  \n\t',
  ];
  let seed = 7;
  const rnd = (n) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const out = [];
  while (out.length < 2000) {
    const pool = [...pools[rnd(pools.length)]];
    out.push(pool[rnd(pool.length)]);
  }
  return out.join('');
}

test('the type-text action types 2,000 mixed-script characters exactly', { timeout: 90000 }, async () => {
  await focusDesktop(); // the X pointer (and so the X focus) is over xev
  const text = mixedText();
  assert.equal([...text].length, 2000);
  await page.click('#tb-clip');
  await page.fill('#clip-text', text);
  const from = xev.mark();
  const started = Date.now();
  await page.click('#clip-type');
  assert.equal(await page.locator('#clip-stop').isVisible(), true, 'Stop typing is offered');
  // xev reads Return as "\r".
  const want = text.replaceAll('\n', '\r');
  await waitFor(() => [...xev.typed(from)].length >= 2000, {
    timeoutMs: 60000,
    intervalMs: 250,
    what: `2,000 characters in xev (${[...xev.typed(from)].length} so far)`,
  });
  const seconds = (Date.now() - started) / 1000;
  const got = xev.typed(from);
  const firstDiff = [...want].findIndex((c, i) => [...got][i] !== c);
  assert.equal(firstDiff, -1, `first difference at ${firstDiff}: ${JSON.stringify([...got].slice(firstDiff, firstDiff + 5).join(''))}`);
  assert.equal(got, want);
  console.log(`typed 2000 characters in ${seconds.toFixed(1)} s`);
  // Cancelling: a long text stops soon after "Stop typing".
  await page.fill('#clip-text', 'x'.repeat(3000));
  const from2 = xev.mark();
  await page.click('#clip-type');
  await waitFor(() => xev.typed(from2).length >= 50, { timeoutMs: 10000, what: 'typing to start' });
  await page.click('#clip-stop');
  const stoppedAt = xev.typed(from2).length;
  // Give the server as long as 500 more characters would take: far fewer arrive.
  await new Promise((r) => setTimeout(r, 2000));
  const total = xev.typed(from2).length;
  assert.ok(total < stoppedAt + 100 && total < 3000, `typing went on after Stop: ${stoppedAt} then ${total}`);
});
