// vnrit e2e: one desktop, several people (--control exclusive, the default). Three pages and a
// view-only one on one server: only the controller's keys reach X (xev watches), a request
// shows the controller a banner, a give moves control and releases what the old controller
// held (xheld), a leaving controller's control goes to the next request, the idle rule
// (--control-idle 3) and the operator token take control, a view-only page never gets it, and
// a reload keeps it. Screenshots of the people panel and of a request go to docs/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ARTIFACTS, Harness, ROOT, startServer, waitFor } from './lib/harness.mjs';
import { heldInX } from './lib/xheld.mjs';

const VIEW_TOKEN = 'control-view-token';
const ADMIN = 'control-admin-token';

let h;
let server;
let xev;
let xevOut = '';
const pageErrors = [];

before(async () => {
  h = await Harness.start('control', { server: false });
  server = await startServer({
    display: h.display,
    token: h.token,
    name: 'control-vnrit',
    extraArgs: ['--control-idle', '3', '--admin-token', ADMIN, '--view-token', VIEW_TOKEN],
  });
  h.server = server;
  xev = spawn('stdbuf', ['-oL', 'xev', '-display', h.display, '-geometry', '1280x720+0+0', '-event', 'keyboard'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  xev.stdout.on('data', (d) => (xevOut += d));
  await waitFor(() => xevOut.length > 0, { timeoutMs: 10000, what: 'xev to start' });
});

after(async () => {
  xev?.kill('SIGTERM');
  await h?.close();
  assert.deepEqual(pageErrors, [], 'no uncaught page errors');
});

/** The text xev saw typed since `from`. */
function typedSince(from) {
  const re = /KeyPress event[\s\S]*?XLookupString gives (\d+) bytes: (?:\([0-9a-f ]+\) "([^"]*)")?/g;
  return [...xevOut.slice(from).matchAll(re)].filter((m) => Number(m[1]) > 0).map((m) => m[2]).join('');
}

/**
 * Opens a viewer named `name` (stored as if asked before; null = never asked) with `token`,
 * waits for video and the first presence message.
 */
async function openViewer(name, { token = h.token, touch = false } = {}) {
  const context = await h.browser.newContext(
    touch
      ? { viewport: { width: 390, height: 740 }, hasTouch: true, isMobile: true }
      : { viewport: { width: 960, height: 600 } },
  );
  const page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  if (name) {
    await page.addInitScript((n) => {
      if (!localStorage.getItem('vnrit.name')) localStorage.setItem('vnrit.name', n);
    }, name);
  }
  await page.goto(`${server.base}/?token=${token}`, { timeout: 15000 });
  await waitFor(() => page.evaluate(() => document.getElementById('screen').videoWidth === 1280 && !!vnrit.presence.state), {
    timeoutMs: 15000,
    what: `video and presence for ${name}`,
  });
  return page;
}

/** This page's presence: {you, controller, viewers, ...}. */
const presenceOf = (page) => page.evaluate(() => vnrit.presence.state);
const mayControl = (page) => page.evaluate(() => vnrit.presence.mayControl);
const myId = async (page) => (await presenceOf(page)).you;

/** Waits until `page` sees the viewer called `name` in control. */
async function waitController(page, name, what) {
  await waitFor(
    async () => {
      const p = await presenceOf(page);
      return p && p.viewers.find((v) => v.id === p.controller)?.name === name;
    },
    { timeoutMs: 10000, what },
  );
}

/** Clicks the video and types `text` there; returns the xev offset before. */
async function typeOn(page, text) {
  await page.mouse.click(480, 300);
  await page.keyboard.type(text);
}

/** Types `fence` on the controller and waits for X to see it: earlier input has arrived too. */
async function fence(controller, text) {
  const from = xevOut.length;
  await typeOn(controller, text);
  await waitFor(() => typedSince(from).includes(text), { timeoutMs: 10000, what: `X to see "${text}"` });
}

/** Saves a screenshot into e2e/artifacts/ and docs/screenshots/. */
async function keep(page, label) {
  const file = join(ARTIFACTS, `control-${label}.png`);
  await page.screenshot({ path: file, timeout: 10000 });
  await copyFile(file, join(ROOT, 'docs', 'screenshots', `${label}.png`));
}

async function statsOf(id) {
  const stats = await h.stats();
  return { session: stats.sessions.find((s) => s.id === id), control: stats.control };
}

test('one controller at a time; request, give, leave, idle take, admin take, view-only, reload', { timeout: 60000 }, async () => {
  const ann = await openViewer('Ann');
  const bob = await openViewer('Bob');
  const vic = await openViewer('Vic', { token: VIEW_TOKEN });
  const [annId, bobId, vicId] = [await myId(ann), await myId(bob), await myId(vic)];

  // Presence: everyone sees all three, with roles; /api/stats lists them.
  await waitFor(async () => (await presenceOf(ann)).viewers.length === 3, { what: 'three viewers in the presence' });
  await waitController(vic, 'Ann', 'the view-only page to see Ann in control');
  const listed = (await h.stats()).control.viewers.map((v) => [v.name, v.role, v.control]);
  assert.deepEqual(listed, [['Ann', 'control', true], ['Bob', 'control', false], ['Vic', 'view-only', false]]);
  assert.equal(await mayControl(bob), false);

  // Only the controller's keys reach X.
  let from = xevOut.length;
  await typeOn(bob, 'b');
  // A page that sends anyway (the page itself holds back) is refused by the server, counted.
  await bob.evaluate(() => vnrit.session.sendInput('["kd","KeyC","c"]') && vnrit.session.sendInput('["ku","KeyC","c"]'));
  await vic.evaluate(() => vnrit.session.sendInput('["kd","KeyV","v"]'));
  await fence(ann, 'a');
  assert.equal(typedSince(from), 'a', 'only Ann typed');
  const bobStats = await waitFor(async () => ((await statsOf(bobId)).session.input_refused >= 2 ? statsOf(bobId) : null), {
    what: "Bob's refused input counted",
  });
  assert.equal(bobStats.session.input_refused, 2);
  const told = await bob.evaluate(() => document.getElementById('status').textContent);
  assert.match(told, /Ann has control/, 'Bob is told who has control');

  // The controller's pointer carries its name on the other pages.
  await ann.mouse.move(300, 200);
  await ann.mouse.move(320, 220);
  await waitFor(
    () => bob.evaluate(() => {
      const l = document.getElementById('vnrit-cursor-label');
      return l.textContent === 'Ann' && getComputedStyle(l).display === 'block';
    }),
    { what: "Ann's name on the pointer in Bob's page" },
  );

  // Bob requests through the people panel; Ann sees the request.
  await bob.click('#people-chip');
  await bob.click('#ctl-request');
  await waitFor(() => ann.evaluate(() => !document.getElementById('ctl-banner').hidden), { what: 'the request banner for Ann' });
  assert.match(await ann.textContent('#ctl-banner-text'), /Bob asks for control/);
  await keep(ann, 'control-request');
  await bob.mouse.move(10, 590); // the video is under the panel; keep the shot's pointer aside
  await keep(bob, 'presence');

  // Ann holds Shift, then gives control to Bob: the server releases Ann's Shift.
  await ann.mouse.click(480, 300);
  await ann.keyboard.down('Shift');
  await waitFor(() => heldInX(h.display).keys.length > 0, { what: "Ann's Shift held in X" });
  await ann.evaluate((to) => vnrit.presence.act('give', { to }), bobId);
  await waitController(bob, 'Bob', 'Bob in control');
  await waitFor(() => heldInX(h.display).keys.length === 0, { what: "Ann's Shift released by the hand-over" });
  await ann.keyboard.up('Shift');
  from = xevOut.length;
  await ann.keyboard.type('n');
  await ann.evaluate(() => vnrit.session.sendInput('["kd","KeyN","n"]'));
  await fence(bob, 'x');
  assert.equal(typedSince(from), 'x', "Bob's keys reach X, Ann's do not");

  // The controller leaves: the next request is granted.
  await bob.context().close();
  await ann.evaluate(() => vnrit.presence.act('request'));
  await waitController(ann, 'Ann', 'Ann in control after Bob left');

  // A touch device (Cy, asked for a name) takes control once Ann has been idle for 3 s.
  const cy = await openViewer(null, { touch: true });
  await waitFor(() => cy.evaluate(() => !document.getElementById('name-ask').hidden), { what: 'the name question' });
  await cy.fill('#name-ask-input', 'Cy');
  await cy.tap('#name-ask-ok');
  await waitFor(async () => (await presenceOf(ann)).viewers.some((v) => v.name === 'Cy'), { what: 'the name Cy' });
  await fence(ann, 'i');
  await cy.tap('#people-chip');
  await waitFor(() => cy.isDisabled('#ctl-take'), { timeoutMs: 2000, what: 'the take button to wait for the idle time' });
  await cy.evaluate(() => vnrit.presence.act('take'));
  await waitFor(() => cy.evaluate(() => /active \d+ s ago/.test(document.getElementById('status').textContent)), {
    what: 'a busy take refused',
  });
  await waitFor(() => cy.isEnabled('#ctl-take'), { timeoutMs: 6000, what: 'the take button after 3 s idle' });
  await cy.tap('#ctl-take');
  await waitController(ann, 'Cy', 'Cy in control by the idle rule');

  // The operator token takes control at once; a wrong one does not.
  await ann.click('#people-chip');
  await ann.fill('#ctl-admin-token', 'wrong');
  await ann.click('#ctl-admin');
  await waitFor(() => ann.evaluate(() => /wrong operator token/.test(document.getElementById('status').textContent)), {
    what: 'a wrong token refused',
  });
  await ann.fill('#ctl-admin-token', ADMIN);
  await ann.click('#ctl-admin');
  await waitController(cy, 'Ann', 'Ann in control with the operator token');

  // A view-only page never gets control, not even with the operator token.
  assert.equal(await vic.isVisible('#ctl-request'), false);
  await vic.evaluate((admin) => {
    vnrit.presence.act('request');
    vnrit.presence.act('take', { admin });
  }, ADMIN);
  await ann.click('#people-chip'); // close the panel
  await fence(ann, 'k');
  assert.equal(await mayControl(vic), false);
  await waitController(vic, 'Ann', 'control still with Ann');

  // A reload keeps control (Cy, connected all along, does not get it).
  await ann.reload();
  await waitFor(() => ann.evaluate(() => vnrit.presence?.state?.viewers.length === 3 && vnrit.presence.mayControl), {
    what: 'Ann back in control after the reload',
  });
  await waitController(cy, 'Ann', 'Cy sees Ann in control after the reload');
  await fence(ann, 'r');
  const final = (await h.stats()).control;
  assert.equal(final.viewers.find((v) => v.id === final.controller).name, 'Ann');
  assert.ok(!final.viewers.some((v) => [annId, bobId].includes(v.id)), 'old sessions gone');
  assert.ok(final.viewers.some((v) => v.id === vicId));
  await Promise.all([ann, cy, vic].map((p) => p.context().close()));
});
