// What an idle Chromium viewer costs vnrit on a still screen (issue 2's still ratio): starts
// Xvfb 1920x1080 (nothing drawn), vnrit and 0..N Chromium pages, and for each viewer count in
// PROBE_COUNTS (default 1,3,1,3; 8 s to settle, then a PROBE_WINDOW_S window, default 20 s)
// prints vnrit's CPU (schedstat run time of all threads), wake-ups (voluntary context switches)
// and CPU per thread group, and the UDP datagrams per second in the namespace (only this test's
// traffic is there). VNRIT_ARGS adds server flags. Needs root; run it in a private namespace:
//   unshare -n -- bash -c 'ip link set lo up; node bench/idle-probe.mjs'
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { launchBrowser, startServer, startXvfb } from '../e2e/lib/harness.mjs';
import { threads } from './lib/threads.mjs';

const WINDOW_S = Number(process.env.PROBE_WINDOW_S || 20);
const COUNTS = (process.env.PROBE_COUNTS || '1,3,1,3').split(',').map(Number);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function udp() {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
  const keys = lines[0].split(/\s+/);
  const vals = lines[1].split(/\s+/).map(Number);
  return { in: vals[keys.indexOf('InDatagrams')], out: vals[keys.indexOf('OutDatagrams')] };
}

const token = randomBytes(8).toString('hex');
const xvfb = await startXvfb('probe-xvfb', { screen: '1920x1080x24' });
const server = await startServer({ display: xvfb.display, token, name: 'probe-vnrit', extraArgs: (process.env.VNRIT_ARGS || '').split(/\s+/).filter(Boolean) });
const browser = await launchBrowser();
const pid = server.child.proc.pid;
const pages = [];
try {
  for (const n of COUNTS) {
    while (pages.length > n) await pages.pop().close();
    while (pages.length < n) {
      const p = await (await browser.newContext()).newPage();
      await p.goto(server.url);
      pages.push(p);
    }
    await sleep(8000);
    const t0 = threads(pid), u0 = udp(), w0 = performance.now();
    await sleep(WINDOW_S * 1000);
    const t1 = threads(pid), u1 = udp(), secs = (performance.now() - w0) / 1000;
    const groups = new Map();
    let run = 0;
    for (const [tid, t] of t1) {
      const b = t0.get(tid) ?? { vol: 0, runNs: 0 };
      run += t.runNs - b.runNs;
      const g = groups.get(t.name) ?? { vol: 0, ms: 0 };
      g.vol += (t.vol - b.vol) / secs;
      g.ms += (t.runNs - b.runNs) / 1e6 / secs;
      groups.set(t.name, g);
    }
    const g = [...groups].filter(([, v]) => v.vol > 0.05).map(([k, v]) => `${k} ${v.vol.toFixed(1)}/s ${v.ms.toFixed(2)}ms/s`).join(', ');
    console.log(`viewers ${n}: cpu ${(run / 1e9 / secs * 100).toFixed(3)} %, udp in ${((u1.in - u0.in) / secs).toFixed(1)}/s out ${((u1.out - u0.out) / secs).toFixed(1)}/s; ${g}`);
  }
} finally {
  await browser.close();
  await server.child.stop();
  await xvfb.child.stop();
}
