/**
 * The shard actor's part of the convergent data types (issue 14): applying a client's operation
 * at the coordinating replica. ShardActor (shard-actor.ts) calls it inside its group commit, in
 * mailbox order, so the read-modify-write of a key's state never races another op on that key.
 * (States that other replicas, hints, repair and streaming deliver merge like any record:
 * storage/records.ts.)
 *
 * The operation travels from the router to the shard as bytes (the shard wire's `crdt apply`
 * request): msgpack `[type, op, context | nil]`, the ParsedOp that `parseOp` produced on the
 * coordinator (already validated there; both ends are this process).
 *
 * Pure module: no I/O, worker-safe.
 */
import { Packr } from 'msgpackr';
import { applyToEncoded, type CrdtLimits, type CrdtType, type ParsedOp } from '../crdt/index.js';
import type { VClock } from '../versions/vclock.js';
import { RingkvError } from '../util/errors.js';

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number', copyBuffers: true });

export interface CrdtApplyRequest {
  type: CrdtType;
  parsed: ParsedOp;
}

export function encodeApplyRequest(type: CrdtType, parsed: ParsedOp): Uint8Array {
  // pack() returns a view into msgpackr's shared slab: the shard wire copies it at once.
  return packr.pack([type, parsed.op, parsed.context ?? null]);
}

export function decodeApplyRequest(bytes: Uint8Array): CrdtApplyRequest {
  const [type, op, context] = packr.unpack(bytes) as [CrdtType, ParsedOp['op'], VClock | null];
  return { type, parsed: { op, context: context ?? undefined } };
}

/** What the shard needs to apply operations: this node's actor id and the configured limits. */
export interface CrdtShardContext {
  /** nodeId + incarnation (src/node/incarnation.ts). */
  actor: string;
  limits: CrdtLimits;
}

let lastMicros = 0;
/** This thread's clock in µs, strictly increasing (a register assign's timestamp; see register.ts). */
function nowMicros(): number {
  const t = Date.now() * 1000;
  lastMicros = t > lastMicros ? t : lastMicros + 1;
  return lastMicros;
}

/**
 * The coordinating replica's step: the operation applied to what the key stores (undefined:
 * nothing yet). Returns the new state bytes; throws RingkvError (400 / 409 precondition / 413
 * limit) when the operation cannot apply, and then nothing changes.
 */
export function applyCrdtRequest(request: Uint8Array, stored: Uint8Array | undefined, ctx: CrdtShardContext): Uint8Array {
  let req: CrdtApplyRequest;
  try {
    req = decodeApplyRequest(request);
  } catch (e) {
    throw new RingkvError('internal', `undecodable CRDT apply request: ${(e as Error).message}`);
  }
  try {
    return applyToEncoded(req.type, stored, req.parsed, ctx.actor, nowMicros(), ctx.limits).bytes;
  } catch (e) {
    if (e instanceof RingkvError) throw e;
    // The stored bytes are not a state of the table's type (a record, another type, corruption).
    throw new RingkvError('internal', `cannot apply a ${req.type} operation to the stored value: ${(e as Error).message}`);
  }
}
