/**
 * The shard actor's Merkle trees against the real worker and RocksDB (the built dist/, since the
 * pool spawns dist/workers/shard.js): a rebuild that overlaps writes must end with the same roots as
 * a quiet rebuild from a scan, and so must a tombstone sweep. Run `npx tsc` first.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { initHasher, tokenOf } from '../../dist/src/ring/hash.js';
import { buildRing, type RingLayout } from '../../dist/src/ring/builder.js';
import { randomTokens } from '../../dist/src/ring/tokens.js';
import { RingTable } from '../../dist/src/ring/table.js';

/** Liveness.Up: a const enum, erased from the built JS this test imports. */
const UP = 1;
import { openDatabase, type OpenedDatabase } from '../../dist/src/storage/db.js';
import { ShardPool, shardRead, shardWrite } from '../../dist/src/storage/shards.js';
import { applyCrdtRequest, encodeApplyRequest } from '../../dist/src/storage/crdt-shard.js';
import type { WireReply } from '../../dist/src/storage/shard-wire.js';
import type { RepairResult, ShardResult } from '../../dist/src/storage/shard-protocol.js';
import { encodeRecord, initVersions, newVersion } from '../../dist/src/versions/index.js';
import { tableIdOf } from '../../dist/src/router/tables.js';
import { shardOfToken } from '../../dist/src/storage/placement.js';
import { encodeStorageKey } from '../../dist/src/storage/keys.js';
import { DEFAULT_CRDT_LIMITS, parseOp, readEncoded } from '../../dist/src/crdt/index.js';
import { openRocksBaseline } from '../../dist/src/bench/rocksdb-target.js';

const tableId = (name: string): Buffer => Buffer.from(tableIdOf(name), 'hex');
const TABLE = tableId('seven');
const KEYS = 40_000;

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function layoutWith(vnodes: number, seed: number): RingLayout {
  return buildRing([{ id: 'n1', tokens: randomTokens(vnodes, seeded(seed)), status: 'normal' }], { maxReplicas: 3 });
}

function repairOf<K extends RepairResult['kind']>(r: ShardResult, kind: K): Extract<RepairResult, { kind: K }> {
  if (!r.ok || !('repair' in r) || r.repair.kind !== kind) throw new Error(`unexpected shard answer ${JSON.stringify(r).slice(0, 200)}`);
  return r.repair as Extract<RepairResult, { kind: K }>;
}

describe('shard Merkle trees (real worker + RocksDB)', () => {
  let dir: string;
  let odb: OpenedDatabase;
  let ring: RingTable;
  let pool: ShardPool;
  let counter = 1;

  const start = async (): Promise<ShardPool> =>
    (
      await ShardPool.start({
        shards: 1,
        maxQueue: 200_000,
        workerData: {
          handle: odb.db.handle,
          ringBuffer: ring.buffer,
          durability: 'periodic',
          syncIntervalMs: 1000,
          maxSiblings: 16,
          merkleDepth: 8,
          gcGraceSeconds: 1,
          tombstoneSweepIntervalMs: 86_400_000,
          crdtActor: 'test-node@0',
          crdtLimits: DEFAULT_CRDT_LIMITS,
        },
      })
    ).pool;

  const roots = async (): Promise<{ ready: boolean; sig: string; ranges: number }> => {
    const r = repairOf(await pool.submit(0, { op: 'merkle-roots' }), 'merkle-roots');
    return { ready: r.ranges.every((x) => x.ready), sig: r.ranges.map((x) => `${x.pos}:${x.hi}:${x.lo}`).join(','), ranges: r.ranges.length };
  };

  const write = async (i: number, value: string, tombstone = false, ts = Date.now() * 1000): Promise<WireReply> => {
    const key = Buffer.from(`k-${i}`);
    const t = tokenOf(key);
    const v = newVersion({ node: 'n1', counter: counter++, context: [], ts, tombstone, value: tombstone ? new Uint8Array(0) : Buffer.from(value), maxClockEntries: 16 });
    const r = await shardWrite(pool, TABLE, 'lww', key, t.hi, t.lo, encodeRecord([v]));
    if (!r.ok) throw new Error(`shard write failed: ${r.code}: ${r.message}`);
    return r;
  };

  beforeAll(async () => {
    await initHasher();
    await initVersions();
    dir = tempDir('ringkv-shard-merkle-');
    odb = await openDatabase(dir, 1);
    ring = RingTable.create();
    ring.publish(layoutWith(8, 1), 0, () => UP);
    pool = await start();
  });
  afterAll(async () => {
    await pool?.close();
    await odb?.db.close();
    if (dir) removeDir(dir);
  });

  it('a rebuild overlapping writes ends with the roots of a quiet rebuild', async () => {
    for (let i = 0; i < KEYS; i += 1000) await Promise.all(Array.from({ length: 1000 }, (_, j) => write(i + j, 'v0')));
    await waitFor('initial trees', async () => (await roots()).ready, 20_000, 20);
    // New tokens: every range changes, so every tree is rebuilt by a chunked scan.
    ring.publish(layoutWith(16, 2), 0, () => UP);
    let sawBuilding = 0;
    // Overwrite and insert keys in small batches while the scan runs (bounded count).
    for (let round = 0; round < 40; round++) {
      const batch: Array<Promise<WireReply>> = [];
      for (let j = 0; j < 250; j++) {
        const i = (round * 997 + j * 131) % (KEYS + 5000); // ~1/9 of them are new keys
        batch.push(write(i, `v${round + 1}`));
      }
      const [stats] = await Promise.all([pool.stats(0), ...batch]);
      if (stats.merkleReady < stats.merkleRanges) sawBuilding++;
    }
    await waitFor('rebuilt trees', async () => (await roots()).ready, 20_000, 20);
    const live = await roots();
    expect(live.ranges).toBe(16);
    // The test means something only if writes really landed mid-rebuild.
    expect(sawBuilding).toBeGreaterThan(0);
    console.log(`rebuild overlapped ${sawBuilding} of 40 write rounds`);

    // Oracle: a fresh worker rebuilds from a scan with no writes at all.
    await pool.close();
    pool = await start();
    await waitFor('quiet rebuild', async () => (await roots()).ready, 20_000, 20);
    expect((await roots()).sig).toBe(live.sig);
  });

  it('scan pages through exactly one table\'s keys of a token range, in token order (plain, wrapping, whole ring)', async () => {
    const OTHER = tableId('nine');
    const written: Array<{ key: string; hi: number; lo: number }> = [];
    for (let i = 0; i < 300; i++) {
      const key = Buffer.from(`scan-${i}`);
      const t = tokenOf(key);
      const v = newVersion({ node: 'n1', counter: counter++, context: [], ts: Date.now() * 1000, tombstone: false, value: Buffer.from(`v${i}`), maxClockEntries: 16 });
      const r = await shardWrite(pool, OTHER, 'lww', key, t.hi, t.lo, encodeRecord([v]));
      expect(r.ok).toBe(true);
      written.push({ key: `scan-${i}`, hi: t.hi, lo: t.lo });
    }
    const cmp = (a: { hi: number; lo: number }, b: { hi: number; lo: number }): number => a.hi - b.hi || a.lo - b.lo;
    const inRange = (t: { hi: number; lo: number }, s: { hi: number; lo: number }, e: { hi: number; lo: number }): boolean => {
      const se = cmp(s, e);
      if (se === 0) return true;
      return se < 0 ? cmp(t, s) > 0 && cmp(t, e) <= 0 : cmp(t, s) > 0 || cmp(t, e) <= 0;
    };
    const scanAll = async (s: { hi: number; lo: number }, e: { hi: number; lo: number }): Promise<string[]> => {
      const out: string[] = [];
      let after: Uint8Array | null = null;
      for (let pages = 0; pages < 10_000; pages++) {
        const p: Extract<RepairResult, { kind: 'scan' }> = repairOf(
          await pool.submit(0, { op: 'scan', table: OTHER, startHi: s.hi, startLo: s.lo, endHi: e.hi, endLo: e.lo, after, limit: 37 }),
          'scan',
        );
        for (const row of p.rows) out.push(Buffer.from(row.key).subarray(24, row.key.length - 2).toString());
        if (p.next === null) return out;
        after = p.next;
      }
      throw new Error('too many pages');
    };
    const sorted = [...written].sort(cmp);
    const q1 = sorted[75]!;
    const q3 = sorted[225]!;
    for (const [s, e, size] of [[q1, q3, 150], [q3, q1, 150], [q1, q1, 300]] as const) {
      const got = await scanAll(s, e);
      const want = written.filter((w) => inRange(w, s, e));
      expect(want).toHaveLength(size); // the wrapping range holds keys on both sides of the wrap
      // Token order, for every kind of range: storage keys ascend by token, so a wrapping range
      // (and the whole ring) lists its low part (tokens up to the end) first, then the part after
      // the start: ascending tokens overall.
      expect(new Set(got).size).toBe(got.length);
      expect(got).toEqual(want.sort(cmp).map((w) => w.key));
    }
  });

  it('leaf-keys lists exactly the keys of the asked leaves, in pages', async () => {
    const r = repairOf(await pool.submit(0, { op: 'merkle-roots' }), 'merkle-roots');
    const range = r.ranges[3]!;
    const ref = { pos: range.pos, startHi: range.startHi, startLo: range.startLo, endHi: range.endHi, endLo: range.endLo };
    const all: number[] = Array.from({ length: 256 }, (_, i) => i);
    const list = async (leaves: number[]): Promise<number> => {
      let n = 0;
      let cursor = null;
      for (let pages = 0; pages < 1000; pages++) {
        const p: Extract<RepairResult, { kind: 'leaf-keys' }> = repairOf(await pool.submit(0, { op: 'leaf-keys', range: ref, leaves, cursor, limit: 300 }), 'leaf-keys');
        n += p.entries.length;
        if (p.next === null) return n;
        cursor = p.next;
      }
      throw new Error('too many pages');
    };
    const even = await list(all.filter((l) => l % 2 === 0));
    const odd = await list(all.filter((l) => l % 2 === 1));
    const whole = await list(all);
    expect(even + odd).toBe(whole);
    expect(whole).toBeGreaterThan(300); // paging was exercised
    // The shard answers unknown ranges with an error, not with another range's keys.
    const bad = await pool.submit(0, { op: 'leaf-keys', range: { ...ref, startLo: (ref.startLo + 1) >>> 0 }, leaves: [0], cursor: null, limit: 10 });
    expect(bad.ok).toBe(false);
  });

  it('the tombstone sweep purges old tombstones and keeps the trees exact', async () => {
    const old = 1_000_000; // µs since the epoch: far past the 1 s grace period
    await Promise.all(Array.from({ length: 3000 }, (_, j) => write(j, '', true, Date.now() * 1000 + 1)));
    await Promise.all(Array.from({ length: 500 }, (_, j) => write(KEYS + 10_000 + j, '', true, old)));
    const before = await pool.stats(0);
    // The first tombstones are fresh: poll the sweep until they pass the grace period too.
    let purged = 0;
    await waitFor(
      'every tombstone purged',
      async () => {
        purged += repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep.purged;
        return purged >= 3500;
      },
      15_000,
      200,
    );
    const after = await pool.stats(0);
    expect(before.keys - after.keys).toBe(3500);
    const live = await roots();
    await pool.close();
    pool = await start();
    await waitFor('quiet rebuild', async () => (await roots()).ready, 20_000, 20);
    expect((await roots()).sig).toBe(live.sig);
  });

  it('a shard indexes its dead records by a full scan at start; later sweeps examine only those', async () => {
    const base = KEYS + 50_000;
    const future = Date.now() * 1000 + 3_600_000_000; // tombstones still within their grace period
    await Promise.all(Array.from({ length: 30 }, (_, j) => write(base + 5000 + j, '', true, future)));
    // Restart: the 30 dead records are on disk only; the shard's start-up sweep must find them.
    await pool.close();
    pool = await start();
    const first = repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep;
    expect(first).toMatchObject({ indexed: true, scanned: 30, purged: 0 });

    await Promise.all(Array.from({ length: 200 }, (_, j) => write(base + j, '', true, future)));
    // 50 of them are written again with a later timestamp (lww): alive, so no longer candidates.
    await Promise.all(Array.from({ length: 50 }, (_, j) => write(base + j, 'alive', false, future + 1)));
    const second = repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep;
    expect(second).toMatchObject({ indexed: true, scanned: 180, purged: 0 });

    // Old tombstones written now are purged through the index, and the key count follows.
    await Promise.all(Array.from({ length: 40 }, (_, j) => write(base + 1000 + j, '', true, 1_000_000)));
    const keys1 = (await pool.stats(0)).keys;
    const third = repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep;
    expect(third).toMatchObject({ indexed: true, scanned: 220, purged: 40 });
    expect(keys1 - (await pool.stats(0)).keys).toBe(40);
    const fourth = repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep;
    expect(fourth).toMatchObject({ indexed: true, scanned: 180, purged: 0 });
  });

  it('CRDT states: applied in mailbox order, joined by replica and repair writes (a state is just a record), never swept, same roots after a restart', async () => {
    const CT = tableId('likes');
    const key = Buffer.from('post:1');
    const t = tokenOf(key);
    const apply = (n: number): Promise<WireReply> =>
      new Promise((resolve) => pool.crdtApply(CT, key, t.hi, t.lo, encodeApplyRequest('counter', parseOp('counter', { increment: n })), resolve));
    // 300 increments submitted in one turn: read-modify-writes of one key in one group commit, none lost.
    const results = await Promise.all(Array.from({ length: 300 }, () => apply(1)));
    expect(results.every((r) => r.ok)).toBe(true);
    const read = async (): Promise<Uint8Array> => {
      const r = await shardRead(pool, CT, key, t.hi, t.lo);
      if (!r.ok || r.record === null) throw new Error('no state');
      return Buffer.from(r.record);
    };
    expect(readEncoded('counter', await read()).value).toBe(300);
    // An operation that cannot apply answers its error with details, and changes nothing.
    const bad = await new Promise<WireReply>((resolve) =>
      pool.crdtApply(CT, key, t.hi, t.lo, encodeApplyRequest('counter', parseOp('counter', { increment: Number.MAX_SAFE_INTEGER })), resolve),
    );
    expect(bad).toMatchObject({ ok: false, code: 'too_large', details: { limit: 'counter range' } });

    // Another replica's state (another actor's increments) merges by the join: a replica write...
    const other = applyCrdtRequest(encodeApplyRequest('counter', parseOp('counter', { increment: 5 })), undefined, { actor: 'n2@x', limits: DEFAULT_CRDT_LIMITS });
    expect((await shardWrite(pool, CT, 'crdt', key, t.hi, t.lo, other)).ok).toBe(true);
    expect(readEncoded('counter', await read()).value).toBe(305);
    // ...and a repair write of stored bytes (what CRDT repair and range streaming hand over).
    const third = applyCrdtRequest(encodeApplyRequest('counter', parseOp('counter', { increment: 7 })), undefined, { actor: 'n3@x', limits: DEFAULT_CRDT_LIMITS });
    const skey = encodeStorageKey(t.hi, t.lo, CT, key);
    expect(repairOf(await pool.submit(0, { op: 'repair-write', entries: [{ key: skey, mode: 'crdt', record: third }] }), 'repair-write')).toMatchObject({ changed: 1, notOwner: 0 });
    expect(repairOf(await pool.submit(0, { op: 'repair-write', entries: [{ key: skey, mode: 'crdt', record: third }] }), 'repair-write')).toMatchObject({ changed: 0 });
    expect(readEncoded('counter', await read()).value).toBe(312);
    // An entry that does not decode fails the whole op: nothing of it is written.
    const lwwKey = Buffer.from('plain');
    const lt = tokenOf(lwwKey);
    const rec = encodeRecord([newVersion({ node: 'n1', counter: counter++, context: [], ts: Date.now() * 1000, tombstone: false, value: Buffer.from('v'), maxClockEntries: 16 })]);
    const mixed = await pool.submit(0, {
      op: 'repair-write',
      entries: [
        { key: encodeStorageKey(lt.hi, lt.lo, TABLE, lwwKey), mode: 'lww', record: rec },
        { key: skey, mode: 'crdt', record: Buffer.from([0x20, 0x01, 0xc1]) },
      ],
    });
    expect(mixed.ok).toBe(false);
    expect(await shardRead(pool, TABLE, lwwKey, lt.hi, lt.lo)).toMatchObject({ ok: true, record: null });
    // A record entry of a version table is decoded and merged like versions.
    expect(repairOf(await pool.submit(0, { op: 'repair-write', entries: [{ key: encodeStorageKey(lt.hi, lt.lo, TABLE, lwwKey), mode: 'lww', record: rec }] }), 'repair-write')).toMatchObject({ changed: 1 });

    // Never swept; the trees and the state survive a restart (the start-up full sweep reads it too).
    expect(repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep.purged).toBe(0);
    const live = await roots();
    await pool.close();
    pool = await start();
    await waitFor('quiet rebuild', async () => (await roots()).ready, 20_000, 20);
    expect((await roots()).sig).toBe(live.sig);
    expect(readEncoded('counter', await read()).value).toBe(312);
  });
});

describe('several shards per node (real workers + RocksDB): placement, merged scans, combinable trees', () => {
  /** Two "nodes" with the same ring view and the same data, one with 1 shard and one with 3. */
  let dirs: string[] = [];
  let dbs: OpenedDatabase[] = [];
  let pools: ShardPool[] = [];
  let ring: RingTable;
  const T = tableId('multi');
  const N = 3000;

  const startPool = async (odb: OpenedDatabase, shards: number): Promise<ShardPool> =>
    (
      await ShardPool.start({
        shards,
        maxQueue: 200_000,
        workerData: { handle: odb.db.handle, ringBuffer: ring.buffer, durability: 'periodic', syncIntervalMs: 1000, maxSiblings: 16, merkleDepth: 6, gcGraceSeconds: 1, tombstoneSweepIntervalMs: 86_400_000, crdtActor: 'test-node@0', crdtLimits: DEFAULT_CRDT_LIMITS },
      })
    ).pool;

  /** The node's root of each range: the XOR of its shards' roots (what the repair service computes). */
  const nodeRoots = async (pool: ShardPool): Promise<{ ready: boolean; roots: Map<number, string> }> => {
    const all = await Promise.all(Array.from({ length: pool.size }, async (_, s) => repairOf(await pool.submit(s, { op: 'merkle-roots' }), 'merkle-roots')));
    const roots = new Map<number, [number, number]>();
    let ready = true;
    for (const r of all) {
      for (const x of r.ranges) {
        const cur = roots.get(x.pos) ?? [0, 0];
        roots.set(x.pos, [(cur[0] ^ x.hi) >>> 0, (cur[1] ^ x.lo) >>> 0]);
        ready &&= x.ready;
      }
    }
    return { ready, roots: new Map([...roots].map(([pos, [hi, lo]]) => [pos, `${hi}:${lo}`])) };
  };

  beforeAll(async () => {
    await initHasher();
    await initVersions();
    ring = RingTable.create();
    ring.publish(layoutWith(8, 5), 0, () => UP);
    for (const shards of [1, 3]) {
      const dir = tempDir('ringkv-shards-');
      dirs.push(dir);
      const odb = await openDatabase(dir, shards);
      dbs.push(odb);
      pools.push(await startPool(odb, shards));
    }
  });
  afterAll(async () => {
    for (const p of pools) await p.close();
    for (const d of dbs) await d.db.close();
    for (const d of dirs) removeDir(d);
    pools = [];
    dbs = [];
    dirs = [];
  });

  it('equal data gives equal node roots whatever the shard count; scans merge the shards in token order', async () => {
    const records = Array.from({ length: N }, (_, i) => {
      const key = Buffer.from(`m-${i}`);
      const v = newVersion({ node: 'n1', counter: i + 1, context: [], ts: 1000 + i, tombstone: false, value: Buffer.from(`v${i}`), maxClockEntries: 16 });
      return { key, t: tokenOf(key), record: encodeRecord([v]) };
    });
    for (const pool of pools) {
      for (let i = 0; i < N; i += 500) {
        const rs = await Promise.all(records.slice(i, i + 500).map((r) => shardWrite(pool, T, 'lww', r.key, r.t.hi, r.t.lo, r.record)));
        expect(rs.every((r) => r.ok)).toBe(true);
      }
    }
    // Each key went to its placement shard: the 3-shard node's shards hold their counts exactly.
    const stats = await Promise.all([0, 1, 2].map((s) => pools[1]!.stats(s)));
    const want = [0, 1, 2].map((s) => records.filter((r) => shardOfToken(r.t.hi, 3) === s).length);
    expect(stats.map((x) => x.keys)).toEqual(want);
    expect(Math.min(...want)).toBeGreaterThan(N / 3 - 150);

    await waitFor('trees built', async () => (await nodeRoots(pools[0]!)).ready && (await nodeRoots(pools[1]!)).ready, 20_000, 20);
    const [one, three] = [await nodeRoots(pools[0]!), await nodeRoots(pools[1]!)];
    expect(one.roots.size).toBe(8);
    expect([...three.roots]).toEqual([...one.roots]);
    expect([...one.roots.values()].every((r) => r !== '0:0')).toBe(true);

    // Whole-ring scans through ShardPool.scan, in small pages: the same rows in the same (token) order.
    const scanAll = async (pool: ShardPool): Promise<string[]> => {
      const out: string[] = [];
      let after: Uint8Array | null = null;
      for (let pages = 0; pages < 10_000; pages++) {
        const page = await pool.scan({ table: T, startHi: 0, startLo: 0, endHi: 0xffffffff, endLo: 0xffffffff, after, limit: 41 });
        expect(page.rows.length).toBeLessThanOrEqual(41);
        for (const r of page.rows) out.push(Buffer.from(r.key).subarray(24, r.key.length - 2).toString());
        if (page.next === null) return out;
        after = page.next;
      }
      throw new Error('too many pages');
    };
    const oracle = records
      .filter((r) => r.t.hi !== 0 || r.t.lo !== 0)
      .sort((a, b) => a.t.hi - b.t.hi || a.t.lo - b.t.lo || Buffer.compare(a.key, b.key))
      .map((r) => r.key.toString());
    expect(await scanAll(pools[1]!)).toEqual(oracle);
    expect(await scanAll(pools[0]!)).toEqual(oracle);

    // A repaired key sent to a shard that is not its placement shard is refused (notOwner), never stored.
    const k = records[0]!;
    const wrong = (shardOfToken(k.t.hi, 3) + 1) % 3;
    const newer = newVersion({ node: 'n1', counter: N + 1, context: [], ts: 10 ** 9, tombstone: false, value: Buffer.from('newer'), maxClockEntries: 16 });
    const entry = { key: encodeStorageKey(k.t.hi, k.t.lo, T, k.key), mode: 'lww' as const, record: encodeRecord([newer]) };
    expect(repairOf(await pools[1]!.submit(wrong, { op: 'repair-write', entries: [entry] }), 'repair-write')).toMatchObject({ changed: 0, notOwner: 1 });
    // The same entry at its own shard is merged.
    expect(repairOf(await pools[1]!.submit(shardOfToken(k.t.hi, 3), { op: 'repair-write', entries: [entry] }), 'repair-write')).toMatchObject({ changed: 1, notOwner: 0 });
  });
});

describe('shard family options', () => {
  /** The option lines of one section (`[CFOptions "x"]` or `[TableOptions/BlockBasedTable "x"]`) of the latest OPTIONS file. */
  function section(dir: string, header: string): string {
    const latest = readdirSync(dir).filter((f) => /^OPTIONS-\d+$/.test(f)).sort((a, b) => Number(a.slice(8)) - Number(b.slice(8))).at(-1);
    expect(latest).toBeDefined();
    const text = readFileSync(join(dir, latest!), 'utf8');
    const start = text.indexOf(header);
    expect(start).toBeGreaterThanOrEqual(0);
    const next = text.indexOf('\n[', start + header.length);
    return text.slice(start, next < 0 ? undefined : next);
  }

  it('every shard family and the raw RocksDB bench baseline use the point-lookup settings (a memtable whole-key filter, hashed data blocks)', async () => {
    const dir = tempDir('ringkv-cfopts-');
    const base = tempDir('ringkv-cfopts-base-');
    try {
      const odb = await openDatabase(dir, 2);
      await odb.db.close();
      for (const name of ['shard-0', 'shard-1']) {
        expect(section(odb.dir, `[CFOptions "${name}"]`)).toContain('memtable_whole_key_filtering=true');
        expect(section(odb.dir, `[TableOptions/BlockBasedTable "${name}"]`)).toContain('data_block_index_type=kDataBlockBinaryAndHash');
      }
      // The hints family keeps RocksDB's defaults: it is read by range, never by key.
      expect(section(odb.dir, '[TableOptions/BlockBasedTable "hints"]')).toContain('data_block_index_type=kDataBlockBinarySearch');
      const target = await openRocksBaseline(base);
      await target.close();
      expect(section(base, '[CFOptions "default"]')).toContain('memtable_whole_key_filtering=true');
      expect(section(base, '[TableOptions/BlockBasedTable "default"]')).toContain('data_block_index_type=kDataBlockBinaryAndHash');
    } finally {
      removeDir(dir);
      removeDir(base);
    }
  });
});
