/**
 * A target that does nothing (`ringkv bench --target noop`): every call succeeds at once. It
 * measures the load generator's own ceiling (the driver, the op stream, the histograms and, with
 * `--threads`, the pool), i.e. the most a run can offer any real target from this machine.
 */
import type { BenchTarget, OpResult, PutItem } from './target.js';

export function noopTarget(): BenchTarget {
  const ok = (n: number): Promise<OpResult[]> => Promise.resolve(new Array<OpResult>(n).fill(null));
  return {
    name: 'noop',
    put: (items: ReadonlyArray<PutItem>) => ok(items.length),
    get: (keys: readonly string[]) => ok(keys.length),
    scan: () => Promise.resolve(null),
    close: () => Promise.resolve(),
  };
}
