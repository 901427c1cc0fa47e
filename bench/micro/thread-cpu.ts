import { readFileSync } from 'node:fs';

/**
 * The main thread's own CPU time in ms (utime + stime of /proc/self/task/<pid>, 10 ms ticks):
 * unlike the event loop's busy time, it does not count time spent waiting for a core on a loaded
 * machine. NaN where /proc is not available.
 */
export function mainThreadCpuMs(): number {
  try {
    const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}
