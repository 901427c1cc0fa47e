/**
 * Canonical binary form of CRDT states.
 *
 * Layout: byte 0 = CRDT_STATE_FORMAT, byte 1 = type code, then one msgpack value (arrays, strings
 * and numbers only: no maps, no msgpackr records, so the bytes depend only on the data). Every
 * list in a state is kept sorted and normalised (no empty entries), and msgpack writes a given
 * number or string one way, so equal states encode to equal bytes: Merkle anti-entropy compares
 * digests of these bytes.
 *
 * A state's clock is written once, flat `[actor, counter, actor, counter, ...]`; every dot inside
 * the state is `[actorIndex, counter]` into it (riak_dt's binary forms intern actors the same
 * way), so a set of 10,000 elements carries each node id once, not 10,000 times. A stored dot the
 * clock does not cover is corruption (the clock covers every dot a state holds).
 *
 * Decoding validates everything (order, ranges, coverage) and throws `corrupt CRDT state`: stored
 * bytes and peer frames are trusted to be ours, so anything else is disk or peer corruption.
 *
 * Pure module: no I/O.
 */
import { Packr } from 'msgpackr';
import { compareDots } from '../versions/version.js';
import { vclockProblem, type VClock, type VClockEntry } from '../versions/vclock.js';
import { NO_DOTS, type Dot, type Dots } from './dots.js';
import { corruptState } from './limits.js';
import { CRDT_TYPES, type CrdtType } from './types.js';

/**
 * First byte of every encoded state. Version records (src/versions/record.ts) start with
 * RECORD_FORMAT (0x01) and wide-column cells (src/wide/cell.ts) with CELL_FORMAT << 4 (0x10-0x1f),
 * so a stored value says which of the three it is (src/storage/records.ts). Bump when the layout
 * changes. (0x11 until the wide-column integration: it collided with a cell's first byte.)
 */
export const CRDT_STATE_FORMAT = 0x20;

/** Second byte: the type. */
export const CRDT_TYPE_CODES: Readonly<Record<CrdtType, number>> = Object.freeze({ counter: 1, set: 2, map: 3, register: 4, flag: 5 });

const TYPE_BY_CODE = new Map<number, CrdtType>(CRDT_TYPES.map((t) => [CRDT_TYPE_CODES[t], t]));

const packr = new Packr({
  useRecords: false,
  moreTypes: false,
  mapsAsObjects: true,
  int64AsType: 'number',
  // Decoded values must not alias the input buffer (RocksDB and socket buffers get reused).
  copyBuffers: true,
});

export function frameState(type: CrdtType, body: unknown): Buffer {
  const packed = packr.pack(body);
  // pack() returns a view into msgpackr's shared slab: copy behind the header so the result owns its memory.
  const out = Buffer.allocUnsafe(packed.length + 2);
  out[0] = CRDT_STATE_FORMAT;
  out[1] = CRDT_TYPE_CODES[type];
  packed.copy(out, 2);
  return out;
}

/** The type of an encoded state, from its header alone. */
export function peekStateType(buf: Uint8Array): CrdtType {
  if (buf.length < 3) throw corruptState(`too short (${buf.length} bytes)`);
  if (buf[0] !== CRDT_STATE_FORMAT) throw corruptState(`unknown format byte ${buf[0]}`);
  const t = TYPE_BY_CODE.get(buf[1]!);
  if (t === undefined) throw corruptState(`unknown type code ${buf[1]}`);
  return t;
}

export function unframeState(buf: Uint8Array): { type: CrdtType; body: unknown } {
  const type = peekStateType(buf);
  try {
    // msgpackr rejects trailing bytes; subarray is a view, not a copy.
    return { type, body: packr.unpack(buf.subarray(2)) };
  } catch (cause) {
    throw corruptState('undecodable msgpack', cause);
  }
}

// ---- validation helpers for decoders ----

/** A non-negative safe integer (and not -0, which msgpack would write differently from 0). */
export function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && !Object.is(x, -0);
}

export function isPositiveCount(x: unknown): x is number {
  return isCount(x) && x > 0;
}

export function expectArray(x: unknown, what: string): unknown[] {
  if (!Array.isArray(x)) throw corruptState(`${what} is not an array`);
  return x as unknown[];
}

export function expectTuples(x: unknown, width: number, what: string): unknown[] {
  const a = expectArray(x, what);
  if (a.length % width !== 0) throw corruptState(`${what} has ${a.length} items, not a multiple of ${width}`);
  return a;
}

export function expectString(x: unknown, what: string): string {
  if (typeof x !== 'string') throw corruptState(`${what} is not a string`);
  return x;
}

/** Throws unless `keys` are strictly increasing (sorted, no duplicates). */
export function expectStrictlySorted(prev: string | undefined, next: string, what: string): void {
  if (prev !== undefined && !(prev < next)) throw corruptState(`${what} out of order or duplicated (${JSON.stringify(next)})`);
}

// ---- clocks and dots ----

/** Bound on the intern table: actors are node ids, so a few per cluster; corrupt input cannot grow it past this. */
const INTERNED_ACTORS_MAX = 4096;
const internedActors = new Map<string, string>();

/**
 * One string object per actor id across decodes. Joins and leq compare the actors of two states
 * decoded separately; strings msgpack hands back compare by content on every `===` and `<`, which
 * profiled at ~70 % of a 1,000-element set leq. Interned (property-key) strings compare by pointer.
 */
export function internActor(actor: string): string {
  let s = internedActors.get(actor);
  if (s === undefined) {
    if (internedActors.size >= INTERNED_ACTORS_MAX) internedActors.clear();
    s = Object.keys({ [actor]: 0 })[0]!;
    internedActors.set(s, s);
  }
  return s;
}

export function clockToFlat(clock: VClock): (string | number)[] {
  const out: (string | number)[] = new Array<string | number>(clock.length * 2);
  for (let i = 0; i < clock.length; i++) {
    out[2 * i] = clock[i]![0];
    out[2 * i + 1] = clock[i]![1];
  }
  return out;
}

export function clockFromFlat(x: unknown, what = 'clock'): VClock {
  const flat = expectTuples(x, 2, what);
  const clock: VClockEntry[] = new Array<VClockEntry>(flat.length / 2);
  for (let i = 0; i < clock.length; i++) clock[i] = [flat[2 * i] as string, flat[2 * i + 1] as number];
  const problem = vclockProblem(clock);
  if (problem !== null) throw corruptState(`${what}: ${problem}`);
  for (let i = 0; i < clock.length; i++) clock[i] = [internActor(clock[i]![0]), clock[i]![1]];
  return clock;
}

/** Actor → index in the clock (the table dots are written against). */
export function actorIndex(clock: VClock): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < clock.length; i++) m.set(clock[i]![0], i);
  return m;
}

function indexOf(index: ReadonlyMap<string, number>, actor: string): number {
  const i = index.get(actor);
  if (i === undefined) throw new Error(`encode: actor ${actor} is not in the state's clock`);
  return i;
}

/** Appends `[index, counter]` per dot to `out`. */
export function pushDots(out: unknown[], dots: Dots, index: ReadonlyMap<string, number>): void {
  for (let i = 0; i < dots.length; i++) out.push(indexOf(index, dots[i]![0]), dots[i]![1]);
}

export function dotsToFlat(dots: Dots, index: ReadonlyMap<string, number>): number[] {
  const out: number[] = [];
  pushDots(out, dots, index);
  return out;
}

/** One `[index, counter]` dot read from `flat` at `pos`, checked against the clock. */
export function dotAt(flat: readonly unknown[], pos: number, clock: VClock, what: string): Dot {
  const idx = flat[pos];
  const counter = flat[pos + 1];
  if (typeof idx !== 'number' || !Number.isInteger(idx) || idx < 0 || idx >= clock.length) {
    throw corruptState(`${what}: actor index ${String(idx)} out of range`);
  }
  const entry = clock[idx]!;
  if (!isPositiveCount(counter) || counter > entry[1]) throw corruptState(`${what}: dot counter ${String(counter)} not covered by the clock`);
  return counter === entry[1] ? entry : [entry[0], counter];
}

/** A strictly sorted dot list from flat `[index, counter, ...]`. */
export function dotsFromFlat(x: unknown, clock: VClock, what: string): Dots {
  const flat = expectTuples(x, 2, what);
  if (flat.length === 0) return NO_DOTS;
  const out: Dot[] = new Array<Dot>(flat.length / 2);
  for (let i = 0; i < out.length; i++) {
    out[i] = dotAt(flat, 2 * i, clock, what);
    if (i > 0 && compareDots(out[i - 1]!, out[i]!) >= 0) throw corruptState(`${what}: dots out of order or duplicated`);
  }
  return out;
}
