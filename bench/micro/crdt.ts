/**
 * Convergent data types: what one operation costs the coordinating replica (apply + encode, and
 * the full parse + decode + apply + encode of `applyToEncoded`), what merging an incoming state
 * costs a replica (`joinEncoded`), next to the read-modify-write of an LWW record; and
 * `crdtSizeGrowth`, the state size after every 1,000 operations (printed by crdt-size.ts).
 *
 * Every op is a real client body through parseOp where the row says "parse"; states live across
 * calls (each call continues the previous one's state), so the set rows stay at their size: each
 * op adds a new element and removes the oldest one alternately. The set rows run with limits wide
 * enough for their sizes (ROOMY), so they also measure sizes past a configured limit.
 */
import {
  applyToEncoded,
  crdtApply,
  crdtContext,
  crdtJoin,
  emptyCrdt,
  encodeCrdt,
  joinEncoded,
  parseOp,
  type CrdtOp,
  type CrdtState,
  type CrdtType,
} from '../../src/crdt/index.js';
import { crdtLimits } from '../../src/crdt/limits.js';
import { mergeVersions } from '../../src/versions/reconcile.js';
import { decodeRecord, encodeRecord, initVersions } from '../../src/versions/record.js';
import { newVersion } from '../../src/versions/version.js';
import { makeValue, seededRandom } from './fixtures.js';
import { runSuite, sink, type RatioSpec, type Row, type SuiteOptions, type TaskSpec } from './harness.js';

const ACTORS = ['node-1a2b3c4d', 'node-5e6f7a8b', 'node-9c0d1e2f'];
const NOW = 1_732_000_000_000_000;
/** Limits wide enough for every size measured here (past the default crdt.maxSetElements). */
const ROOMY = crdtLimits({ maxSetElements: 1_000_000, maxStateBytes: 268_435_456 });

const element = (n: number): string => `item-${String(n).padStart(6, '0')}`;

/** A set of `size` elements added round-robin by the three actors, as replicas would hold it after syncing. */
function setOf(size: number): CrdtState {
  const parts = ACTORS.map((actor, a) => {
    let s = emptyCrdt('set');
    const mine: string[] = [];
    for (let n = a; n < size; n += ACTORS.length) mine.push(element(n));
    for (let i = 0; i < mine.length; i += 1000) s = crdtApply(s, { type: 'set', add: mine.slice(i, i + 1000), remove: [] }, actor, { limits: ROOMY });
    return s;
  });
  return parts.reduce((x, y) => crdtJoin(x, y));
}

/** Alternately adds a new element and removes the oldest one, through one coordinating actor. */
class SetMix {
  private next: number;
  private oldest = 0;
  private add = true;
  constructor(
    public state: CrdtState,
    size: number,
  ) {
    this.next = size;
  }
  op(): CrdtOp {
    const op: CrdtOp = this.add ? { type: 'set', add: [element(this.next++)], remove: [] } : { type: 'set', add: [], remove: [element(this.oldest++)] };
    this.add = !this.add;
    return op;
  }
  body(): Record<string, unknown> {
    const op = this.op() as Extract<CrdtOp, { type: 'set' }>;
    return op.add.length > 0 ? { add: op.add } : { remove: op.remove, context: crdtContext(this.state) };
  }
}

function innerFor(size: number): number {
  return size <= 100 ? 64 : size <= 1000 ? 8 : 2;
}

export async function crdtSuite(opts: SuiteOptions): Promise<Row[]> {
  await initVersions();
  const tasks: TaskSpec[] = [];

  // Counter: three actors, the coordinating one increments.
  {
    let state = [1, 2, 3].reduce<CrdtState>((s, i) => crdtApply(s, { type: 'counter', increment: i }, ACTORS[i - 1]!), emptyCrdt('counter'));
    let bytes: Uint8Array = encodeCrdt(state);
    const inc: CrdtOp = { type: 'counter', increment: 1 };
    const INNER = 256;
    tasks.push(
      {
        name: 'counter increment: apply+encode',
        opsPerCall: INNER,
        note: `${bytes.length}-byte state, 3 actors`,
        fn: () => {
          for (let i = 0; i < INNER; i++) {
            state = crdtApply(state, inc, ACTORS[0]!);
            sink.n ^= encodeCrdt(state).length;
          }
        },
      },
      {
        name: 'counter increment: parse+decode+apply+encode',
        opsPerCall: INNER,
        note: 'applyToEncoded on the stored bytes, as the coordinating replica does',
        fn: () => {
          for (let i = 0; i < INNER; i++) bytes = applyToEncoded('counter', bytes, parseOp('counter', { increment: 1 }), ACTORS[0]!, NOW).bytes;
          sink.n ^= bytes.length;
        },
      },
    );
  }

  // LWW baseline: the shard's read-modify-write of a one-version record (100-byte value).
  {
    const value = makeValue(100);
    let counter = NOW;
    let stored = encodeRecord([newVersion({ node: ACTORS[0]!, counter: counter++, context: [], ts: NOW, tombstone: false, value, maxClockEntries: 16 })]);
    const INNER = 256;
    tasks.push({
      name: 'lww write: new version+decode+merge+encode',
      opsPerCall: INNER,
      note: 'one-version record, 100-byte value',
      fn: () => {
        for (let i = 0; i < INNER; i++) {
          const v = newVersion({ node: ACTORS[0]!, counter: counter++, context: [], ts: counter, tombstone: false, value, maxClockEntries: 16 });
          stored = encodeRecord(mergeVersions('lww', decodeRecord(stored), [v], 16));
        }
        sink.n ^= stored.length;
      },
    });
  }

  // Sets: add/remove mix at three sizes.
  for (const size of [100, 1000, 5000]) {
    const inner = innerFor(size);
    const base = setOf(size);
    const inMemory = new SetMix(base, size);
    const encoded = new SetMix(base, size);
    let bytes: Uint8Array = encodeCrdt(base);
    tasks.push(
      {
        name: `set ${size}: add/remove mix, apply+encode`,
        opsPerCall: inner,
        note: `${bytes.length}-byte state`,
        fn: () => {
          for (let i = 0; i < inner; i++) {
            const op = inMemory.op();
            inMemory.state = crdtApply(inMemory.state, op, ACTORS[0]!, { limits: ROOMY });
            sink.n ^= encodeCrdt(inMemory.state).length;
          }
        },
      },
      {
        name: `set ${size}: add/remove mix, parse+decode+apply+encode`,
        opsPerCall: inner,
        fn: () => {
          for (let i = 0; i < inner; i++) {
            const r = applyToEncoded('set', bytes, parseOp('set', encoded.body(), ROOMY), ACTORS[0]!, NOW, ROOMY);
            encoded.state = r.state;
            bytes = r.bytes;
          }
          sink.n ^= bytes.length;
        },
      },
    );
  }

  // Replica side: merging an incoming set state of 1,000 elements.
  {
    const base = setOf(1000);
    const newer = crdtApply(base, { type: 'set', add: ['x-new'], remove: [] }, ACTORS[0]!);
    const concurrent = crdtApply(base, { type: 'set', add: ['y-new'], remove: [] }, ACTORS[1]!);
    const [baseB, newerB, concB] = [encodeCrdt(base), encodeCrdt(newer), encodeCrdt(concurrent)];
    const INNER = 8;
    tasks.push(
      {
        name: 'set 1000: joinEncoded, newer state arrives',
        opsPerCall: INNER,
        note: 'stored ⊑ incoming: decode both, one leq pass, keep the incoming bytes',
        fn: () => {
          for (let i = 0; i < INNER; i++) sink.n ^= joinEncoded(baseB, newerB).length;
        },
      },
      {
        name: 'set 1000: joinEncoded, concurrent states',
        opsPerCall: INNER,
        note: 'decode both, join, encode',
        fn: () => {
          for (let i = 0; i < INNER; i++) sink.n ^= joinEncoded(newerB, concB).length;
        },
      },
    );
  }

  // Map: a shopping cart of 20 items, the example update.
  {
    let bytes: Uint8Array | undefined;
    const items = Array.from({ length: 20 }, (_, i) => element(i));
    bytes = applyToEncoded('map', bytes, parseOp('map', { update: { cart_map: { items_set: { add: items } }, total_counter: { increment: 1 } } }), ACTORS[0]!, NOW).bytes;
    let n = 0;
    const INNER = 64;
    tasks.push({
      name: 'map cart: parse+decode+apply+encode',
      opsPerCall: INNER,
      note: 'update {cart_map: {items_set: {add}}, total_counter: {increment}} on a 20-item cart',
      fn: () => {
        for (let i = 0; i < INNER; i++) {
          const body = { update: { cart_map: { items_set: { add: [element(20 + (n++ % 10))] } }, total_counter: { increment: 1 } } };
          bytes = applyToEncoded('map', bytes, parseOp('map', body), ACTORS[n % 3]!, NOW + n).bytes;
        }
        sink.n ^= bytes!.length;
      },
    });
  }

  return runSuite('crdt', tasks, opts);
}

export const crdtRatios: RatioSpec[] = [
  { label: 'counter increment vs LWW record write (read-modify-write)', a: 'crdt/counter increment: parse+decode+apply+encode', b: 'crdt/lww write: new version+decode+merge+encode' },
  { label: 'set add/remove: 100 vs 5,000 elements (full path)', a: 'crdt/set 100: add/remove mix, parse+decode+apply+encode', b: 'crdt/set 5000: add/remove mix, parse+decode+apply+encode' },
];

// ---- state size growth ----

export interface GrowthRow {
  workload: string;
  /** Encoded state bytes after 0, 1,000, 2,000, ... operations. */
  bytes: number[];
}

type Body = Record<string, unknown>;

/**
 * Runs `ops` operations of a workload spread over three coordinating replicas that exchange their
 * states every 10 operations (so contexts and clocks look like a live key's), and records the
 * size of the joined state every 1,000 operations.
 */
function grow(type: CrdtType, ops: number, next: (n: number, read: CrdtState, rand: () => number) => Body): number[] {
  const rand = seededRandom(14);
  let replicas = ACTORS.map(() => emptyCrdt(type));
  const sizes: number[] = [];
  const joined = (): CrdtState => replicas.reduce((x, y) => crdtJoin(x, y));
  for (let n = 0; n <= ops; n++) {
    if (n % 1000 === 0) sizes.push(encodeCrdt(joined()).length);
    if (n === ops) break;
    if (n % 10 === 0) {
      const all = joined();
      replicas = replicas.map(() => all);
    }
    const at = n % ACTORS.length;
    const body = next(n, replicas[at]!, rand);
    const parsed = parseOp(type, body, ROOMY);
    replicas[at] = crdtApply(replicas[at]!, parsed.op, ACTORS[at]!, { context: parsed.context, nowMicros: NOW + n, limits: ROOMY });
  }
  return sizes;
}

function valuesOf(s: CrdtState): string[] {
  return s.type === 'set' ? s.elems.map((e) => e[0]) : [];
}

export function crdtSizeGrowth(ops = 10_000): GrowthRow[] {
  const rows: GrowthRow[] = [];
  rows.push({ workload: 'counter: increments/decrements', bytes: grow('counter', ops, (_n, _s, r) => ({ increment: Math.floor(r() * 21) - 10 })) });
  rows.push({ workload: 'set: add-only, new 11-byte element each', bytes: grow('set', ops, (n) => ({ add: [element(n)] })) });
  rows.push({
    workload: 'set: 60% add / 40% remove over 1,000 elements',
    bytes: grow('set', ops, (_n, s, r) => {
      const present = valuesOf(s);
      if (present.length > 0 && r() < 0.4) return { remove: [present[Math.floor(r() * present.length)]!], context: crdtContext(s) };
      return { add: [element(Math.floor(r() * 1000))] };
    }),
  });
  rows.push({ workload: 'register: assign a 20-byte value', bytes: grow('register', ops, (n) => ({ assign: `value-${String(n).padStart(14, '0')}` })) });
  rows.push({ workload: 'flag: enable/disable', bytes: grow('flag', ops, (_n, s, r) => (r() < 0.5 ? { enable: true } : { disable: true, context: crdtContext(s) })) });
  rows.push({
    workload: 'map: cart (items_set add/remove over 100, total_counter, name_register, gift_flag)',
    bytes: grow('map', ops, (n, s, r) => {
      const cart = s.type === 'map' ? s.fields.find((f) => f[0] === 'items_set') : undefined;
      const items = cart !== undefined && cart[1].store.kind === 'set' ? cart[1].store.inner.map((e) => e[0]) : [];
      switch (n % 4) {
        case 0:
          return { update: { items_set: { add: [element(Math.floor(r() * 100))] } } };
        case 1:
          return items.length > 0 && r() < 0.6
            ? { update: { items_set: { remove: [items[Math.floor(r() * items.length)]!] } }, context: crdtContext(s) }
            : { update: { total_counter: { increment: 1 } } };
        case 2:
          return { update: { name_register: { assign: `name-${n % 50}` } } };
        default:
          return { update: { gift_flag: r() < 0.5 ? { enable: true } : { disable: true } } };
      }
    }),
  });
  return rows;
}
