/**
 * The shard actor's group commit on a real RocksDB in a temp dir, without a worker thread: wire
 * writes and reads of one turn share one multi-get and one batch, every committed change reaches
 * the digest-change hook (and the trees it keeps equal a fresh rebuild scan), keys this shard does
 * not own are refused, a repair-write with a bad entry writes nothing, and sweep / cleanup ops go
 * to the ports that answer them later.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { removeDir, tempDir } from '../helpers/proc.js';
import { DEFAULT_CRDT_LIMITS } from '../../src/crdt/limits.js';
import { initMerkle, type Hash64 } from '../../src/merkle/index.js';
import { openDatabase, type OpenedDatabase } from '../../src/storage/db.js';
import { encodeStorageKey } from '../../src/storage/keys.js';
import { ShardActor, type ShardActorPorts } from '../../src/storage/shard-actor.js';
import type { CleanupOp, RangeRef, ShardOp, ShardResult } from '../../src/storage/shard-protocol.js';
import { ShardTrees } from '../../src/storage/shard-trees.js';
import { decodeReplies, decodeRequests, WireRequestWriter, type WireReply, type WireRequest } from '../../src/storage/shard-wire.js';
import { decodeRecord, encodeRecord, hash64, initVersions, newVersion } from '../../src/versions/index.js';

const SHARDS = 2;
const DEPTH = 4;
const TABLE = Buffer.alloc(16, 7);
const WHOLE_RING: RangeRef = { pos: 0, startHi: 0, startLo: 0, endHi: 0, endLo: 0 };
/** Token words whose placement shard is 0 (of 2: the high word's top 16 bits are even) or 1. */
const MINE = { hi: 0x00020000, lo: 5 };
const OTHER_SHARD = { hi: 0x00030000, lo: 5 };
/** A token of shard 0's placement that this node does not replicate (the ring view says so). */
const NOT_REPLICATED = { hi: 0x00040000, lo: 9 };

const recordOf = (node: string, counter: number, value: string): Buffer =>
  Buffer.from(encodeRecord([newVersion({ node, counter, context: [], ts: counter, tombstone: false, value: Buffer.from(value), maxClockEntries: 16 })]));

interface Harness {
  actor: ShardActor;
  trees: ShardTrees;
  changes: Array<{ key: string; before: Hash64 | null; after: Hash64 | null }>;
  sweeps: number[];
  cleanups: CleanupOp[];
}

describe('shard actor (group commit over a temp RocksDB)', () => {
  let dir: string;
  let odb: OpenedDatabase;
  let h: Harness;
  let column = 0;

  beforeAll(async () => {
    await initVersions();
    await initMerkle();
    dir = tempDir('ringkv-shard-actor-');
    odb = await openDatabase(dir, SHARDS);
  });
  afterAll(async () => {
    await odb?.db.close();
    if (dir) removeDir(dir);
  });

  // Each case gets a fresh table id's keys in shard 0 (the column family is shared, so the cases
  // use distinct keys) and a fresh actor whose trees are built from a scan of what is stored.
  beforeEach(async () => {
    column++;
    const ring = { version: 1, localRanges: () => [WHOLE_RING], isReplica: (hi: number) => hi !== NOT_REPLICATED.hi };
    const trees = new ShardTrees(DEPTH, ring);
    const changes: Harness['changes'] = [];
    const sweeps: number[] = [];
    const cleanups: CleanupOp[] = [];
    const ports: ShardActorPorts = {
      checkRing: () => void trees.checkRing(),
      digestChanged: (key, before, after) => {
        changes.push({ key: key.toString('hex'), before, after });
        trees.update(key, before, after);
      },
      requestSweep: (id) => sweeps.push(id),
      requestCleanup: (op) => cleanups.push(op),
      queuedOps: () => 0,
    };
    const actor = new ShardActor(odb.db, odb.column('shard-0'), ring, trees, { shard: 0, shards: SHARDS, durability: 'periodic', maxSiblings: 8, merkleDepth: DEPTH, gcGraceSeconds: 3600, crdt: { actor: 'n1@0', limits: DEFAULT_CRDT_LIMITS } }, ports);
    await actor.countKeys();
    trees.checkRing();
    for (let guard = 0; trees.scanStep({ readChunk: (b, a, l) => actor.readChunk(b, a, l), digest: hash64 }, 1000); guard++) expect(guard).toBeLessThan(10_000);
    h = { actor, trees, changes, sweeps, cleanups };
  });

  const keyName = (name: string): Buffer => Buffer.from(`${column}:${name}`);
  const storageKey = (t: { hi: number; lo: number }, name: string): Buffer => encodeStorageKey(t.hi, t.lo, TABLE, keyName(name));

  /** One turn: the wire requests and control ops, its wire replies by id and control replies. */
  function turn(build: (w: WireRequestWriter) => void, ops: ShardOp[] = []): { wire: Map<number, WireReply>; control: ShardResult[] } {
    const w = new WireRequestWriter();
    build(w);
    const data: WireRequest[] = w.count > 0 ? decodeRequests(w.take()) : [];
    const control = h.actor.processOps(data, ops);
    const wire = new Map<number, WireReply>();
    if (h.actor.replyWire.count > 0) decodeReplies(h.actor.replyWire.peek(), (id, r) => wire.set(id, r));
    h.actor.replyWire.reset();
    return { wire, control };
  }

  /** The trees a rebuild scan of what is stored now would build. */
  function freshRoot(): Hash64 {
    const fresh = new ShardTrees(DEPTH, { version: 1, localRanges: () => [WHOLE_RING] });
    fresh.checkRing();
    for (let guard = 0; fresh.scanStep({ readChunk: (b, a, l) => h.actor.readChunk(b, a, l), digest: hash64 }, 1000); guard++) expect(guard).toBeLessThan(10_000);
    return fresh.all[0]!.tree.root();
  }

  it('keeps distinct keys of one token apart in a turn, and merges repeated writes of each into one stored record', () => {
    // Same token (one partition): three user keys that must still get separate slots, each written twice with concurrent versions.
    const names = ['x', 'y', 'z'];
    const res = turn((w) => {
      let id = 1;
      for (const node of ['a', 'b']) for (const n of names) w.write(id++, TABLE, MINE.hi, MINE.lo, keyName(n), 'vclock', recordOf(node, 1, `${node}-${n}`), false);
    });
    expect([...res.wire.values()].every((r) => r.ok && r.changed)).toBe(true);
    const stored = h.actor.getMany(names.map((n) => storageKey(MINE, n)));
    for (let i = 0; i < names.length; i++) {
      const versions = decodeRecord(stored[i]!);
      expect(versions.map((v) => Buffer.from(v.value).toString()).sort()).toEqual([`a-${names[i]}`, `b-${names[i]}`]);
    }
    // One committed change per key (not per write), and the trees equal a rebuild scan.
    expect(h.changes.map((c) => c.key).sort()).toEqual(names.map((n) => storageKey(MINE, n).toString('hex')).sort());
    expect(h.trees.all[0]!.tree.root()).toEqual(freshRoot());
  });

  it('stores a first write as it came, merges a concurrent one in the same turn, reads the stored bytes, and reports each committed change once', () => {
    const a = recordOf('a', 1, 'one');
    const b = recordOf('b', 1, 'two');
    const key = storageKey(MINE, 'k');
    const keysBefore = h.actor.keyCount;
    const first = turn((w) => w.write(1, TABLE, MINE.hi, MINE.lo, keyName('k'), 'vclock', a, true));
    expect(first.wire.get(1)).toEqual({ ok: true, record: a, changed: true });
    expect(h.actor.getMany([key])[0]).toEqual(a);
    expect(h.changes).toEqual([{ key: key.toString('hex'), before: null, after: hash64(a) }]);

    // Two writes to the key in one turn: one read of it, both merged in order, one stored record.
    const c = recordOf('c', 1, 'three');
    const second = turn((w) => {
      w.write(2, TABLE, MINE.hi, MINE.lo, keyName('k'), 'vclock', b, false);
      w.write(3, TABLE, MINE.hi, MINE.lo, keyName('k'), 'vclock', c, true);
      w.read(4, TABLE, MINE.hi, MINE.lo, keyName('k'));
    });
    expect(second.wire.get(2)).toEqual({ ok: true, record: null, changed: true });
    const merged = second.wire.get(3);
    expect(merged?.ok && merged.changed).toBe(true);
    const stored = h.actor.getMany([key])[0]!;
    expect(merged?.ok && Buffer.from(merged.record!).equals(stored)).toBe(true);
    expect(decodeRecord(stored).map((v) => Buffer.from(v.value).toString()).sort()).toEqual(['one', 'three', 'two']);
    const read = second.wire.get(4);
    expect(read?.ok && Buffer.from(read.record!).equals(stored)).toBe(true);
    expect(h.changes.slice(1)).toEqual([{ key: key.toString('hex'), before: hash64(a), after: hash64(stored) }]);
    expect(h.actor.keyCount).toBe(keysBefore + 1);

    // A write that changes nothing commits nothing and reports no change.
    const again = turn((w) => w.write(5, TABLE, MINE.hi, MINE.lo, keyName('k'), 'vclock', b, false));
    expect(again.wire.get(5)).toEqual({ ok: true, record: null, changed: false });
    expect(h.changes).toHaveLength(2);
    expect(h.trees.all[0]!.tree.root()).toEqual(freshRoot());
  });

  it("refuses keys of another shard's placement or of a token this node does not replicate, and writes nothing", () => {
    const r = turn((w) => {
      w.write(1, TABLE, OTHER_SHARD.hi, OTHER_SHARD.lo, keyName('x'), 'vclock', recordOf('a', 1, 'v'), false);
      w.write(2, TABLE, NOT_REPLICATED.hi, NOT_REPLICATED.lo, keyName('y'), 'vclock', recordOf('a', 1, 'v'), false);
      w.read(3, TABLE, OTHER_SHARD.hi, OTHER_SHARD.lo, keyName('x'));
    });
    for (const id of [1, 2, 3]) expect(r.wire.get(id)).toMatchObject({ ok: false, code: 'not_owner' });
    expect(h.actor.getMany([storageKey(OTHER_SHARD, 'x'), storageKey(NOT_REPLICATED, 'y')])).toEqual([undefined, undefined]);
    expect(h.changes).toEqual([]);
  });

  it('answers a malformed write with bad_request and still applies the rest of the turn', () => {
    const good = recordOf('a', 1, 'fine');
    const r = turn((w) => {
      w.write(1, TABLE, MINE.hi, MINE.lo, keyName('bad'), 'vclock', Buffer.from([0xde, 0xad, 0xbe, 0xef]), false);
      w.write(2, TABLE, MINE.hi, MINE.lo, keyName('good'), 'vclock', good, false);
    });
    expect(r.wire.get(1)).toMatchObject({ ok: false, code: 'bad_request' });
    expect(r.wire.get(2)).toEqual({ ok: true, record: null, changed: true });
    expect(h.actor.getMany([storageKey(MINE, 'bad'), storageKey(MINE, 'good')])).toEqual([undefined, good]);
  });

  it('fails a repair-write whole when one entry does not decode, and applies a valid one with its counts', () => {
    const ok = { key: storageKey(MINE, 'r1'), mode: 'vclock' as const, record: recordOf('a', 1, 'r') };
    const broken = { key: storageKey(MINE, 'r2'), mode: 'vclock' as const, record: new Uint8Array([1, 2, 3]) };
    const foreign = { key: storageKey(OTHER_SHARD, 'r3'), mode: 'vclock' as const, record: recordOf('a', 1, 'r') };
    const refused = turn(() => {}, [{ id: 10, op: 'repair-write', entries: [ok, broken] }]);
    expect(refused.control).toEqual([expect.objectContaining({ id: 10, ok: false, code: 'bad_request' })]);
    expect(h.actor.getMany([ok.key, broken.key])).toEqual([undefined, undefined]);
    expect(h.changes).toEqual([]);

    const applied = turn(() => {}, [{ id: 11, op: 'repair-write', entries: [ok, foreign] }]);
    expect(applied.control).toEqual([{ id: 11, ok: true, repair: { kind: 'repair-write', changed: 1, notOwner: 1 } }]);
    expect(h.actor.getMany([ok.key])[0]).toEqual(Buffer.from(ok.record));
    expect(h.changes.map((c) => c.key)).toEqual([ok.key.toString('hex')]);
  });

  it('deletes stored rows out of the trees and the key count, answers stats after the turn, and hands sweep and cleanup to their ports', () => {
    const rec = recordOf('a', 1, 'gone');
    turn((w) => w.write(1, TABLE, MINE.hi, MINE.lo, keyName('d'), 'vclock', rec, false));
    const key = storageKey(MINE, 'd');
    const count = h.actor.keyCount;
    h.actor.deleteStored([[key, rec]]);
    expect(h.actor.getMany([key])[0]).toBeUndefined();
    expect(h.actor.keyCount).toBe(count - 1);
    expect(h.changes.at(-1)).toEqual({ key: key.toString('hex'), before: hash64(rec), after: null });
    expect(h.trees.all[0]!.tree.root()).toEqual(freshRoot());

    const cleanup: CleanupOp = { id: 22, op: 'cleanup', tables: [], defaultN: 3 };
    const r = turn((w) => w.write(1, TABLE, MINE.hi, MINE.lo, keyName('s'), 'vclock', rec, false), [{ id: 20, op: 'stats' }, { id: 21, op: 'sweep' }, cleanup]);
    // Stats see this turn's write; the sweep and the cleanup are answered later, by their runs.
    expect(r.control).toEqual([{ id: 20, ok: true, stats: expect.objectContaining({ shard: 0, keys: count, writes: 2, reads: 0, batches: 2, merkleRanges: 1, merkleReady: 1 }) }]);
    expect(h.sweeps).toEqual([21]);
    expect(h.cleanups).toEqual([cleanup]);
  });
});
