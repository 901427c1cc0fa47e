/**
 * Client handles for convergent data types (issue 14): one per (table, key), each sending
 * operations (never states) as IPC `crdt_update` and reading with `crdt_get`.
 *
 *   await client.counter('likes', 'post:1').increment(1);
 *   const cart = client.set('carts', 'u1');
 *   await cart.add('book', 'pen');
 *   const { value, context } = await cart.value();      // ['book', 'pen'] and a context token
 *   await cart.remove(['pen'], { context });
 *
 * Updates are never resent by the client, on any failure: an increment applied twice counts twice
 * (as with Riak and Cassandra counters). A failure whose outcome is unknown (the deadline passed, or
 * the connection dropped after the request left) rejects with a RingkvError whose
 * `details.outcome` is "unknown" (and `details.applied` is true when the coordinating replica
 * applied it but too few replicas confirmed in time): the update may or may not be counted, and the
 * application decides whether to resend. Other errors (`details.outcome` "not_applied" or no
 * outcome at all: validation, a failed precondition, a limit) mean nothing was applied.
 */
import type { ConsistencyLevel, ConsistencyReport, CrdtValueWire, IpcKey } from '../api/ipc-protocol.js';

export type CrdtValue = CrdtValueWire;

export interface CrdtUpdateOptions {
  consistency?: ConsistencyLevel;
  /** Acks required, the coordinating replica included (1..n). */
  w?: number;
  n?: number;
  timeoutMs?: number;
}

export interface CrdtReadOptions {
  consistency?: ConsistencyLevel;
  r?: number;
  n?: number;
  timeoutMs?: number;
}

/** Removes and disables: the context of the read the client based the remove on. */
export interface CrdtRemoveOptions extends CrdtUpdateOptions {
  context?: string;
}

export interface CrdtUpdateResult<V extends CrdtValue = CrdtValue> {
  /** The value after the update, as the coordinating replica holds it. */
  value: V;
  context?: string;
  consistency: ConsistencyReport;
}

export interface CrdtReadResult<V extends CrdtValue = CrdtValue> {
  /** False when no replica holds the key; `value` is then the type's empty value (0, [], null, false, {}). */
  found: boolean;
  value: V;
  context?: string;
  /** Bytes of the stored state. */
  bytes: number;
  consistency: ConsistencyReport;
}

/** What the handles need of the client. */
export interface CrdtTransport {
  crdtUpdate(table: string, key: IpcKey, operation: Record<string, unknown>, opts: CrdtUpdateOptions): Promise<CrdtUpdateResult>;
  crdtGet(table: string, key: IpcKey, opts: CrdtReadOptions): Promise<CrdtReadResult>;
}

function withContext(op: Record<string, unknown>, context: string | undefined): Record<string, unknown> {
  if (context !== undefined && context !== '') op['context'] = context;
  return op;
}

function stripRemove(o: CrdtRemoveOptions): CrdtUpdateOptions {
  const { context: _context, ...rest } = o;
  return rest;
}

abstract class CrdtHandle<V extends CrdtValue> {
  constructor(
    protected readonly t: CrdtTransport,
    readonly table: string,
    readonly key: IpcKey,
  ) {}

  protected send(op: Record<string, unknown>, opts: CrdtUpdateOptions): Promise<CrdtUpdateResult<V>> {
    return this.t.crdtUpdate(this.table, this.key, op, opts) as Promise<CrdtUpdateResult<V>>;
  }

  /** The current value (the join of R replicas) and its context. */
  value(opts: CrdtReadOptions = {}): Promise<CrdtReadResult<V>> {
    return this.t.crdtGet(this.table, this.key, opts) as Promise<CrdtReadResult<V>>;
  }
}

/** Any type, operations given in their JSON shape (`{increment: 1}`, `{add: ['a']}`, ...): for tools and dynamic callers. */
export class AnyCrdtHandle extends CrdtHandle<CrdtValue> {
  /** Applies `operation` (its `context`, if any, inside it, as in the HTTP body). Never resent. */
  update(operation: Record<string, unknown>, opts: CrdtUpdateOptions = {}): Promise<CrdtUpdateResult> {
    return this.send(operation, opts);
  }
}

/** A PN-counter. */
export class CounterHandle extends CrdtHandle<number> {
  /** Adds `by` (default 1; negative decrements). Never resent: see the module comment. */
  increment(by = 1, opts: CrdtUpdateOptions = {}): Promise<CrdtUpdateResult<number>> {
    return this.send({ increment: by }, opts);
  }

  decrement(by = 1, opts: CrdtUpdateOptions = {}): Promise<CrdtUpdateResult<number>> {
    return this.send({ decrement: by }, opts);
  }
}

/** An add-wins observed-remove set of strings. */
export class SetHandle extends CrdtHandle<string[]> {
  add(...elements: string[]): Promise<CrdtUpdateResult<string[]>> {
    return this.send({ add: elements }, {});
  }

  addAll(elements: string[], opts: CrdtUpdateOptions = {}): Promise<CrdtUpdateResult<string[]>> {
    return this.send({ add: elements }, opts);
  }

  /**
   * Removes what the read that returned `opts.context` saw of these elements (an add it did not see
   * survives). Without a context, what the coordinating replica has seen. An element the context
   * has no add of is refused (409, details.precondition "not_present").
   */
  remove(elements: string[], opts: CrdtRemoveOptions = {}): Promise<CrdtUpdateResult<string[]>> {
    return this.send(withContext({ remove: elements }, opts.context), stripRemove(opts));
  }
}

/** A last-write-wins register holding a string (null until assigned). */
export class RegisterHandle extends CrdtHandle<string | null> {
  assign(value: string, opts: CrdtUpdateOptions = {}): Promise<CrdtUpdateResult<string | null>> {
    return this.send({ assign: value }, opts);
  }
}

/** An enable-wins flag. */
export class FlagHandle extends CrdtHandle<boolean> {
  enable(opts: CrdtUpdateOptions = {}): Promise<CrdtUpdateResult<boolean>> {
    return this.send({ enable: true }, opts);
  }

  disable(opts: CrdtRemoveOptions = {}): Promise<CrdtUpdateResult<boolean>> {
    return this.send(withContext({ disable: true }, opts.context), stripRemove(opts));
  }
}

export type MapValue = { [field: string]: CrdtValue };

/** A map of typed fields (`name_counter`, `items_set`, `cart_map`, `name_register`, `gift_flag`). */
export class MapHandle extends CrdtHandle<MapValue> {
  /**
   * Updates fields (`{ items_set: { add: ['book'] }, total_counter: { increment: 12 } }`) and
   * removes others (`opts.remove`, with the `context` of the read they were seen in).
   */
  update(fields: Record<string, unknown>, opts: CrdtRemoveOptions & { remove?: string[] } = {}): Promise<CrdtUpdateResult<MapValue>> {
    const op: Record<string, unknown> = {};
    if (Object.keys(fields).length > 0) op['update'] = fields;
    if (opts.remove !== undefined) op['remove'] = opts.remove;
    const { remove: _remove, ...rest } = opts;
    return this.send(withContext(op, opts.context), stripRemove(rest));
  }

  /** Removes fields (reset-remove: what the context saw of them). */
  remove(fields: string[], opts: CrdtRemoveOptions = {}): Promise<CrdtUpdateResult<MapValue>> {
    return this.send(withContext({ remove: fields }, opts.context), stripRemove(opts));
  }
}
