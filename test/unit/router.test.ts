/**
 * The coordinator's state machines with in-process fakes for the shard pool and the remote
 * replicas (pure logic; the real thing is covered by the multi-process integration tests): quorum
 * answers, deadlines, blocking read repair with a hung replica, blind deletes on vclock tables, and
 * requests that fail validation leaving no table behind.
 */
import pino from 'pino';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/config/config.js';
import { buildRing } from '../../src/ring/builder.js';
import { initHasher } from '../../src/ring/hash.js';
import { RingTable } from '../../src/ring/table.js';
import { allocateTokens } from '../../src/ring/tokens.js';
import { Router, type PeerReplicaWrite, type ReplicaRead, type RemoteReplicas } from '../../src/router/router.js';
import { TableRegistry } from '../../src/router/tables.js';
import type { WireCallback } from '../../src/storage/shards.js';
import type { MetaStore } from '../../src/storage/meta.js';
import { RingkvError } from '../../src/util/errors.js';
import { decodeRecord, encodeRecord, initVersions, mergeVersions, type Version } from '../../src/versions/index.js';

/** Liveness.Up (a const enum in src). */
const UP = 1;
const NODES = ['n1', 'n2', 'n3'];

type Behaviour = 'ok' | 'hang' | 'fail';

/** Replica state of one node, keyed by table id + key (hex). */
class Store {
  readonly data = new Map<string, Version[]>();
  writes = 0;
  merge(tableId: number, key: Uint8Array, mode: 'vclock' | 'lww', versions: Version[]): Version[] {
    this.writes++;
    const k = `${tableId}/${Buffer.from(key).toString('hex')}`;
    const merged = mergeVersions(mode, this.data.get(k) ?? [], versions, 16);
    this.data.set(k, merged);
    return merged;
  }
  get(tableId: number, key: Uint8Array): Version[] | null {
    return this.data.get(`${tableId}/${Buffer.from(key).toString('hex')}`) ?? null;
  }
}

/** The local node's shard pool, by the methods the router calls. */
class FakeShards {
  constructor(private readonly store: Store) {}
  write(_s: number, table: number, mode: 'vclock' | 'lww', key: Uint8Array, _hi: number, _lo: number, record: Uint8Array, returnMerged: boolean, cb: WireCallback): void {
    const merged = this.store.merge(table, key, mode, decodeRecord(record));
    queueMicrotask(() => cb({ ok: true, record: returnMerged ? encodeRecord(merged) : null, changed: true }));
  }
  read(_s: number, table: number, key: Uint8Array, _hi: number, _lo: number, cb: WireCallback): void {
    const v = this.store.get(table, key);
    queueMicrotask(() => cb({ ok: true, record: v ? encodeRecord(v) : null, changed: false }));
  }
}

class FakeRemote implements RemoteReplicas {
  readonly behaviour = new Map<string, Behaviour>();
  constructor(readonly stores: Map<string, Store>) {}
  private act<T>(node: string, f: () => T): Promise<T> {
    const b = this.behaviour.get(node) ?? 'ok';
    if (b === 'hang') return new Promise<T>(() => undefined);
    if (b === 'fail') return Promise.reject(new RingkvError('unavailable', `${node} unreachable`));
    return Promise.resolve().then(f);
  }
  writeRecord(node: string, op: PeerReplicaWrite): Promise<Uint8Array | null> {
    return this.act(node, () => {
      const m = this.stores.get(node)!.merge(op.tableId, op.key, op.mode, decodeRecord(op.record));
      return op.returnMerged ? encodeRecord(m) : null;
    });
  }
  readRecord(node: string, op: ReplicaRead): Promise<Uint8Array | null> {
    return this.act(node, () => {
      const v = this.stores.get(node)!.get(op.tableId, op.key);
      return v ? encodeRecord(v) : null;
    });
  }
}

const nullMeta = { set: () => undefined, get: () => undefined, list: async () => [] } as unknown as MetaStore;

function setup(over: Partial<NodeConfig> = {}) {
  const config: NodeConfig = { ...DEFAULT_CONFIG, requestTimeoutMs: 300, ...over };
  const layout = buildRing(
    NODES.map((id, i) => ({ id, tokens: allocateTokens([], 16, mulberry(i + 1)), shards: 1, status: 'normal' as const })),
    { maxReplicas: 3 },
  );
  const ring = RingTable.create();
  ring.publish(layout, layout.nodeIds.indexOf('n1'), () => UP);
  const stores = new Map(NODES.map((n) => [n, new Store()]));
  const tables = new TableRegistry(nullMeta, config.tables);
  const router = new Router({
    selfId: 'n1',
    ring,
    layout,
    shards: new FakeShards(stores.get('n1')!) as never,
    tables,
    config,
    log: pino({ level: 'silent' }),
  });
  const remote = new FakeRemote(stores);
  router.remote = remote;
  return { router, remote, stores, tables };
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const key = (s: string): Uint8Array => Buffer.from(s);
const val = (s: string): Uint8Array => Buffer.from(s);

beforeAll(async () => {
  await initHasher();
  await initVersions();
});

describe('Router coordination (fakes for shards and peers)', () => {
  it('writes reach all three replicas and a read reconciles them', async () => {
    const { router, stores } = setup();
    const w = await router.write({ table: 't', key: key('a'), value: val('1'), tombstone: false, consistency: { w: 2 } });
    expect(w.consistency.required).toBe(2);
    await new Promise((r) => setImmediate(r));
    for (const s of stores.values()) expect(s.writes).toBe(1);
    const r = await router.read({ table: 't', key: key('a'), consistency: { r: 3 } });
    expect(r.values.map((v) => Buffer.from(v.value).toString())).toEqual(['1']);
  });

  it('a replica that never answers: W=2 succeeds, W=3 fails at the deadline with a 503 naming the count', async () => {
    const { router, remote } = setup();
    remote.behaviour.set('n3', 'hang');
    await expect(router.write({ table: 't', key: key('b'), value: val('x'), tombstone: false, consistency: { w: 2 } })).resolves.toBeDefined();
    const err = await router.write({ table: 't', key: key('c'), value: val('x'), tombstone: false, consistency: { w: 3 } }).then(
      () => null,
      (e: unknown) => e as RingkvError,
    );
    expect(err).toBeInstanceOf(RingkvError);
    expect(err!.code).toBe('timeout');
    expect(err!.status).toBe(503);
    expect(err!.message).toMatch(/2 of 3 replicas answered, 3 acks required \(deadline passed\)/);
  });

  it('blocking read repair: a hung replica delays the answer to the deadline but does not fail a read that met R', async () => {
    const { router, remote, stores } = setup({ readRepair: 'blocking' });
    await router.write({ table: 't', key: key('d'), value: val('v'), tombstone: false, consistency: { w: 3 } });
    remote.behaviour.set('n3', 'hang');
    const t0 = performance.now();
    const r = await router.read({ table: 't', key: key('d'), consistency: { r: 2 } });
    expect(Buffer.from(r.values[0]!.value).toString()).toBe('v');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250); // waited for the deadline (300 ms)
    // And it repairs the replica that was stale: make n2 lose the key, read again with n3 failing fast.
    stores.get('n2')!.data.clear();
    remote.behaviour.set('n3', 'fail');
    await router.read({ table: 't', key: key('d'), consistency: { r: 2 } });
    expect(stores.get('n2')!.get(router_tableId('t'), key('d'))).not.toBeNull();
  });

  it('a delete without a context on a vclock table deletes what is there (not a sibling tombstone)', async () => {
    const { router } = setup();
    await router.write({ table: 'vc', key: key('e'), value: val('gone'), tombstone: false, consistency: { w: 3 } });
    await router.write({ table: 'vc', key: key('e'), value: val(''), tombstone: true, consistency: {} });
    const r = await router.read({ table: 'vc', key: key('e'), consistency: { r: 3 } });
    expect(r.values).toEqual([]);
  });

  it('requests that fail validation, and reads, create no table', async () => {
    const { router, tables } = setup();
    await expect(router.write({ table: 'nt1', key: key('k'), value: val('v'), tombstone: false, context: '!!bad', consistency: {} })).rejects.toMatchObject({ code: 'bad_request' });
    await expect(router.write({ table: 'nt2', key: key('k'), value: val('v'), tombstone: false, consistency: { w: 5 } })).rejects.toMatchObject({ code: 'bad_request' });
    const r = await router.read({ table: 'nt3', key: key('k'), consistency: {} });
    expect(r.values).toEqual([]);
    expect(tables.all().map((t) => t.name)).toEqual([]);
    await router.write({ table: 'nt4', key: key('k'), value: val('v'), tombstone: false, consistency: {} });
    expect(tables.all().map((t) => t.name)).toEqual(['nt4']);
  });
});

function router_tableId(name: string): number {
  return new TableRegistry(nullMeta, DEFAULT_CONFIG.tables).draft(name).id;
}
