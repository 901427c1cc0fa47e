/**
 * In-process fakes of what the router talks to, for unit tests of its coordinations: one replica
 * store per node, the local shard pool (wire reads/writes and the `scan` op), and the remote
 * replicas (peer writes, reads and scans) with per-node behaviour. Pure logic only; the real
 * shards and transport are covered by the integration tests.
 */
import pino from 'pino';
import { seededRng } from '../../src/bench/distributions.js';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/config/config.js';
import { buildRing, type RingLayout } from '../../src/ring/builder.js';
import { tokenOf, tokenToBigInt } from '../../src/ring/hash.js';
import { RingTable } from '../../src/ring/table.js';
import { allocateTokens } from '../../src/ring/tokens.js';
import { Router, type PeerReplicaScan, type PeerReplicaWrite, type ReplicaRead, type RemoteReplicas, type ScanPage } from '../../src/router/router.js';
import { TableRegistry } from '../../src/router/tables.js';
import type { PeerServices } from '../../src/cluster/peer-services.js';
import { encodeStorageKey, storageKeyHasTable } from '../../src/storage/keys.js';
import type { MetaStore } from '../../src/storage/meta.js';
import type { WireCallback } from '../../src/storage/shards.js';
import { RingkvError } from '../../src/util/errors.js';
import { decodeRecord, encodeRecord, mergeVersions, type Version } from '../../src/versions/index.js';

/** Liveness.Up (a const enum in src). */
export const UP = 1;
export const NODES = ['n1', 'n2', 'n3'];

/** `slow`: answers after SLOW_MS. */
export type Behaviour = 'ok' | 'hang' | 'fail' | 'slow';
export const SLOW_MS = 150;

function storageHex(tableId: Uint8Array, key: Uint8Array): string {
  const t = tokenOf(key);
  return encodeStorageKey(t.hi, t.lo, tableId, key).toString('hex');
}

/** One node's replica data by storage key (hex sorts like the bytes: fixed-width pairs). */
export class Store {
  readonly data = new Map<string, Version[]>();
  writes = 0;
  /** `maxPage`: rows per scan page this replica answers at most (so replicas' pages end at different keys). */
  constructor(readonly maxPage = 1000) {}
  merge(tableId: Uint8Array, key: Uint8Array, mode: 'vclock' | 'lww', versions: Version[]): Version[] {
    this.writes++;
    const sk = storageHex(tableId, key);
    const merged = mergeVersions(mode, this.data.get(sk) ?? [], versions, 16);
    this.data.set(sk, merged);
    return merged;
  }
  get(tableId: Uint8Array, key: Uint8Array): Version[] | null {
    return this.data.get(storageHex(tableId, key)) ?? null;
  }
  set(tableId: Uint8Array, key: Uint8Array, versions: Version[]): void {
    this.data.set(storageHex(tableId, key), versions);
  }
  /** The shard scan op's contract: table rows with token in (start, end] after `after`, storage-key order. */
  scan(op: { table: Uint8Array; startHi: number; startLo: number; endHi: number; endLo: number; after: Uint8Array | null; limit: number }): ScanPage {
    const s = tokenToBigInt({ hi: op.startHi, lo: op.startLo });
    const e = tokenToBigInt({ hi: op.endHi, lo: op.endLo });
    const inRange = (t: bigint): boolean => (s === e ? true : s < e ? t > s && t <= e : t > s || t <= e);
    // Storage-key order, also for a wrapping range (as tokenRangeBounds gives the real shard).
    const keys = [...this.data.keys()].sort().map((h) => Buffer.from(h, 'hex'));
    let candidates = keys.filter((k) => inRange(k.readBigUInt64BE(0)) && storageKeyHasTable(k, op.table));
    if (op.after) {
      const i = candidates.findIndex((k) => k.equals(Buffer.from(op.after!)));
      if (i >= 0) candidates = candidates.slice(i + 1);
      else throw new Error('test fake: cursor not among the keys');
    }
    const n = Math.min(op.limit, this.maxPage);
    const rows = candidates.slice(0, n).map((k) => ({ key: k, record: encodeRecord(this.data.get(k.toString('hex'))!) }));
    return { rows, next: candidates.length > n ? rows[rows.length - 1]!.key : null };
  }
}

/** The local node's shard pool, by the methods the router calls (one store: shards are the pool's business). */
export class FakeShards {
  /** A stuck shard worker: writes are never answered. */
  hangWrites = false;
  constructor(private readonly store: Store) {}
  write(table: Uint8Array, mode: 'vclock' | 'lww', key: Uint8Array, _hi: number, _lo: number, record: Uint8Array, returnMerged: boolean, cb: WireCallback): void {
    if (this.hangWrites) return;
    const merged = this.store.merge(table, key, mode, decodeRecord(record));
    queueMicrotask(() => cb({ ok: true, record: returnMerged ? encodeRecord(merged) : null, changed: true }));
  }
  read(table: Uint8Array, key: Uint8Array, _hi: number, _lo: number, cb: WireCallback): void {
    const v = this.store.get(table, key);
    queueMicrotask(() => cb({ ok: true, record: v ? encodeRecord(v) : null, changed: false }));
  }
  async scan(op: Parameters<Store['scan']>[0]): Promise<ScanPage> {
    return this.store.scan(op);
  }
}

/** The other nodes, as the router reaches them through the peer transport. */
export class FakeRemote implements RemoteReplicas {
  readonly behaviour = new Map<string, Behaviour>();
  scans = 0;
  constructor(readonly stores: Map<string, Store>) {}
  private act<T>(node: string, f: () => T): Promise<T> {
    const b = this.behaviour.get(node) ?? 'ok';
    if (b === 'hang') return new Promise<T>(() => undefined);
    if (b === 'fail') return Promise.reject(new RingkvError('unavailable', `${node} unreachable`));
    if (b === 'slow') return new Promise<void>((r) => setTimeout(r, SLOW_MS)).then(f);
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
  scanRecords(node: string, op: PeerReplicaScan): Promise<ScanPage> {
    this.scans++;
    return this.act(node, () => this.stores.get(node)!.scan({ ...op, table: op.tableId }));
  }
}

export const nullMeta = { set: () => undefined, get: () => undefined, list: async () => [] } as unknown as MetaStore;

/** A router on node n1 of a 3-node ring, with fakes behind it. */
export function routerSetup(opts: {
  config?: Partial<NodeConfig>;
  vnodes: number;
  seedBase: number;
  pages?: readonly number[];
  tableIdOf?: (name: string) => string;
  /** Where the router registers its replica handlers (the cluster's peer services in a node). */
  peers?: Pick<PeerServices, 'registerService'>;
}): {
  router: Router;
  remote: FakeRemote;
  shards: FakeShards;
  stores: Map<string, Store>;
  tables: TableRegistry;
  layout: RingLayout;
} {
  const config: NodeConfig = { ...DEFAULT_CONFIG, ...opts.config };
  const layout = buildRing(
    NODES.map((id, i) => ({ id, tokens: allocateTokens([], opts.vnodes, seededRng(i + opts.seedBase)), status: 'normal' as const })),
    { maxReplicas: 3 },
  );
  const ring = RingTable.create();
  ring.publish(layout, layout.nodeIds.indexOf('n1'), () => UP);
  const stores = new Map(NODES.map((n, i) => [n, new Store(opts.pages?.[i])]));
  const tables = new TableRegistry(nullMeta, config.tables, opts.tableIdOf);
  const shards = new FakeShards(stores.get('n1')!);
  const remote = new FakeRemote(stores);
  const router = new Router({ selfId: 'n1', ring, layout, shards: shards as never, tables, config, log: pino({ level: 'silent' }), remote, ...(opts.peers ? { peers: opts.peers } : {}) });
  return { router, remote, shards, stores, tables, layout };
}
