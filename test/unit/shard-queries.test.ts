/**
 * A shard's read-only control queries over in-memory ports (no worker, no RocksDB): repair's leaf
 * listing pages through every key of the asked leaves exactly once, fetches stay within their byte
 * budget, and bad input is refused with the shard's error codes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { initMerkle, leafIndex, type Hash64 } from '../../src/merkle/index.js';
import type { KeyBounds } from '../../src/storage/keys.js';
import { OpError, ShardQueries, type ShardQueryPorts } from '../../src/storage/shard-queries.js';
import { REPAIR_LIMITS, type RangeRef } from '../../src/storage/shard-protocol.js';
import { ShardTrees } from '../../src/storage/shard-trees.js';

const DEPTH = 3;
const RANGE: RangeRef = { pos: 0, startHi: 0x10000000, startLo: 0, endHi: 0x90000000, endLo: 0 };
const OTHER: RangeRef = { pos: 1, startHi: 0x90000000, startLo: 0, endHi: 0x10000000, endLo: 0 };

const digest = (r: Buffer): Hash64 => ({ hi: r.readUInt32BE(0), lo: r.length });

function storeOf(n: number, valueBytes = 8): Map<string, Buffer> {
  const rows = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const k = Buffer.alloc(26); // token(8) | table id(16) | key byte | terminator stand-in
    k.writeUInt32BE((0x10000001 + i * 0x00731357) >>> 0, 0);
    k.writeUInt32BE(i, 4);
    k[8 + (i % 2)] = 1; // two "tables": id byte 0 or 1 set
    k[24] = i & 0xff;
    const v = Buffer.alloc(valueBytes, i & 0xff);
    v.writeUInt32BE(i, 0);
    rows.set(k.toString('hex'), v);
  }
  return rows;
}

function portsOf(rows: Map<string, Buffer>): ShardQueryPorts {
  return {
    readChunk: (bounds: KeyBounds, after: Buffer | null, limit: number) =>
      [...rows.keys()]
        .map((k) => Buffer.from(k, 'hex'))
        .filter((k) => (bounds.gte === undefined || Buffer.compare(k, bounds.gte) >= 0) && (bounds.lt === undefined || Buffer.compare(k, bounds.lt) < 0) && (after === null || Buffer.compare(k, after) > 0))
        .sort(Buffer.compare)
        .slice(0, limit)
        .flatMap((k) => [k, rows.get(k.toString('hex'))!]),
    getMany: (keys) => keys.map((k) => rows.get(k.toString('hex'))),
    digest,
  };
}

function queriesOf(rows: Map<string, Buffer>): ShardQueries {
  const trees = new ShardTrees(DEPTH, { version: 1, localRanges: () => [RANGE, OTHER] });
  trees.checkRing();
  const ports = portsOf(rows);
  for (let guard = 0; trees.scanStep({ readChunk: ports.readChunk, digest }, 100); guard++) expect(guard).toBeLessThan(10_000);
  return new ShardQueries(0, DEPTH, trees, ports);
}

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof OpError ? e.code : `not an OpError: ${String(e)}`;
  }
  return undefined;
};

describe('shard queries', () => {
  beforeAll(() => initMerkle());

  it("leaf-keys pages list every key of the asked leaves once, with its digest, and honour a table filter", () => {
    const rows = storeOf(300);
    const q = queriesOf(rows);
    const leaves = [1, 2, 5];
    const inRange = [...rows.entries()].map(([k, v]) => [Buffer.from(k, 'hex'), v] as const).filter(([k]) => k.readUInt32BE(0) > RANGE.startHi && k.readUInt32BE(0) <= RANGE.endHi);
    const leafOf = (k: Buffer): number => leafIndex({ hi: RANGE.startHi, lo: 0 }, { hi: RANGE.endHi, lo: 0 }, { hi: k.readUInt32BE(0), lo: k.readUInt32BE(4) }, DEPTH);
    for (const table of [null, Buffer.from(storeOf(1).keys().next().value!, 'hex').subarray(8, 24)]) {
      const want = inRange.filter(([k]) => leaves.includes(leafOf(k)) && (table === null || k.subarray(8, 24).equals(table)));
      expect(want.length).toBeGreaterThan(10);
      const got: string[] = [];
      let cursor = null;
      let pages = 0;
      do {
        const r = q.leafKeys({ op: 'leaf-keys', range: RANGE, leaves, table: table ?? undefined, cursor, limit: 7 });
        if (r.kind !== 'leaf-keys') throw new Error(r.kind);
        expect(r.ready).toBe(true);
        expect(r.entries.length).toBeLessThanOrEqual(7);
        for (const e of r.entries) {
          expect({ hi: e.hi, lo: e.lo }).toEqual(digest(rows.get(Buffer.from(e.key).toString('hex'))!));
          got.push(Buffer.from(e.key).toString('hex'));
        }
        cursor = r.next;
        pages++;
      } while (cursor !== null && pages < 1000);
      expect(got.sort()).toEqual(want.map(([k]) => k.toString('hex')).sort());
    }
  });

  it('fetch-keys answers in order within the byte budget, at least one record, absent keys as null', () => {
    const big = Math.floor(REPAIR_LIMITS.maxFetchBytes / 3) + 1;
    const rows = storeOf(5, big);
    const q = queriesOf(rows);
    const keys = [...rows.keys()].map((k) => Buffer.from(k, 'hex'));
    const missing = Buffer.alloc(26, 0xee);
    const r = q.fetchKeys({ op: 'fetch-keys', keys: [missing, ...keys] });
    if (r.kind !== 'fetch-keys') throw new Error(r.kind);
    expect(r.answered).toBe(3); // null + two records of a third of the budget; the third would pass it
    expect(r.records[0]).toBeNull();
    expect(Buffer.from(r.records[1]!).equals(rows.get(keys[0]!.toString('hex'))!)).toBe(true);
    const huge = storeOf(1, REPAIR_LIMITS.maxFetchBytes + 10);
    const one = queriesOf(huge).fetchKeys({ op: 'fetch-keys', keys: [Buffer.from([...huge.keys()][0]!, 'hex')] });
    expect(one.kind === 'fetch-keys' && one.answered).toBe(1);
  });

  it('refuses bad input with the shard error codes', () => {
    const q = queriesOf(storeOf(10));
    const unknown: RangeRef = { ...RANGE, endLo: 1 };
    expect(codeOf(() => q.merkleNodes({ op: 'merkle-nodes', range: unknown, level: 0, indexes: [0] }))).toBe('range_unknown');
    expect(codeOf(() => q.merkleNodes({ op: 'merkle-nodes', range: RANGE, level: DEPTH + 1, indexes: [0] }))).toBe('bad_request');
    expect(codeOf(() => q.merkleNodes({ op: 'merkle-nodes', range: RANGE, level: 1, indexes: [0, 1, 0] }))).toBe('bad_request');
    expect(codeOf(() => q.fetchKeys({ op: 'fetch-keys', keys: new Array(REPAIR_LIMITS.maxKeysPerOp + 1).fill(Buffer.alloc(26)) }))).toBe('bad_request');
    expect(codeOf(() => q.streamPage({ op: 'stream-page', startHi: -1, startLo: 0, endHi: 1, endLo: 0, after: null, limit: 10, maxBytes: 100 }))).toBe('bad_request');
    expect(codeOf(() => q.leafKeys({ op: 'leaf-keys', range: RANGE, leaves: [0], table: Buffer.alloc(3), cursor: null, limit: 5 }))).toBe('bad_request');
    const root = q.merkleNodes({ op: 'merkle-nodes', range: RANGE, level: 0, indexes: [0] });
    expect(root).toMatchObject({ kind: 'merkle-nodes', ready: true });
  });
});
