/**
 * The router's own CPU per op (issue 12), without sockets or a load generator: a real Router over a
 * real ShardPool (1 shard, RocksDB in a temp dir, a one-node ring), driven like batched ingest
 * (100 writes per tick, up to 16 batches in flight) and like single ops (50 in flight, one per
 * tick). The figure is the main thread's busy time (event-loop utilization) per op, which is what
 * bounds ingest; the machine's load moves it less than the socket runs of bench/compare.sh.
 *
 *   node dist/bench/micro/router-path.js [--ops 200000] [--reads]
 */
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { DEFAULT_CONFIG } from '../../src/config/config.js';
import { initHasher } from '../../src/ring/hash.js';
import { Router } from '../../src/router/router.js';
import { TableRegistry } from '../../src/router/tables.js';
import type { MetaStore } from '../../src/storage/meta.js';
import { initVersions } from '../../src/versions/record.js';
import { makeValue } from './fixtures.js';
import { startOneNodeShards } from './shard.js';
import { mainThreadCpuMs } from './thread-cpu.js';

const nullMeta = { set: () => undefined, get: () => undefined, list: async () => [] } as unknown as MetaStore;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opsArg = args.indexOf('--ops');
  const total = opsArg >= 0 ? Number(args[opsArg + 1]) : 200_000;
  const cfg = { ...DEFAULT_CONFIG, tables: { ...DEFAULT_CONFIG.tables, n: 1 } };
  await initHasher();
  await initVersions();
  const { dir, odb, ring, layout, pool } = await startOneNodeShards(cfg, 1, 'ringkv-router-path-');
  const tables = new TableRegistry(nullMeta, cfg.tables);
  const router = new Router({ selfId: 'bench-node', ring, layout, shards: pool, tables, config: cfg, log: pino({ level: 'silent' }) });
  const value = makeValue(100);
  let seq = 0;
  let written = 0;

  /** Run `total` writes, `perTick` submitted per turn, at most `inFlight` batches outstanding. */
  const phase = (name: string, perTick: number, inFlight: number, n: number, reads = false): Promise<void> =>
    new Promise((resolve, reject) => {
      let started = 0;
      let done = 0;
      let batches = 0;
      const elu0 = performance.eventLoopUtilization();
      const cpu0 = mainThreadCpuMs();
      const proc0 = process.cpuUsage();
      const t0 = performance.now();
      const submit = (): void => {
        while (batches < inFlight && started < n) {
          batches++;
          let left = Math.min(perTick, n - started);
          started += left;
          for (let i = 0, m = left; i < m; i++) {
            const key = Buffer.from(`rp-${reads ? (seq++ * 7919) % written : seq++}`, 'latin1');
            const cb = (err: Error | null): void => {
              if (err) return reject(err);
              done++;
              if (--left === 0) {
                batches--;
                if (done === n) {
                  const elu = performance.eventLoopUtilization(elu0);
                  const ms = performance.now() - t0;
                  const cpu = mainThreadCpuMs() - cpu0;
                  const proc = process.cpuUsage(proc0);
                  console.log(
                    `${name.padEnd(34)} ${((n / ms) * 1000).toFixed(0).padStart(7)} ops/s  main thread busy ${(elu.utilization * 100).toFixed(0)}%  ${((elu.active * 1000) / n).toFixed(2)} µs/op busy  ${((cpu * 1000) / n).toFixed(2)} µs/op main-thread cpu  ${((proc.user + proc.system) / n).toFixed(2)} µs/op process cpu`,
                  );
                  resolve();
                } else setImmediate(submit);
              }
            };
            if (reads) router.startRead({ table: 'bench', key, consistency: {} }, cb);
            else router.startWrite({ table: 'bench', key, value: Buffer.from(value), tombstone: false, consistency: {} }, cb);
          }
        }
      };
      submit();
    });

  try {
    await phase('warm-up', 100, 16, 50_000);
    await phase('writes, 100 per tick, 16 in flight', 100, 16, total);
    await phase('writes, 1 per tick, 50 in flight', 1, 50, Math.floor(total / 4));
    await phase('writes, 100 per tick, 16 in flight', 100, 16, total);
    written = seq;
    seq = 0;
    await phase('reads, 100 per tick, 16 in flight', 100, 16, total, true);
    await phase('reads, 1 per tick, 50 in flight', 1, 50, Math.floor(total / 4), true);
  } finally {
    await pool.close();
    await odb.db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
