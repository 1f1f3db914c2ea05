// Per-thread figures of a process from /proc, shared by the benchmark probes.
import { readFileSync, readdirSync } from 'node:fs';

/**
 * The threads of `pid` now: tid → { name, vol (voluntary context switches), runNs (schedstat
 * run time, ns) }. A thread that ends between the listing and the reads is left out.
 */
export function threads(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const name = /Name:\s*(.*)/.exec(st)[1];
      const vol = Number(/voluntary_ctxt_switches:\s*(\d+)/.exec(st)[1]);
      const [runNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(tid, { name, vol, runNs });
    } catch {}
  }
  return out;
}

/** Run time of all of `pid`'s threads, in nanoseconds. */
export function runNs(pid) {
  let total = 0;
  for (const t of threads(pid).values()) total += t.runNs;
  return total;
}
