/**
 * A replicated simulation of one CRDT key for property tests, as the integration will run it:
 * each replica is a node (its id is the actor), operations arrive as client JSON, are parsed and
 * applied at one replica (the coordinating replica) with a context read from some replica at some
 * earlier time (or none), and replicas exchange whole states in any order, stale or duplicated.
 * Every state any replica ever held is kept, so the lattice laws can be checked on states that
 * really occur together (states of unrelated histories could reuse a dot and are not a valid
 * input to any join).
 */
import fc from 'fast-check';
import {
  applyToEncoded,
  crdtContext,
  crdtJoin,
  decodeCrdt,
  emptyCrdt,
  encodeCrdt,
  parseOp,
  type CrdtLimits,
  type CrdtState,
  type CrdtType,
} from '../../src/crdt/index.js';
import { DEFAULT_CRDT_LIMITS } from '../../src/crdt/limits.js';
import { RingkvError } from '../../src/util/errors.js';

export const REPLICAS = ['n1', 'n2', 'n3'];

export type Step =
  | {
      kind: 'op';
      at: number;
      body: Record<string, unknown>;
      /** none: no context; else the context of `ctxReplica`'s state `ctxAge` states ago. */
      ctx: 'none' | { replica: number; age: number };
      /** Seed for a Resolver's choices. */
      pick: number;
    }
  | { kind: 'deliver'; to: number; from: number; age: number };

export function stepsArb(opArb: fc.Arbitrary<Record<string, unknown>>, maxSteps = 30): fc.Arbitrary<Step[]> {
  const r = fc.nat(REPLICAS.length - 1);
  const op = fc.record({
    kind: fc.constant('op' as const),
    at: r,
    body: opArb,
    ctx: fc.oneof(fc.constant('none' as const), fc.record({ replica: r, age: fc.nat(3) })),
    pick: fc.nat(),
  });
  const deliver = fc.record({ kind: fc.constant('deliver' as const), to: r, from: r, age: fc.nat(4) });
  return fc.array(fc.oneof({ arbitrary: op, weight: 3 }, { arbitrary: deliver, weight: 2 }), { minLength: 2, maxLength: maxSteps, size: 'max' });
}

/**
 * Turns a generated body into the one sent, given the state the client read (the context's
 * source, or the coordinating replica's state without a context): e.g. removes of elements the
 * client saw, which random element choices would rarely hit.
 */
export type Resolver = (body: Record<string, unknown>, read: CrdtState, pick: number) => Record<string, unknown>;

export interface Applied {
  /** Replica (index) that coordinated it. */
  at: number;
  body: Record<string, unknown>;
}

export interface Run {
  /** Every state any replica held, in order of creation (the empty state first). */
  history: CrdtState[];
  /** Final state per replica. */
  finals: CrdtState[];
  applied: Applied[];
  /** Refused operations by error code and precondition reason, e.g. "conflict/not_present". */
  refused: Map<string, number>;
}

/**
 * Runs `steps`. A refused operation must be a clean RingkvError (400/409/413) and must leave the
 * replica's state as it was; anything else throws and fails the property.
 */
export function simulate(type: CrdtType, steps: readonly Step[], resolve?: Resolver, limits: CrdtLimits = DEFAULT_CRDT_LIMITS): Run {
  // Per replica: its states over time (newest last) and their encodings.
  const timeline: CrdtState[][] = REPLICAS.map(() => [emptyCrdt(type)]);
  const history: CrdtState[] = [emptyCrdt(type)];
  const applied: Applied[] = [];
  const refused = new Map<string, number>();
  const current = (i: number): CrdtState => timeline[i]![timeline[i]!.length - 1]!;
  const past = (i: number, age: number): CrdtState => {
    const t = timeline[i]!;
    return t[Math.max(0, t.length - 1 - age)]!;
  };
  let now = 1_000_000;
  steps.forEach((s, n) => {
    if (s.kind === 'deliver') {
      const next = crdtJoin(current(s.to), past(s.from, s.age));
      if (next !== current(s.to)) {
        timeline[s.to]!.push(next);
        history.push(next);
      }
      return;
    }
    const read = s.ctx === 'none' ? current(s.at) : past(s.ctx.replica, s.ctx.age);
    const body: Record<string, unknown> = resolve === undefined ? { ...s.body } : resolve(s.body, read, s.pick);
    const sent = { ...body };
    if (s.ctx !== 'none') {
      const token = crdtContext(read);
      if (token !== undefined) sent['context'] = token;
    }
    // Clocks of different replicas disagree a little, so equal timestamps and reorderings occur.
    now += 3;
    const nowMicros = now + ((n * 7 + s.at * 5) % 11) - 5;
    const before = encodeCrdt(current(s.at));
    try {
      const parsed = parseOp(type, sent, limits);
      const { state, bytes } = applyToEncoded(type, before, parsed, REPLICAS[s.at]!, nowMicros, limits);
      if (Buffer.compare(bytes, encodeCrdt(state)) !== 0) throw new Error('applyToEncoded bytes differ from the state');
      timeline[s.at]!.push(state);
      history.push(state);
      applied.push({ at: s.at, body });
    } catch (e) {
      if (!(e instanceof RingkvError) || !['bad_request', 'conflict', 'too_large'].includes(e.code)) throw e;
      const key = `${e.code}/${String(e.details?.['precondition'] ?? e.details?.['limit'] ?? '')}`;
      refused.set(key, (refused.get(key) ?? 0) + 1);
      if (Buffer.compare(before, encodeCrdt(current(s.at))) !== 0) throw new Error('a refused operation changed the state');
    }
  });
  return { history, finals: REPLICAS.map((_, i) => current(i)), applied, refused };
}

export function bytesOf(s: CrdtState): string {
  return encodeCrdt(s).toString('hex');
}

/** Join of every state, in the given order. */
export function joinAll(states: readonly CrdtState[], type: CrdtType): CrdtState {
  return states.reduce((acc, s) => crdtJoin(acc, s), emptyCrdt(type));
}

export function roundTrip(s: CrdtState): CrdtState {
  return decodeCrdt(encodeCrdt(s));
}
