/**
 * IPC request decoding and validation (pure; the connection handling is src/api/ipc-connection.ts).
 *
 * A request frame's payload is checked at the msgpack level before it is decoded, because the
 * decoder (msgpackr) erases distinctions the protocol cares about: it turns a map key `1` into the
 * property name "1" (so `{1: x}` and `{"1": x}` would be the same request), a float `2.0` into the
 * integer 2, and it decodes a 64-bit integer as a BigInt, which no field accepts and which used to
 * reach JSON.stringify in an error message ("Do not know how to serialize a BigInt" -> internal).
 * `checkRequestShape` walks the bytes once and reports, with the field's path:
 *   - a map key that is not a str,
 *   - a float anywhere (no field of the protocol is a float),
 *   - an integer outside +-2^53 (no field accepts one; 64-bit encodings of smaller values are
 *     fine: Go's msgpack encodes every int64 as 0xd3),
 *   - a str that is not valid UTF-8 (a lossy decode would make two keys one),
 *   - an extension type (the protocol uses none).
 * Problems inside `items[i]` fail only that batch item; any other fails the request; a bad `id`
 * or nesting deeper than any request needs closes the connection (see ipc-server.ts).
 *
 * Then `parseKvOp` / `parseScan` / ... validate each op's fields. A field the protocol knows but
 * that does not apply to the op (`w` on a get, `r` on a put, `value` on a del, `digest` on a put...)
 * is refused, not ignored: it means the client thinks the request does something it does not.
 * Fields the protocol does not know are ignored (newer clients, older servers). Nil is "absent".
 */
import { isUtf8 } from 'node:buffer';
import { Unpackr } from 'msgpackr';
import { CRDT_LIMIT_CEILINGS } from '../crdt/limits.js';
import { FrameError } from '../net/frames.js';
import { NO_CONSISTENCY, parseConsistency, type ConsistencySpec } from '../router/consistency.js';
import { SCAN_LIMITS } from '../router/scan.js';
import { validateTableName } from '../router/tables.js';
import { badRequest, RingkvError } from '../util/errors.js';
import { MAX_TTL_SECONDS } from '../versions/index.js';
import { RESULT_LIMITS } from '../wide/results.js';
import { isSelectStatement } from '../cql/split.js';
import { fastDecodeRequest } from './ipc-fast-decode.js';
import { MAX_REQUEST_ID, OP_FIELDS, type IpcLimits } from './ipc-protocol.js';

// ---------------------------------------------------------------------------------------------
// Frame payload -> request

/**
 * Deepest msgpack nesting a request may have (a batch item's fields are at depth 3). A crdt_update's
 * `operation` on a map nests two levels per map level (`update`, then the field) down to the
 * deepest map the CRDT limits allow (crdt.maxMapDepth, at most its ceiling), plus a set's list.
 */
export const MAX_REQUEST_NESTING = 2 * CRDT_LIMIT_CEILINGS.maxMapDepth + 8;

export interface ShapeProblem {
  /** Where: top-level field name, or ['items', i, field] inside a batch item. */
  path: Array<string | number>;
  message: string;
  /** `float`: a float, which only a `query`'s `params` may carry (a double column's value). */
  kind?: 'float';
}

export interface DecodedRequest {
  msg: unknown;
  /** Empty for a well-formed request. */
  problems: ShapeProblem[];
}

// int64AsType 'number': 64-bit encodings decode as numbers, never BigInts. Those beyond +-2^53
// (where a number is no longer exact) are reported by checkRequestShape and refused.
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true, int64AsType: 'number' });

/**
 * The IPC server's frame decoder: shape check, then msgpack decode. Throws FrameError for a
 * payload that is not msgpack or is nested deeper than MAX_REQUEST_NESTING (the connection closes).
 */
export function decodeRequest(payload: Buffer, maxProblems: number): DecodedRequest {
  // The common well-formed put/get/del/batch frames in one pass (ipc-fast-decode.ts); the rest here.
  const fast = fastDecodeRequest(payload);
  if (fast !== null) return { msg: fast, problems: NO_PROBLEMS };
  const problems = checkRequestShape(payload, maxProblems);
  let msg: unknown;
  try {
    msg = unpackr.unpack(payload);
  } catch (e) {
    throw new FrameError('malformed_frame', `frame payload is not valid msgpack: ${(e as Error).message}`);
  }
  return { msg, problems };
}

const NO_PROBLEMS = Object.freeze([]) as unknown as ShapeProblem[];

class Malformed extends Error {}

/**
 * Walk one msgpack value and report what the protocol refuses (see the top of this file). At most
 * `maxProblems` are kept (past it, one more problem at the top level says so). Throws FrameError
 * for truncated or invalid msgpack and for nesting deeper than MAX_REQUEST_NESTING.
 */
export function checkRequestShape(payload: Uint8Array, maxProblems: number): ShapeProblem[] {
  const w = new ShapeWalker(payload, maxProblems);
  try {
    w.value(0);
  } catch (e) {
    if (e instanceof Malformed) throw new FrameError('malformed_frame', `frame payload is not valid msgpack: ${e.message}`);
    throw e;
  }
  return w.problems;
}

const TWO_POW_21 = 0x200000; // a 64-bit integer whose high word reaches this is beyond 2^53

const INDEX = -1;
const LABEL = -2;

class ShapeWalker {
  readonly problems: ShapeProblem[] = [];
  private pos = 0;
  // The path to the value being walked, materialized only for a problem (this runs on every
  // request): segment i is an array index (segB INDEX, segA the index), a str map key (segA its
  // byte offset, segB its length), or a label (segB LABEL, text in segLabel).
  private readonly segA: number[] = [];
  private readonly segB: number[] = [];
  private readonly segLabel: string[] = [];
  private top = 0;
  private readonly view: DataView;
  private overflowed = false;

  constructor(
    private readonly b: Uint8Array,
    private readonly maxProblems: number,
  ) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new Malformed('truncated value');
  }
  private u8(): number {
    this.need(1);
    return this.b[this.pos++]!;
  }
  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }
  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }
  private skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  private problem(message: string, extra?: string | number, kind?: 'float'): void {
    if (this.problems.length >= this.maxProblems) {
      if (!this.overflowed) this.problems.push({ path: [], message: `more than ${this.maxProblems} malformed fields` });
      this.overflowed = true;
      return;
    }
    const path: Array<string | number> = [];
    for (let i = 0; i < this.top; i++) {
      const a = this.segA[i]!;
      const b = this.segB[i]!;
      path.push(b === INDEX ? a : b === LABEL ? this.segLabel[i]! : Buffer.from(this.b.buffer, this.b.byteOffset + a, b).toString('utf8'));
    }
    if (extra !== undefined) path.push(extra);
    this.problems.push(kind === undefined ? { path, message } : { path, message, kind });
  }

  private enter(a: number, b: number, label = ''): void {
    this.segA[this.top] = a;
    this.segB[this.top] = b;
    if (b === LABEL) this.segLabel[this.top] = label;
    this.top++;
  }

  /** A str's bytes (length `n`): checked for UTF-8 (an ASCII loop first; short strs dominate). */
  private str(n: number): boolean {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    const b = this.b;
    if (n <= 64) {
      let i = start;
      const end = start + n;
      while (i < end && b[i]! < 0x80) i++;
      if (i === end) return true;
    }
    if (isUtf8(b.subarray(start, start + n))) return true;
    this.problem('a str must be valid UTF-8 (send bytes as bin)');
    return false;
  }

  private int64(signed: boolean): void {
    this.need(8);
    const hi = signed ? this.view.getInt32(this.pos) : this.view.getUint32(this.pos);
    this.pos += 8;
    if (hi >= TWO_POW_21 || hi < -TWO_POW_21) this.problem('an integer beyond +-2^53 is out of range for every field');
  }

  value(depth: number): void {
    if (depth > MAX_REQUEST_NESTING) throw new FrameError('malformed_frame', `request nested deeper than ${MAX_REQUEST_NESTING} levels`);
    const t = this.u8();
    if (t <= 0x7f || t >= 0xe0) return;
    if (t <= 0x8f) return this.map(t & 0x0f, depth);
    if (t <= 0x9f) return this.array(t & 0x0f, depth);
    if (t <= 0xbf) return void this.str(t & 0x1f);
    switch (t) {
      case 0xc0:
      case 0xc2:
      case 0xc3:
        return;
      case 0xc4:
        return this.skip(this.u8());
      case 0xc5:
        return this.skip(this.u16());
      case 0xc6:
        return this.skip(this.u32());
      case 0xc7:
        this.skip(1 + this.u8());
        return this.problem('extension types are not used by this protocol');
      case 0xc8:
        this.skip(1 + this.u16());
        return this.problem('extension types are not used by this protocol');
      case 0xc9:
        this.skip(1 + this.u32());
        return this.problem('extension types are not used by this protocol');
      case 0xca:
        this.skip(4);
        return this.problem('a float is not allowed: every number in this protocol is an integer (except query params)', undefined, 'float');
      case 0xcb:
        this.skip(8);
        return this.problem('a float is not allowed: every number in this protocol is an integer (except query params)', undefined, 'float');
      case 0xcc:
      case 0xd0:
        return this.skip(1);
      case 0xcd:
      case 0xd1:
        return this.skip(2);
      case 0xce:
      case 0xd2:
        return this.skip(4);
      case 0xcf:
        return this.int64(false);
      case 0xd3:
        return this.int64(true);
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8:
        this.skip(1 + (1 << (t - 0xd4)));
        return this.problem('extension types are not used by this protocol');
      case 0xd9:
        return void this.str(this.u8());
      case 0xda:
        return void this.str(this.u16());
      case 0xdb:
        return void this.str(this.u32());
      case 0xdc:
        return this.array(this.u16(), depth);
      case 0xdd:
        return this.array(this.u32(), depth);
      case 0xde:
        return this.map(this.u16(), depth);
      case 0xdf:
        return this.map(this.u32(), depth);
      default:
        throw new Malformed(`byte 0x${t.toString(16)} starts no msgpack value`);
    }
  }

  private array(n: number, depth: number): void {
    for (let i = 0; i < n; i++) {
      this.enter(i, INDEX);
      this.value(depth + 1);
      this.top--;
    }
  }

  private map(n: number, depth: number): void {
    for (let i = 0; i < n; i++) {
      this.mapKey(depth); // enters the key's path segment
      this.value(depth + 1);
      this.top--;
    }
  }

  /** A map key: a str enters the path as itself; anything else is a problem and enters as a label. */
  private mapKey(depth: number): void {
    this.need(1);
    const t = this.b[this.pos]!;
    let n = -1;
    if (t >= 0xa0 && t <= 0xbf) {
      this.pos++;
      n = t & 0x1f;
    } else if (t === 0xd9) {
      this.pos++;
      n = this.u8();
    } else if (t === 0xda) {
      this.pos++;
      n = this.u16();
    } else if (t === 0xdb) {
      this.pos++;
      n = this.u32();
    }
    if (n >= 0) {
      const start = this.pos;
      if (this.str(n)) this.enter(start, n);
      else this.enter(0, LABEL, '(invalid UTF-8 key)');
      return;
    }
    const start = this.pos;
    const kind = keyKind(t);
    this.value(depth + 1); // skip the key
    const label = `(${kind} key)`;
    const got = kind === 'int' ? `the int ${describeValue(unpackr.unpack(this.b.subarray(start, this.pos)))}` : `a ${kind}`;
    this.problem(`map keys must be str, got ${got}`, label);
    this.enter(0, LABEL, label);
  }
}

function keyKind(t: number): string {
  if (t <= 0x7f || t >= 0xe0 || (t >= 0xcc && t <= 0xd3)) return 'int';
  if (t === 0xca || t === 0xcb) return 'float';
  if (t === 0xc0) return 'nil';
  if (t === 0xc2 || t === 0xc3) return 'bool';
  if (t >= 0xc4 && t <= 0xc6) return 'bin';
  if (t <= 0x8f || t === 0xde || t === 0xdf) return 'map';
  if (t <= 0x9f || t === 0xdc || t === 0xdd) return 'array';
  return 'ext';
}

/** A value for an error message; never throws (BigInts and cycles included), never huge. */
export function describeValue(v: unknown): string {
  if (typeof v === 'bigint') return `${v}`;
  if (v instanceof Uint8Array) return `bin(${v.length} bytes)`;
  let s: string;
  try {
    s = JSON.stringify(v) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** A path as a field name: `w`, `items[3].w`. */
export function fieldName(path: ReadonlyArray<string | number>): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Field validation

export type Msg = Record<string, unknown>;

export function isMsg(x: unknown): x is Msg {
  return typeof x === 'object' && x !== null && !Array.isArray(x) && !(x instanceof Uint8Array);
}

/** Valid ids are uint32 integers. */
export function parseId(v: unknown): number | null {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= MAX_REQUEST_ID) return v;
  return null;
}

export { OP_FIELDS };

export type OpName = keyof typeof OP_FIELDS;

const KNOWN_FIELDS: ReadonlySet<string> = new Set(['id', 'op', ...Object.values(OP_FIELDS).flat()]);
/** Per op: the protocol's fields that do not apply to it (`op` and `id` aside, which every request may carry). */
const FOREIGN_FIELDS = Object.fromEntries(
  (Object.keys(OP_FIELDS) as OpName[]).map((op) => [op, new Set([...KNOWN_FIELDS].filter((k) => k !== 'op' && k !== 'id' && !(OP_FIELDS[op] as readonly string[]).includes(k)))]),
) as unknown as Record<OpName, ReadonlySet<string>>;

/**
 * Refuse fields of the protocol that do not apply to `op` (nil counts as absent). `inBatch`: an
 * item of a batch, which carries no `id` of its own.
 */
export function refuseForeignFields(m: Msg, op: OpName, inBatch = false): void {
  const foreign = FOREIGN_FIELDS[op];
  // for-in, not Object.keys: no key array per request or batch item (the same own keys, in the
  // same order: requests are plain objects from the msgpack decode).
  for (const k in m) {
    if (!(foreign.has(k) || (inBatch && k === 'id')) || m[k] === undefined || m[k] === null) continue;
    throw badRequest(`${k} does not apply to ${inBatch ? 'a batch item ' : ''}${op}${inBatch && k === 'id' ? ' (items are answered by position)' : ''}`, { field: k });
  }
}

/**
 * A put, get or del as parsed. It is also the router's WriteRequest as it is (`tombstone`: a del),
 * so a write is handed to the router without another object per op.
 */
export interface KvOp {
  kind: 'put' | 'get' | 'del';
  table: string;
  key: Uint8Array;
  value: Uint8Array;
  tombstone: boolean;
  context: string | undefined;
  consistency: ConsistencySpec;
  timeoutMs: number | undefined;
  /** put: seconds until the value expires (undefined: never). */
  ttlSeconds: number | undefined;
}

// Decoded bins are views into the read chunk and stay so: shards get keys and values copied into
// their wire message, peers into frames, and the hint store detaches what it posts to its worker.
// A view pins its chunk only while its request is in flight (bounded per connection).

export function parseKey(v: unknown, limits: IpcLimits, field = 'key'): Uint8Array {
  let bytes: Uint8Array;
  if (typeof v === 'string') bytes = Buffer.from(v, 'utf8');
  else if (v instanceof Uint8Array) bytes = v;
  else throw badRequest(`${field} must be a non-empty string or bin`, { field });
  if (bytes.length === 0) throw badRequest(`${field} must be a non-empty string or bin`, { field });
  if (bytes.length > limits.maxKeyBytes) {
    throw new RingkvError('too_large', `${field} is ${bytes.length} bytes; the limit is ${limits.maxKeyBytes}`, { field });
  }
  return bytes;
}

function parseValue(v: unknown, limits: IpcLimits): Uint8Array {
  let bytes: Uint8Array;
  if (v instanceof Uint8Array) bytes = v;
  else if (typeof v === 'string') bytes = Buffer.from(v, 'utf8');
  else throw badRequest('value is required: bin (stored byte-exact) or str (stored as UTF-8)', { field: 'value' });
  if (bytes.length > limits.maxValueBytes) {
    throw new RingkvError('too_large', `value is ${bytes.length} bytes; the limit is ${limits.maxValueBytes}`, { field: 'value' });
  }
  return bytes;
}

export function parseTimeout(v: unknown, field = 'timeoutMs'): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 600_000) {
    throw badRequest(`${field} must be an integer between 1 and 600000, got ${describeValue(v)}`, { field });
  }
  return v;
}

function parseContext(m: Msg): string | undefined {
  const c = m['context'];
  if (c !== undefined && c !== null && typeof c !== 'string') throw badRequest('context must be a string returned by a read', { field: 'context' });
  return c === null || c === '' ? undefined : c;
}

/** A put, get or del (a request or a batch item). */
export function parseKvOp(m: Msg, limits: IpcLimits, defaultTimeout: number | undefined, inBatch = false): KvOp {
  const op = m['op'];
  if (op !== 'put' && op !== 'get' && op !== 'del') throw badRequest(`op must be put, get or del, got ${describeValue(op)}`, { field: 'op' });
  refuseForeignFields(m, op, inBatch);
  const table = validateTableName(m['table']);
  const key = parseKey(m['key'], limits);
  const value = op === 'put' ? parseValue(m['value'], limits) : NO_VALUE;
  const context = op === 'get' ? undefined : parseContext(m);
  const level = m['consistency'] ?? undefined;
  const n = m['n'] ?? undefined;
  const count = (op === 'get' ? m['r'] : m['w']) ?? undefined;
  // Most ops name no consistency: they share one empty (frozen) spec instead of two objects each.
  const consistency =
    level === undefined && n === undefined && count === undefined
      ? NO_CONSISTENCY
      : op === 'get'
        ? parseConsistency({ consistency: level, n, r: count })
        : parseConsistency({ consistency: level, n, w: count });
  const timeoutMs = parseTimeout(m['timeoutMs']) ?? defaultTimeout;
  const ttlSeconds = op === 'put' ? parseTtl(m['ttl']) : undefined;
  return { kind: op, table, key, value, tombstone: op === 'del', context, consistency, timeoutMs, ttlSeconds };
}

/** The value of a get or del (none): one shared empty array. */
const NO_VALUE = new Uint8Array(0);

/** A put's `ttl`: whole seconds, 1..MAX_TTL_SECONDS (nil or 0: no expiry). */
export function parseTtl(v: unknown): number | undefined {
  if (v === undefined || v === null || v === 0) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > MAX_TTL_SECONDS) {
    throw badRequest(`ttl must be an integer number of seconds between 0 and ${MAX_TTL_SECONDS}, got ${describeValue(v)}`, { field: 'ttl' });
  }
  return v;
}

export interface QueryParsed {
  query: string;
  /** A SELECT: it changes nothing, so the server may run it again (a reply that did not fit the connection's reply bytes). */
  readOnly: boolean;
  params: unknown[] | undefined;
  consistency: ConsistencySpec | undefined;
  pageSize: number | undefined;
  pagingState: string | undefined;
  timeoutMs: number | undefined;
}

/** A `query` op: one CQL statement with its bind parameters (any msgpack values) and options. */
export function parseQuery(m: Msg): QueryParsed {
  refuseForeignFields(m, 'query');
  const q = m['query'];
  if (typeof q !== 'string' || q.trim() === '') throw badRequest('query must be a non-empty str (one CQL statement)', { field: 'query' });
  const params = m['params'];
  if (params !== undefined && params !== null && !Array.isArray(params)) throw badRequest('params must be an array (one value per ? marker)', { field: 'params' });
  const c = m['consistency'];
  if (c !== undefined && c !== null && typeof c !== 'string') throw badRequest('consistency must be one of ONE, TWO, QUORUM, ALL, ANY', { field: 'consistency' });
  const ps = m['pageSize'];
  if (ps !== undefined && ps !== null && (typeof ps !== 'number' || !Number.isInteger(ps) || ps < 1 || ps > RESULT_LIMITS.maxPageRows)) {
    throw badRequest(`pageSize must be an integer between 1 and ${RESULT_LIMITS.maxPageRows}, got ${describeValue(ps)}`, { field: 'pageSize' });
  }
  const st = m['pagingState'];
  if (st !== undefined && st !== null && (typeof st !== 'string' || st === '')) throw badRequest('pagingState must be the str a previous page returned', { field: 'pagingState' });
  return {
    query: q,
    readOnly: isSelectStatement(q),
    params: (params ?? undefined) as unknown[] | undefined,
    consistency: typeof c === 'string' ? parseConsistency({ consistency: c }) : undefined,
    pageSize: (ps ?? undefined) as number | undefined,
    pagingState: (st ?? undefined) as string | undefined,
    timeoutMs: parseTimeout(m['timeoutMs']),
  };
}

export interface ScanParsed {
  table: string;
  /** Where the scan starts: a key's token, or where a previous page stopped. */
  from: { key: Uint8Array; exclusive: boolean } | { pagingState: string };
  limit: number;
  consistency: ConsistencySpec;
  timeoutMs: number | undefined;
}

export function parseScan(m: Msg, limits: IpcLimits): ScanParsed {
  refuseForeignFields(m, 'scan');
  const table = validateTableName(m['table']);
  const limit = m['limit'];
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > SCAN_LIMITS.maxLimit) {
    throw badRequest(`limit must be an integer between 1 and ${SCAN_LIMITS.maxLimit}, got ${describeValue(limit)}`, { field: 'limit' });
  }
  const ex = m['exclusive'];
  if (ex !== undefined && ex !== null && typeof ex !== 'boolean') throw badRequest('exclusive must be a bool', { field: 'exclusive' });
  const ps = m['pagingState'];
  let from: ScanParsed['from'];
  if (ps !== undefined && ps !== null) {
    if (typeof ps !== 'string' || ps === '') throw badRequest('pagingState must be the non-empty str a previous scan reply returned', { field: 'pagingState' });
    if (m['key'] !== undefined && m['key'] !== null) throw badRequest('give either key (a new scan) or pagingState (the next page), not both', { field: 'key' });
    if (ex === true) throw badRequest('exclusive applies to a scan from a key, not to a pagingState', { field: 'exclusive' });
    from = { pagingState: ps };
  } else {
    from = { key: parseKey(m['key'], limits), exclusive: ex === true };
  }
  const consistency = parseConsistency({ consistency: m['consistency'] ?? undefined, n: m['n'] ?? undefined, r: m['r'] ?? undefined });
  return { table, from, limit, consistency, timeoutMs: parseTimeout(m['timeoutMs']) };
}

/** The `digest` of a `ring` request: a str or absent. */
export function parseDigest(m: Msg): string | undefined {
  refuseForeignFields(m, 'ring');
  const d = m['digest'];
  if (d === undefined || d === null) return undefined;
  if (typeof d !== 'string') throw badRequest(`digest must be the str of a ring's digest, got ${describeValue(d)}`, { field: 'digest' });
  return d;
}
