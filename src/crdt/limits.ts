/**
 * Named bounds on convergent data types, and the errors every CRDT module raises.
 *
 * Every limit is checked when an *operation* is applied (at the coordinating replica), never in
 * `join`: a join merges states that replicas already accepted, and refusing it would leave
 * replicas diverged forever. So a limit bounds what clients can make a state grow to; a join of
 * two states each within a limit can exceed it only by what concurrent operations added (e.g. two
 * coordinators each adding the last allowed element), which is itself bounded by the limit times
 * the number of coordinators.
 *
 * The config keys are `crdt.<name>` (see CRDT_LIMIT_KEYS); the integration adds them to
 * src/config/config.ts and passes a CrdtLimits to parseOp/apply.
 *
 * Pure module: no I/O.
 */
import { RingkvError, badRequest } from '../util/errors.js';

export interface CrdtLimits {
  /** Elements in one set (top-level or a map field), count. */
  maxSetElements: number;
  /** UTF-8 bytes of one set element. */
  maxElementBytes: number;
  /** Fields in one map (each nesting level counted on its own), count. */
  maxMapFields: number;
  /** UTF-8 bytes of one map field name, `name_type` included. */
  maxFieldNameBytes: number;
  /** Map nesting levels: a top-level map is depth 1, a map field inside it depth 2, ... */
  maxMapDepth: number;
  /** UTF-8 bytes of one register value. */
  maxRegisterBytes: number;
  /** Distinct actors (coordinating nodes) in one state's clock or counter, count. */
  maxActors: number;
  /** UTF-8 bytes of one actor id (a node id, perhaps with an incarnation suffix). */
  maxActorBytes: number;
  /** Elements plus fields named by one operation, count (bounds the work one request does). */
  maxOpEntries: number;
  /** Bytes of a state as encoded for storage (what an operation may grow it to). */
  maxStateBytes: number;
}

/**
 * Defaults (justification in docs/crdt.md "Bounds"). In short: every operation decodes, changes and
 * re-encodes the whole state in the shard actor, so a state is kept well under the store's 1 MiB
 * value limit and one operation under ~2 ms (measured in bench/micro/crdt.ts: a set of 5,000
 * elements; cost grows faster than linearly beyond that).
 */
export const DEFAULT_CRDT_LIMITS: Readonly<CrdtLimits> = Object.freeze({
  maxSetElements: 5000,
  maxElementBytes: 1024,
  maxMapFields: 1000,
  maxFieldNameBytes: 256,
  maxMapDepth: 8,
  maxRegisterBytes: 65_536,
  maxActors: 64,
  maxActorBytes: 128,
  maxOpEntries: 1000,
  maxStateBytes: 1_048_576,
});

/** The config key naming each limit: what error messages and `details.limit` carry. */
export const CRDT_LIMIT_KEYS: Readonly<Record<keyof CrdtLimits, string>> = Object.freeze({
  maxSetElements: 'crdt.maxSetElements',
  maxElementBytes: 'crdt.maxElementBytes',
  maxMapFields: 'crdt.maxMapFields',
  maxFieldNameBytes: 'crdt.maxFieldNameBytes',
  maxMapDepth: 'crdt.maxMapDepth',
  maxRegisterBytes: 'crdt.maxRegisterBytes',
  maxActors: 'crdt.maxActors',
  maxActorBytes: 'crdt.maxActorBytes',
  maxOpEntries: 'crdt.maxOpEntries',
  maxStateBytes: 'crdt.maxStateBytes',
});

/**
 * Upper bounds a configuration may set. They protect the decoder (nesting is recursion) and keep
 * counter sums exact (see counter.ts); they are far above any sensible setting.
 */
export const CRDT_LIMIT_CEILINGS: Readonly<Record<keyof CrdtLimits, number>> = Object.freeze({
  maxSetElements: 1_000_000,
  maxElementBytes: 1_048_576,
  maxMapFields: 100_000,
  maxFieldNameBytes: 65_536,
  maxMapDepth: 32,
  maxRegisterBytes: 16_777_216,
  maxActors: 1024,
  maxActorBytes: 1024,
  maxOpEntries: 1_000_000,
  maxStateBytes: 268_435_456,
});

/**
 * Checks a (partial) `crdt` config section and fills in defaults. Throws bad_request naming the
 * config key on anything that is not an integer in [1, ceiling].
 */
export function crdtLimits(input: unknown = {}): CrdtLimits {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw badRequest('crdt: expected an object of limits');
  }
  const src = input as Record<string, unknown>;
  const out: CrdtLimits = { ...DEFAULT_CRDT_LIMITS };
  for (const key of Object.keys(src)) {
    if (!(key in DEFAULT_CRDT_LIMITS)) throw badRequest(`crdt.${key}: unknown limit; known: ${Object.keys(DEFAULT_CRDT_LIMITS).join(', ')}`);
    const k = key as keyof CrdtLimits;
    const v = src[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > CRDT_LIMIT_CEILINGS[k]) {
      throw badRequest(`${CRDT_LIMIT_KEYS[k]}: expected an integer in [1, ${CRDT_LIMIT_CEILINGS[k]}], got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}

/** `a.b` / `a[3]` paths into an operation, for error messages. */
export function pathKey(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

export function pathIndex(path: string, i: number): string {
  return `${path}[${i}]`;
}

function where(path: string): string {
  return path === '' ? 'operation' : path;
}

/** A malformed operation (400): the message starts with the path of the bad field. */
export function badOp(path: string, message: string): RingkvError {
  return badRequest(`${where(path)}: ${message}`, { path });
}

/**
 * An operation that would take a state past a limit (413). The message names the config key and
 * the bound; `details` carries them for programs.
 */
export function limitExceeded(limit: keyof CrdtLimits, limits: CrdtLimits, path: string, what: string): RingkvError {
  const key = CRDT_LIMIT_KEYS[limit];
  return new RingkvError('too_large', `${where(path)}: ${what} exceeds ${key} (${limits[limit]})`, { limit: key, max: limits[limit], path });
}

/** Why a remove/disable was refused. */
export type PreconditionReason =
  /** The element/field has no add the context has seen (never added, removed since, or only re-added concurrently). */
  | 'not_present'
  /** The coordinating replica has not seen everything the context has; it cannot tell what to remove. */
  | 'context_ahead';

/**
 * A remove the state cannot honour (409 `conflict`, `details.precondition` says why). Riak answers
 * `{precondition, {not_present, Elem}}` for the first kind.
 */
export function preconditionFailed(reason: PreconditionReason, path: string, message: string): RingkvError {
  return new RingkvError('conflict', `${where(path)}: ${message}`, { precondition: reason, path });
}

/** Undecodable or structurally invalid stored/peer state: an internal error, never a client one. */
export function corruptState(message: string, cause?: unknown): Error {
  return cause === undefined ? new Error(`corrupt CRDT state: ${message}`) : new Error(`corrupt CRDT state: ${message}`, { cause });
}

export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/**
 * Checks the actor id the integration passes (the coordinating replica's id) and that taking one
 * more actor into a state with `actorCount` actors (`known`: already one of them) stays within
 * crdt.maxActors.
 */
export function checkActor(actor: string, known: boolean, actorCount: number, limits: CrdtLimits): void {
  if (typeof actor !== 'string' || actor.length === 0) throw new Error('CRDT actor must be a non-empty string');
  if (known) return;
  if (utf8Bytes(actor) > limits.maxActorBytes) throw limitExceeded('maxActorBytes', limits, '', `actor id ${JSON.stringify(actor.slice(0, 40))}`);
  if (actorCount >= limits.maxActors) {
    throw limitExceeded('maxActors', limits, '', `a new actor ${JSON.stringify(actor)} on a state that already has ${actorCount} actors`);
  }
}
