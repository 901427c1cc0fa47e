/**
 * A piscina task: one generator thread of `ringkv bench --threads K` (src/bench/threads.ts). It
 * opens its own target (its own connections), runs its share of one phase, closes the target and
 * returns the RunResult (histograms included, so the caller merges exactly).
 */
import type { RunResult } from '../src/bench/driver.js';
import { loadPhase, runWorkload } from '../src/bench/driver.js';
import { openRedisTarget } from '../src/bench/redis-target.js';
import { openHttpTarget, openRingkvTarget } from '../src/bench/ringkv-target.js';
import type { BenchTarget } from '../src/bench/target.js';
import { noopTarget } from '../src/bench/noop-target.js';
import type { ThreadTargetSpec, ThreadTask } from '../src/bench/threads.js';
import type { ConsistencyLevel } from '../src/client/index.js';

async function open(spec: ThreadTargetSpec): Promise<BenchTarget> {
  switch (spec.kind) {
    case 'noop':
      return noopTarget();
    case 'redis':
      return openRedisTarget({ url: spec.url, connections: spec.connections, timeoutMs: spec.timeoutMs });
    case 'http': {
      const cons = consistencyOf(spec);
      return openHttpTarget({ url: spec.url, table: spec.table, timeoutMs: spec.timeoutMs, ...cons });
    }
    case 'ringkv': {
      const cons = consistencyOf(spec);
      const where = spec.socket !== undefined ? { socket: spec.socket } : { hosts: spec.hosts ?? [], ...(spec.secret !== undefined ? { secret: spec.secret } : {}) };
      return openRingkvTarget({ ...where, table: spec.table, timeoutMs: spec.timeoutMs, connections: spec.connections, ...cons });
    }
  }
}

function consistencyOf(spec: { consistency?: string; w?: number; r?: number }): { consistency?: ConsistencyLevel; w?: number; r?: number } {
  const out: { consistency?: ConsistencyLevel; w?: number; r?: number } = {};
  if (spec.consistency !== undefined) out.consistency = spec.consistency as ConsistencyLevel;
  if (spec.w !== undefined) out.w = spec.w;
  if (spec.r !== undefined) out.r = spec.r;
  return out;
}

export default async function benchClient(task: ThreadTask): Promise<RunResult> {
  const ac = new AbortController();
  task.port.on('message', (m: unknown) => {
    if (m === 'abort') ac.abort();
  });
  const onProgress = (s: unknown): void => task.port.postMessage(s);
  const target = await open(task.target);
  try {
    const ph = task.phase;
    if (ph.kind === 'load') return await loadPhase(target, { ...ph.opts, onProgress, signal: ac.signal });
    return await runWorkload(target, { ...ph.opts, onProgress, signal: ac.signal });
  } finally {
    await target.close();
    task.port.close();
  }
}
