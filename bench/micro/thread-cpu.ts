import { readFileSync } from 'node:fs';

/**
 * The main thread's own CPU time in ms (utime + stime of /proc/self/task/<pid>, 10 ms ticks):
 * unlike the event loop's busy time, it does not count time spent waiting for a core on a loaded
 * machine. NaN where /proc is not available.
 */
export function mainThreadCpuMs(): number {
  return cpuMsOfStat(`/proc/self/task/${process.pid}/stat`);
}

/** The calling thread's CPU ms (a worker thread's too): /proc/thread-self. */
export function threadSelfCpuMs(): number {
  return cpuMsOfStat('/proc/thread-self/stat');
}

function cpuMsOfStat(file: string): number {
  try {
    const f = readFileSync(file, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}
