/**
 * Causal contexts handed to clients for later removes.
 *
 * A set's, flag's or map's context is its clock: the version vector of every add it has seen
 * (one `[node, counter]` per coordinating node, so its size is bounded by crdt.maxActors, not by
 * the number of elements). The token is the same opaque base64url msgpack form the vclock tables
 * use (`encodeContext` in src/versions/reconcile.ts); '' is the empty context. A remove carrying
 * it removes exactly the adds the client's read had seen.
 *
 * Pure module: no I/O.
 */
import { decodeContext, encodeContext } from '../versions/reconcile.js';
import { vcDescends, type VClock } from '../versions/vclock.js';
import { internActor } from './codec.js';
import { badOp, limitExceeded, pathKey, preconditionFailed, utf8Bytes, type CrdtLimits } from './limits.js';

/** The token for a clock ('' for the empty clock). */
export function contextToken(clock: VClock): string {
  return encodeContext(clock);
}

/** Longest token a clock within the limits can encode to (base64 of ≤ 16 bytes of msgpack framing per entry). */
export function maxContextChars(limits: CrdtLimits): number {
  return Math.ceil(((limits.maxActorBytes + 16) * limits.maxActors + 8) / 3) * 4;
}

/** Decodes a client's `context` field at `path`; bad tokens are 400s naming the field. */
export function parseContext(input: unknown, limits: CrdtLimits, path: string): VClock {
  if (typeof input !== 'string') throw badOp(path, 'must be a string (the context token a read returned)');
  if (input.length > maxContextChars(limits)) throw badOp(path, `is ${input.length} characters, longer than any context of crdt.maxActors (${limits.maxActors}) actors`);
  let clock: VClock;
  try {
    clock = decodeContext(input);
  } catch {
    throw badOp(path, 'malformed context (pass the token a read returned, unchanged)');
  }
  if (clock.length > limits.maxActors) throw limitExceeded('maxActors', limits, path, `a context of ${clock.length} actors`);
  for (const [actor] of clock) {
    if (utf8Bytes(actor) > limits.maxActorBytes) throw limitExceeded('maxActorBytes', limits, path, 'an actor id');
  }
  return clock.map(([actor, n]) => [internActor(actor), n] as const);
}

/**
 * Refuses a remove when this replica's clock does not descend the client's context: the client
 * saw adds this replica has not, and removing only what the replica holds would let those adds
 * resurface — a remove silently lost. The integration can join the other replicas' states into the
 * coordinating replica and retry (docs/crdt.md).
 */
export function checkContextSeen(clock: VClock, context: VClock | undefined, path: string): void {
  if (context !== undefined && !vcDescends(clock, context)) {
    throw preconditionFailed(
      'context_ahead',
      pathKey(path, 'context'),
      'the coordinating replica has not yet seen everything this context has; retry once replicas have synchronised',
    );
  }
}
