/**
 * In-process fakes for unit tests of the CRDT coordinations (src/router/crdt*.ts): per node a
 * store of state bytes by (table id, key), the local shard pool's crdtApply / write / read with the
 * real shard-side functions (src/storage/crdt-shard.ts), and the remote nodes' crdt-apply, replica
 * writes and reads, each with a behaviour. The real router routes (ring, quorum plan, deadlines).
 */
import pino from 'pino';
import { seededRng } from '../../src/bench/distributions.js';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/config/config.js';
import { DEFAULT_CRDT_LIMITS, parseOp, type CrdtType } from '../../src/crdt/index.js';
import { buildRing } from '../../src/ring/builder.js';
import { RingTable } from '../../src/ring/table.js';
import { allocateTokens } from '../../src/ring/tokens.js';
import { CrdtCoordinator } from '../../src/router/crdt.js';
import type { CrdtRemote } from '../../src/router/crdt-replicas.js';
import { Router, type PeerReplicaWrite, type ReplicaRead } from '../../src/router/router.js';
import { TableRegistry } from '../../src/router/tables.js';
import { applyCrdtRequest, encodeApplyRequest } from '../../src/storage/crdt-shard.js';
import { mergeStoredRecords } from '../../src/storage/records.js';
import type { WireCallback } from '../../src/storage/shards.js';
import { RingkvError } from '../../src/util/errors.js';
import { nullMeta, NODES, UP } from './router-fakes.js';

/**
 * `hang`: never answers; `hold` (local shard only): answers when the test calls `release()`;
 * `fail`: a transport error (outcome unknown for an apply); `refuse`: answers `overloaded`.
 */
export type CrdtBehaviour = 'ok' | 'hang' | 'hold' | 'fail' | 'refuse';

/** One node's states by table id + key. */
export class StateStore {
  readonly data = new Map<string, Uint8Array>();
  applies = 0;
  constructor(readonly actor: string) {}
  private id(table: Uint8Array, key: Uint8Array): string {
    return `${Buffer.from(table).toString('hex')}/${Buffer.from(key).toString('hex')}`;
  }
  get(table: Uint8Array, key: Uint8Array): Uint8Array | null {
    return this.data.get(this.id(table, key)) ?? null;
  }
  apply(table: Uint8Array, key: Uint8Array, request: Uint8Array): Uint8Array {
    const next = applyCrdtRequest(request, this.get(table, key) ?? undefined, { actor: this.actor, limits: DEFAULT_CRDT_LIMITS });
    this.applies++;
    this.data.set(this.id(table, key), next);
    return next;
  }
  merge(table: Uint8Array, key: Uint8Array, state: Uint8Array): void {
    const bytes = mergeStoredRecords('crdt', this.get(table, key) ?? undefined, state, 1);
    this.data.set(this.id(table, key), Buffer.from(bytes));
  }
}

function answer(b: CrdtBehaviour, cb: () => void, refuse: () => void): void {
  if (b === 'hang') return;
  if (b === 'refuse') return void queueMicrotask(refuse);
  queueMicrotask(cb);
}

export class FakeCrdtShards {
  behaviour: CrdtBehaviour = 'ok';
  private held: Array<() => void> = [];
  constructor(private readonly store: StateStore) {}
  /** Answer the applies held so far (behaviour `hold`). */
  release(): void {
    for (const go of this.held.splice(0)) go();
  }
  crdtApply(table: Uint8Array, key: Uint8Array, _hi: number, _lo: number, request: Uint8Array, cb: WireCallback): void {
    if (this.behaviour === 'hold') return void this.held.push(() => this.crdtApplyNow(table, key, request, cb));
    this.crdtApplyNow(table, key, request, cb);
  }
  private crdtApplyNow(table: Uint8Array, key: Uint8Array, request: Uint8Array, cb: WireCallback): void {
    answer(
      this.behaviour === 'hold' ? 'ok' : this.behaviour,
      () => {
        try {
          cb({ ok: true, record: this.store.apply(table, key, request), changed: true });
        } catch (e) {
          const err = e as RingkvError;
          cb({ ok: false, code: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) });
        }
      },
      () => cb({ ok: false, code: 'overloaded', message: 'shard overloaded (fake)' }),
    );
  }
  write(table: Uint8Array, _mode: string, key: Uint8Array, _hi: number, _lo: number, record: Uint8Array, _rm: boolean, cb: WireCallback): void {
    queueMicrotask(() => {
      this.store.merge(table, key, record);
      cb({ ok: true, record: null, changed: true });
    });
  }
  read(table: Uint8Array, key: Uint8Array, _hi: number, _lo: number, cb: WireCallback): void {
    queueMicrotask(() => cb({ ok: true, record: this.store.get(table, key), changed: false }));
  }
}

export class FakeCrdtRemote implements CrdtRemote {
  readonly behaviour = new Map<string, CrdtBehaviour>();
  constructor(
    readonly stores: Map<string, StateStore>,
    private readonly types: Map<string, CrdtType>,
  ) {}
  private act<T>(node: string, f: () => T): Promise<T> {
    const b = this.behaviour.get(node) ?? 'ok';
    if (b === 'hang') return new Promise<T>(() => undefined);
    if (b === 'fail') return Promise.reject(new RingkvError('unavailable', `connection to ${node} lost (fake)`));
    return Promise.resolve().then(f);
  }
  /** A remote node's crdt-apply handler: parse again, apply at its store; failures in the body. */
  request(node: string, body: { t: string } & Record<string, unknown>): Promise<unknown> {
    if ((this.behaviour.get(node) ?? 'ok') === 'refuse') return Promise.resolve({ ok: false, code: 'overloaded', message: 'overloaded (fake)' });
    return this.act(node, () => {
      const type = this.types.get(body['table'] as string)!;
      try {
        const parsed = parseOp(type, body['operation'], DEFAULT_CRDT_LIMITS);
        return { ok: true, state: this.stores.get(node)!.apply(body['tableId'] as Uint8Array, body['key'] as Uint8Array, encodeApplyRequest(type, parsed)) };
      } catch (e) {
        const err = e as RingkvError;
        return { ok: false, code: err.code, message: err.message, details: err.details };
      }
    });
  }
  writeRecord(node: string, op: PeerReplicaWrite): Promise<Uint8Array | null> {
    return this.act(node, () => {
      this.stores.get(node)!.merge(op.tableId, op.key, op.record);
      return null;
    });
  }
  readRecord(node: string, op: ReplicaRead): Promise<Uint8Array | null> {
    return this.act(node, () => this.stores.get(node)!.get(op.tableId, op.key));
  }
}

/** A CRDT coordinator on node n1 of a 3-node ring, with fakes behind it; tables `c` (counter, n=3), `s` (set, n=3), `c2` (counter, n=2). */
export function crdtSetup(over: Partial<NodeConfig> = {}) {
  const config: NodeConfig = { ...DEFAULT_CONFIG, requestTimeoutMs: 300, ...over };
  const layout = buildRing(
    NODES.map((id, i) => ({ id, tokens: allocateTokens([], 16, seededRng(i + 7)), status: 'normal' as const })),
    { maxReplicas: 3 },
  );
  const ring = RingTable.create();
  ring.publish(layout, layout.nodeIds.indexOf('n1'), () => UP);
  const tables = new TableRegistry(nullMeta, config.tables);
  tables.define('c', { conflicts: 'crdt', type: 'counter' }, true);
  tables.define('s', { conflicts: 'crdt', type: 'set' }, true);
  tables.define('c2', { conflicts: 'crdt', type: 'counter', n: 2 }, true);
  const types = new Map<string, CrdtType>([
    ['c', 'counter'],
    ['s', 'set'],
    ['c2', 'counter'],
  ]);
  const stores = new Map(NODES.map((n) => [n, new StateStore(`${n}@t`)]));
  const log = pino({ level: 'silent' });
  const shards = new FakeCrdtShards(stores.get('n1')!);
  const router = new Router({ selfId: 'n1', ring, layout, shards: shards as never, tables, config, log });
  const remote = new FakeCrdtRemote(stores, types);
  const crdts = new CrdtCoordinator({ router, shards: shards as never, remote, hints: () => undefined, tables, config, log });
  return { crdts, router, shards, remote, stores, tables, layout };
}
