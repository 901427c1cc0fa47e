/**
 * CQL values: how each column type is held in JS, coerced from CQL literals and from JSON /
 * msgpack bind parameters, serialized into a cell's value bytes, and rendered to JSON.
 *
 * Held as:    text → string; int, float, double → number; bigint, counter → bigint;
 *             boolean → boolean; timestamp → number (Unix ms); uuid, timeuuid → lowercase text;
 *             blob → Uint8Array.
 * Cell bytes: Cassandra's native serialization: text UTF-8, int 4 bytes BE, bigint/counter 8
 *             bytes BE, double/float IEEE BE, boolean 1 byte, timestamp 8 bytes BE signed ms,
 *             uuids 16 bytes, blob raw.
 * JSON out:   timestamps as ISO-8601 (`2023-01-01T00:00:00.000Z`), blobs as `0x…` hex, bigints
 *             as numbers when they are safe integers and as decimal strings otherwise, NaN and
 *             ±Infinity as the strings "NaN", "Infinity", "-Infinity".
 *
 * Timestamp text without a zone is read as UTC (Cassandra uses the coordinator's zone; a
 * cluster whose nodes may differ in zone should not depend on that).
 *
 * Pure module (the evaluation context supplies the clock and uuid sources).
 */
import type { CqlType, Term } from '../cql/ast.js';
import { badRequest, invariant } from '../util/errors.js';
import { isUuidText, randomUuid, timeuuidToMillis, uuidFromBytes, uuidToBytes, uuidVersion } from './uuid.js';

export type CqlValue = string | number | bigint | boolean | Uint8Array;

/** What evaluating `now()`, `toTimestamp(now())`, `uuid()` needs. */
export interface EvalContext {
  nowMs: number;
  /** A fresh v1 uuid (TimeuuidGenerator.next). */
  timeuuid(): Uint8Array;
  randomUuid?: () => Uint8Array;
}

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;
const BIGINT_MIN = -(1n << 63n);
const BIGINT_MAX = (1n << 63n) - 1n;
/** The range of a JS Date, so every timestamp renders as ISO text. */
const TIMESTAMP_MAX_ABS_MS = 8.64e15;

const TIMESTAMP_RE =
  /^(-?\d{4,6})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** Parses Cassandra's timestamp text forms (date, date time, optional fraction and zone) or epoch-ms digits; null if neither. */
export function parseTimestampText(s: string): number | null {
  const t = s.trim();
  if (/^-?\d+$/.test(t)) {
    const n = Number(t);
    return Number.isSafeInteger(n) && Math.abs(n) <= TIMESTAMP_MAX_ABS_MS ? n : null;
  }
  const m = TIMESTAMP_RE.exec(t);
  if (m === null) return null;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zone = 'Z'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return null;
  const ms = Number((frac + '000').slice(0, 3));
  let utc = Date.UTC(year, month - 1, day, hour, minute, second, ms);
  // Date.UTC maps years 0-99 to 1900-1999; set the year exactly.
  const date = new Date(utc);
  date.setUTCFullYear(year);
  utc = date.getTime();
  if (new Date(utc).getUTCDate() !== day) return null; // 2023-02-30
  if (zone !== 'Z') {
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offMin = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0');
    utc -= sign * offMin * 60_000;
  }
  return Number.isFinite(utc) && Math.abs(utc) <= TIMESTAMP_MAX_ABS_MS ? utc : null;
}

function literalKind(t: Term): string {
  switch (t.kind) {
    case 'string':
      return 'STRING';
    case 'integer':
      return 'INTEGER';
    case 'float':
      return 'FLOAT';
    case 'boolean':
      return 'BOOLEAN';
    case 'blob':
      return 'HEX';
    case 'uuid':
      return 'UUID';
    default:
      return t.kind.toUpperCase();
  }
}

function literalText(t: Term): string {
  switch (t.kind) {
    case 'string':
      return t.value;
    case 'integer':
    case 'float':
      return t.text;
    case 'boolean':
      return String(t.value);
    case 'blob':
      return `0x${t.hex}`;
    case 'uuid':
      return t.value;
    default:
      return t.kind;
  }
}

/** Cassandra's message for a literal of the wrong kind: names the value, the column and its type. */
function invalidLiteral(t: Term, column: string, type: CqlType, why?: string): Error {
  return badRequest(`Invalid ${literalKind(t)} constant (${literalText(t)}) for "${column}" of type ${type}${why ? `: ${why}` : ''}`, { column, type });
}

function checkInt(n: number): boolean {
  return Number.isInteger(n) && n >= INT_MIN && n <= INT_MAX;
}

function checkBigint(b: bigint): boolean {
  return b >= BIGINT_MIN && b <= BIGINT_MAX;
}

function parseFloatText(text: string): number {
  if (text === 'NaN' || text === '-NaN') return NaN;
  if (text === 'Infinity') return Infinity;
  if (text === '-Infinity') return -Infinity;
  return Number(text);
}

/** A canonical uuid of the right version for the type, or null. */
function checkedUuid(s: string, type: 'uuid' | 'timeuuid'): string | null {
  if (!isUuidText(s)) return null;
  const lower = s.toLowerCase();
  if (type === 'timeuuid' && uuidVersion(uuidToBytes(lower)) !== 1) return null;
  return lower;
}

/**
 * A literal or function-call term → a value of `type` for `column`. `null` for NULL (a
 * tombstone in a write). Bind markers must be resolved by the caller (coerceParam).
 */
export function coerceLiteral(t: Term, column: string, type: CqlType, ctx: EvalContext): CqlValue | null {
  switch (t.kind) {
    case 'null':
      return null;
    case 'bind':
      invariant(false, 'bind markers are resolved before coerceLiteral');
      break;
    case 'call':
      return evalCall(t, column, type, ctx);
    default:
      break;
  }
  switch (type) {
    case 'text':
      if (t.kind === 'string') return t.value;
      break;
    case 'int':
      if (t.kind === 'integer') {
        const n = Number(t.text);
        if (!checkInt(n)) throw invalidLiteral(t, column, type, 'out of the 32-bit range');
        return n;
      }
      break;
    case 'bigint':
    case 'counter':
      if (t.kind === 'integer') {
        const b = BigInt(t.text);
        if (!checkBigint(b)) throw invalidLiteral(t, column, type, 'out of the 64-bit range');
        return b;
      }
      break;
    case 'double':
    case 'float':
      if (t.kind === 'integer' || t.kind === 'float') {
        const n = parseFloatText(t.text);
        return type === 'float' ? Math.fround(n) : n;
      }
      break;
    case 'boolean':
      if (t.kind === 'boolean') return t.value;
      break;
    case 'timestamp':
      if (t.kind === 'integer') {
        const n = Number(t.text);
        if (!Number.isSafeInteger(n) || Math.abs(n) > TIMESTAMP_MAX_ABS_MS) throw invalidLiteral(t, column, type, 'out of range');
        return n;
      }
      if (t.kind === 'string') {
        const ms = parseTimestampText(t.value);
        if (ms === null) throw invalidLiteral(t, column, type, "expected 'yyyy-mm-dd[ hh:mm[:ss[.fff]]][zone]' or epoch milliseconds");
        return ms;
      }
      break;
    case 'uuid':
    case 'timeuuid':
      if (t.kind === 'uuid' || t.kind === 'string') {
        const u = checkedUuid(t.value, type);
        if (u === null) throw invalidLiteral(t, column, type, type === 'timeuuid' ? 'expected a version 1 uuid' : 'expected a uuid');
        return u;
      }
      break;
    case 'blob':
      if (t.kind === 'blob') {
        if (t.hex.length % 2 !== 0) throw invalidLiteral(t, column, type, 'odd number of hex digits');
        return Buffer.from(t.hex, 'hex');
      }
      break;
  }
  throw invalidLiteral(t, column, type);
}

function evalCall(t: Extract<Term, { kind: 'call' }>, column: string, type: CqlType, ctx: EvalContext): CqlValue {
  const wrong = (): Error => badRequest(`${t.name}() returns ${returnType(t)}, not ${type} (column "${column}")`, { column, type });
  const arity = (n: number): void => {
    if (t.args.length !== n) throw badRequest(`${t.name}() takes ${n} argument${n === 1 ? '' : 's'}, got ${t.args.length}`);
  };
  switch (t.name) {
    case 'now':
    case 'currenttimeuuid':
      arity(0);
      if (type !== 'timeuuid' && type !== 'uuid') throw wrong();
      return uuidFromBytes(ctx.timeuuid());
    case 'uuid':
      arity(0);
      if (type !== 'uuid') throw wrong();
      return uuidFromBytes((ctx.randomUuid ?? randomUuid)());
    case 'currenttimestamp':
      arity(0);
      if (type !== 'timestamp') throw wrong();
      return ctx.nowMs;
    case 'totimestamp': {
      arity(1);
      if (type !== 'timestamp') throw wrong();
      const inner = coerceLiteral(t.args[0]!, column, 'timeuuid', ctx);
      if (inner === null) throw badRequest(`toTimestamp() of null for "${column}"`);
      return timeuuidToMillis(uuidToBytes(inner as string));
    }
    case 'token':
      throw badRequest(`token() is only allowed in WHERE token(...) relations (column "${column}")`);
  }
}

function returnType(t: Extract<Term, { kind: 'call' }>): string {
  switch (t.name) {
    case 'now':
    case 'currenttimeuuid':
      return 'timeuuid';
    case 'uuid':
      return 'uuid';
    case 'currenttimestamp':
    case 'totimestamp':
      return 'timestamp';
    case 'token':
      return 'bigint';
  }
}

/**
 * A bind parameter (JSON or msgpack) → a value of `type`. `index` is the marker's 0-based
 * position, named in errors.
 */
export function coerceParam(v: unknown, index: number, column: string, type: CqlType): CqlValue | null {
  const bad = (expected: string): Error =>
    badRequest(`Invalid value for bind marker ${index + 1} ("${column}" of type ${type}): expected ${expected}, got ${describeParam(v)}`, { column, type, marker: index + 1 });
  if (v === null || v === undefined) return null;
  switch (type) {
    case 'text':
      if (typeof v === 'string') return v;
      throw bad('a string');
    case 'int':
      if (typeof v === 'number' && checkInt(v)) return v;
      if (typeof v === 'bigint' && v >= BigInt(INT_MIN) && v <= BigInt(INT_MAX)) return Number(v);
      throw bad('a 32-bit integer');
    case 'bigint':
    case 'counter': {
      let b: bigint | null = null;
      if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v);
      else if (typeof v === 'bigint') b = v;
      else if (typeof v === 'string' && /^-?\d{1,20}$/.test(v)) b = BigInt(v);
      if (b !== null && checkBigint(b)) return b;
      throw bad('a 64-bit integer (a number, or a decimal string beyond 2^53)');
    }
    case 'double':
    case 'float': {
      let n: number | null = null;
      if (typeof v === 'number') n = v;
      else if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') n = parseFloatText(v);
      if (n === null) throw bad('a number (or "NaN", "Infinity", "-Infinity")');
      return type === 'float' ? Math.fround(n) : n;
    }
    case 'boolean':
      if (typeof v === 'boolean') return v;
      throw bad('true or false');
    case 'timestamp': {
      if (typeof v === 'number' && Number.isSafeInteger(v) && Math.abs(v) <= TIMESTAMP_MAX_ABS_MS) return v;
      if (typeof v === 'string') {
        const ms = parseTimestampText(v);
        if (ms !== null) return ms;
      }
      throw bad('an ISO-8601 date/time string or epoch milliseconds');
    }
    case 'uuid':
    case 'timeuuid': {
      const u = typeof v === 'string' ? checkedUuid(v, type) : null;
      if (u !== null) return u;
      throw bad(type === 'timeuuid' ? 'a version 1 uuid string' : 'a uuid string');
    }
    case 'blob': {
      if (v instanceof Uint8Array) return v;
      if (typeof v === 'string' && /^0[xX]([0-9a-fA-F]{2})*$/.test(v)) return Buffer.from(v.slice(2), 'hex');
      const b64 = (v as { $base64?: unknown }).$base64;
      if (typeof v === 'object' && typeof b64 === 'string') return Buffer.from(b64, 'base64');
      throw bad('bytes, a 0x… hex string or {"$base64": "…"}');
    }
  }
}

function describeParam(v: unknown): string {
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  if (typeof v === 'bigint') return `${v}`;
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

/** The cell value bytes of a value (Cassandra's native serialization). */
export function serializeValue(type: CqlType, v: CqlValue): Uint8Array {
  switch (type) {
    case 'text':
      return Buffer.from(v as string, 'utf8');
    case 'int': {
      const b = Buffer.allocUnsafe(4);
      b.writeInt32BE(v as number, 0);
      return b;
    }
    case 'bigint':
    case 'counter': {
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(v as bigint, 0);
      return b;
    }
    case 'double': {
      const b = Buffer.allocUnsafe(8);
      b.writeDoubleBE(v as number, 0);
      return b;
    }
    case 'float': {
      const b = Buffer.allocUnsafe(4);
      b.writeFloatBE(v as number, 0);
      return b;
    }
    case 'boolean':
      return Uint8Array.of(v ? 1 : 0);
    case 'timestamp': {
      const b = Buffer.allocUnsafe(8);
      b.writeBigInt64BE(BigInt(v as number), 0);
      return b;
    }
    case 'uuid':
    case 'timeuuid':
      return uuidToBytes(v as string);
    case 'blob':
      return v as Uint8Array;
  }
}

const FIXED_SIZE: Partial<Record<CqlType, number>> = { int: 4, bigint: 8, counter: 8, double: 8, float: 4, boolean: 1, timestamp: 8, uuid: 16, timeuuid: 16 };

/** Inverse of serializeValue; throws on bytes of the wrong size for the type. */
export function deserializeValue(type: CqlType, b: Uint8Array): CqlValue {
  const size = FIXED_SIZE[type];
  if (size !== undefined && b.length !== size) throw new Error(`corrupt ${type} value: ${b.length} bytes, expected ${size}`);
  const d = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  switch (type) {
    case 'text':
      return d.toString('utf8');
    case 'int':
      return d.readInt32BE(0);
    case 'bigint':
    case 'counter':
      return d.readBigInt64BE(0);
    case 'double':
      return d.readDoubleBE(0);
    case 'float':
      return d.readFloatBE(0);
    case 'boolean':
      return d[0] !== 0;
    case 'timestamp':
      return Number(d.readBigInt64BE(0));
    case 'uuid':
    case 'timeuuid':
      return uuidFromBytes(d);
    case 'blob':
      return Buffer.from(d); // a copy: the input may be a reused iterator buffer
  }
}

export type JsonValue = string | number | boolean | null;

/** A value as JSON (see the module comment). */
export function valueToJson(type: CqlType, v: CqlValue | null): JsonValue {
  if (v === null) return null;
  switch (type) {
    case 'bigint':
    case 'counter': {
      const b = v as bigint;
      return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString();
    }
    case 'double':
    case 'float': {
      const n = v as number;
      return Number.isFinite(n) ? n : String(n);
    }
    case 'timestamp':
      return new Date(v as number).toISOString();
    case 'blob':
      return `0x${Buffer.from(v as Uint8Array).toString('hex')}`;
    default:
      return v as string | number | boolean;
  }
}

/** NaN can be stored in a regular column but not in a clustering key. */
export function isNaNValue(type: CqlType, v: CqlValue): boolean {
  return (type === 'double' || type === 'float') && Number.isNaN(v as number);
}
