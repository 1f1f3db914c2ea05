// Per-thread figures of a process from /proc, shared by the benchmark programs.
import { readFileSync, readdirSync } from 'node:fs';

/**
 * The name and CPU ticks (utime + stime, in clock ticks) of one `/proc/.../stat` line.
 * @param {string} line
 */
export function statTicks(line) {
  const open = line.indexOf('(');
  const close = line.lastIndexOf(')');
  const fields = line.slice(close + 2).split(' ');
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  return { name: line.slice(open + 1, close), ticks: Number(fields[11]) + Number(fields[12]) };
}

/**
 * The threads of `pid` now: tid → { name, ticks (utime + stime), vol (voluntary context
 * switches), runNs (schedstat: time on a CPU, ns), waitNs (schedstat: time runnable but
 * waiting for a CPU, ns) }. A thread that ends between the listing and the reads is left out.
 */
export function threads(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const { name, ticks } = statTicks(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
      const st = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
      const vol = Number(/voluntary_ctxt_switches:\s*(\d+)/.exec(st)[1]);
      const [runNs, waitNs] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      out.set(tid, { name, ticks, vol, runNs, waitNs });
    } catch {
      // the thread ended between readdir and read
    }
  }
  return out;
}

/** Run time of all of `pid`'s threads, in nanoseconds. */
export function runNs(pid) {
  let total = 0;
  for (const t of threads(pid).values()) total += t.runNs;
  return total;
}
