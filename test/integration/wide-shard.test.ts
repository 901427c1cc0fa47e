/**
 * The shard actor's wide-column ops against the real worker and RocksDB (dist/, built first):
 * a partition mutation as one cell-write, slice pages forward and backward through 3,000 rows,
 * and the tombstone sweep purging cell tombstones and expired cells by the table's own gc grace,
 * through the dead-record index, with the Merkle tree back where it was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeDir, tempDir, waitFor } from '../helpers/proc.js';
import { initHasher, tokenOf } from '../../dist/src/ring/hash.js';
import { buildRing } from '../../dist/src/ring/builder.js';
import { randomTokens } from '../../dist/src/ring/tokens.js';
import { RingTable } from '../../dist/src/ring/table.js';
import { openDatabase, type OpenedDatabase } from '../../dist/src/storage/db.js';
import { ShardPool } from '../../dist/src/storage/shards.js';
import type { RepairResult, ShardResult } from '../../dist/src/storage/shard-protocol.js';
import { initVersions } from '../../dist/src/versions/index.js';
import { packCellWrite, packSlice, unpackEntries } from '../../dist/src/storage/wide-wire.js';
import { tableIdOf } from '../../dist/src/router/tables.js';
import { cellSuffix, markerSuffix, rangeTombstoneSuffix, rowRegionBounds, tombstoneRecord, valueRecord, encodeClustering, type StoredEntry } from '../../dist/src/wide/index.js';

const UP = 1;
const TABLE = Buffer.from(tableIdOf('wide\u0000t\u00001\u00000\u0000n1'), 'hex');
const PK = Buffer.from('partition-1');
const ROWS = 3000;
const CK = [{ name: 'c', type: 'int' as const, order: 'asc' as const }];
const ALL_ROWS = [rowRegionBounds({ start: new Uint8Array(0), end: null })].map((r) => ({ start: r.start, end: r.end }));

function repairOf<K extends RepairResult['kind']>(r: ShardResult, kind: K): Extract<RepairResult, { kind: K }> {
  if (!r.ok || !('repair' in r) || r.repair.kind !== kind) throw new Error(`unexpected shard answer ${JSON.stringify(r).slice(0, 300)}`);
  return r.repair as Extract<RepairResult, { kind: K }>;
}

describe('wide-column shard ops (real worker + RocksDB)', () => {
  let dir: string;
  let odb: OpenedDatabase;
  let pool: ShardPool;
  const t = { hi: 0, lo: 0 };

  beforeAll(async () => {
    await initHasher();
    await initVersions();
    dir = tempDir('ringkv-wide-shard-');
    odb = await openDatabase(dir, 1);
    const ring = RingTable.create();
    let a = 7;
    ring.publish(buildRing([{ id: 'n1', tokens: randomTokens(8, () => ((a = (a * 16807) % 2147483647) / 2147483647)), status: 'normal' }], { maxReplicas: 3 }), 0, () => UP);
    pool = (
      await ShardPool.start({
        shards: 1,
        maxQueue: 100_000,
        workerData: { handle: odb.db.handle, ringBuffer: ring.buffer, durability: 'periodic', syncIntervalMs: 1000, maxSiblings: 16, merkleDepth: 8, gcGraceSeconds: 864_000, tombstoneSweepIntervalMs: 86_400_000 },
      })
    ).pool;
    Object.assign(t, tokenOf(PK));
  });
  afterAll(async () => {
    await pool?.close();
    await odb?.db.close();
    if (dir) removeDir(dir);
  });

  const write = async (entries: StoredEntry[]): Promise<number> =>
    repairOf(await pool.submit(0, { op: 'cell-write', hi: t.hi, lo: t.lo, body: packCellWrite(TABLE, PK, entries) }), 'cell-write').changed;
  const slice = async (o: { reverse?: boolean; after?: Uint8Array | null; rowLimit?: number; withDeletions?: boolean }) => {
    const p = repairOf(
      await pool.submit(0, { op: 'slice', hi: t.hi, lo: t.lo, body: packSlice(TABLE, PK, o.after ?? null, ALL_ROWS), reverse: o.reverse ?? false, rowLimit: o.rowLimit ?? 1000, byteLimit: 1 << 22, withDeletions: o.withDeletions ?? false }),
      'slice',
    ).page;
    return { deletions: p.deletions === null ? null : unpackEntries(p.deletions), entries: unpackEntries(p.entries), next: p.next };
  };
  const root = async (): Promise<string> => {
    const r = repairOf(await pool.submit(0, { op: 'merkle-roots' }), 'merkle-roots');
    return r.ranges.map((x) => `${x.hi}:${x.lo}:${x.ready}`).join(',');
  };

  it('writes a partition in one op and pages it forward and backward by rows', async () => {
    const entries: StoredEntry[] = [];
    for (let c = 0; c < ROWS; c++) {
      const ck = encodeClustering(CK, [c]);
      entries.push({ suffix: markerSuffix(ck), record: valueRecord(10, new Uint8Array(0), 0, 0) });
      entries.push({ suffix: cellSuffix(ck, 'v'), record: valueRecord(10, Buffer.from(`v${c}`), 0, 0) });
    }
    expect(await write(entries)).toBe(2 * ROWS);
    expect(await write(entries)).toBe(0); // the same cells again change nothing
    for (const reverse of [false, true]) {
      let after: Uint8Array | null = null;
      let rows = 0;
      let pages = 0;
      let firstEntry: Uint8Array | undefined;
      do {
        const p = await slice({ reverse, after, rowLimit: 700, withDeletions: pages === 0 });
        if (pages === 0) expect(p.deletions).toEqual([]);
        firstEntry ??= p.entries[0]!.suffix;
        rows += p.entries.length / 2;
        after = p.next;
        pages++;
      } while (after !== null);
      expect(rows).toBe(ROWS);
      expect(pages).toBe(5);
      expect(Buffer.from(firstEntry!).subarray(0, 5)).toEqual(Buffer.from(markerSuffix(encodeClustering(CK, [reverse ? ROWS - 1 : 0])).subarray(0, 5)));
    }
    const bad = await pool.submit(0, { op: 'cell-write', hi: t.hi, lo: t.lo, body: packCellWrite(TABLE, PK, [{ suffix: Uint8Array.of(0x10, 0), record: Uint8Array.of(1, 2) }]) });
    expect(bad).toMatchObject({ ok: false, code: 'bad_request' });
    const garbled = await pool.submit(0, { op: 'cell-write', hi: t.hi, lo: t.lo, body: Uint8Array.of(1, 2, 3) });
    expect(garbled).toMatchObject({ ok: false, code: 'bad_request' });
  });

  it("purges cell tombstones and expired cells after the table's own gc grace, through the dead-record index", async () => {
    // The first sweep (started with the shard) is the full scan that makes the index complete.
    await waitFor('the first sweep to finish', async () => repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep.indexed, 20_000, 50);
    const before = await root();
    const nowSec = Math.floor(Date.now() / 1000);
    const dead: StoredEntry[] = [];
    for (let c = ROWS; c < ROWS + 200; c++) {
      const ck = encodeClustering(CK, [c]);
      dead.push({ suffix: cellSuffix(ck, 'v'), record: tombstoneRecord(5, nowSec - 100) });
      dead.push({ suffix: markerSuffix(ck), record: valueRecord(5, new Uint8Array(0), 10, nowSec - 100) }); // expired 90 s ago
    }
    dead.push({ suffix: rangeTombstoneSuffix({ start: encodeClustering(CK, [ROWS + 500]), end: null }), record: tombstoneRecord(5, nowSec - 100) });
    expect(await write(dead)).toBe(dead.length);
    expect(await root()).not.toBe(before);
    expect((await slice({ withDeletions: true, rowLimit: 1 })).deletions).toHaveLength(1);
    // The node's default grace (10 days) keeps them; the table's own grace (30 s) lets them go.
    let s = repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep;
    expect(s.purged).toBe(0);
    expect(s.indexed).toBe(true);
    expect(s.scanned).toBe(dead.length);
    repairOf(await pool.submit(0, { op: 'table-grace', graces: [[TABLE.toString('hex'), 30]] }), 'table-grace');
    s = repairOf(await pool.submit(0, { op: 'sweep' }), 'sweep').sweep;
    expect(s.indexed).toBe(true);
    expect(s.purged).toBe(dead.length);
    expect(await root()).toBe(before);
    expect((await slice({ withDeletions: true, rowLimit: 1 })).deletions).toEqual([]);
  });
});
