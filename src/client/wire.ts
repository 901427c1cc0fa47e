/**
 * Requests and replies on the client side: argument checks, the optional fields each op sends,
 * and replies turned into results or errors.
 */
import { isErrorCode, type AnyReply, type BatchItem, type BatchItemResult, type ConsistencyReport, type IpcKey, type ItemError } from '../api/ipc-protocol.js';
import { RingkvError, type ErrorCode } from '../util/errors.js';
import type { GetResult, ScanResult, ScanRow, WriteResult } from './types.js';

export function keyOf(key: IpcKey): IpcKey {
  if (typeof key === 'string') {
    if (key.length === 0) throw new RingkvError('bad_request', 'key must be a non-empty string or byte array', { field: 'key' });
    return key;
  }
  if (key instanceof Uint8Array) {
    if (key.length === 0) throw new RingkvError('bad_request', 'key must be a non-empty string or byte array', { field: 'key' });
    // msgpackr encodes Buffers and plain Uint8Arrays alike as bin.
    return key;
  }
  throw new RingkvError('bad_request', 'key must be a non-empty string or byte array', { field: 'key' });
}

export function valueOf(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  throw new RingkvError('bad_request', 'value must be a Uint8Array or a string', { field: 'value' });
}

export function keyBytesLength(key: IpcKey): number {
  return typeof key === 'string' ? Buffer.byteLength(key) : key.length;
}

/** Copy the defined optional fields only (msgpack would send `undefined` as nil). */
export function withOpts<T extends object>(msg: T, opts: object, fields: readonly string[]): T {
  const o = opts as Record<string, unknown>;
  const m = msg as Record<string, unknown>;
  for (const f of fields) if (o[f] !== undefined) m[f] = o[f];
  return msg;
}
export const PUT_FIELDS = ['context', 'w', 'n', 'consistency', 'timeoutMs', 'ttl'] as const;
export const QUERY_FIELDS = ['consistency', 'pageSize', 'pagingState', 'timeoutMs'] as const;
export const GET_FIELDS = ['r', 'n', 'consistency', 'timeoutMs'] as const;
export const SCAN_FIELDS = ['r', 'n', 'consistency', 'timeoutMs', 'exclusive'] as const;
export const TABLE_FIELDS = ['conflicts', 'type', 'n', 'quorum'] as const;

/**
 * A failed reply as an error. `details` carries `field` for validation errors, and for a `get` too
 * large for one frame its `context`, `siblings` (nil where left out), `omitted` and `sizes`: a put
 * with that context resolves the key.
 */
export function replyError(r: AnyReply | ItemError): RingkvError {
  const code: ErrorCode = isErrorCode(r.code) ? r.code : 'internal';
  const x = r as Record<string, unknown>;
  const details: Record<string, unknown> = {};
  for (const k of ['field', 'context', 'siblings', 'omitted', 'sizes']) if (x[k] !== undefined) details[k] = x[k];
  // crdt_update / crdt_get / define_table errors carry theirs (precondition, limit, outcome).
  const d = x['details'];
  if (typeof d === 'object' && d !== null && !Array.isArray(d)) Object.assign(details, d);
  return new RingkvError(code, typeof r.message === 'string' ? r.message : 'request failed', Object.keys(details).length > 0 ? details : undefined);
}

export function toGetResult(r: Record<string, unknown>): GetResult {
  return withValues<GetResult>({ found: r['found'] === true, context: String(r['context'] ?? ''), consistency: r['consistency'] as ConsistencyReport }, r);
}

/** Copy a reply's `value` / `siblings` (whichever it has) onto `out`. */
export function withValues<T extends { value?: Buffer; siblings?: Buffer[] }>(out: T, r: Record<string, unknown>): T {
  if (r['value'] !== undefined) out.value = r['value'] as Buffer;
  if (r['siblings'] !== undefined) out.siblings = r['siblings'] as Buffer[];
  return out;
}

export function toScanResult(r: Record<string, unknown>): ScanResult {
  const raw = r['rows'];
  if (!Array.isArray(raw)) throw new RingkvError('internal', 'scan reply without rows');
  const rows = raw.map((x: Record<string, unknown>) => withValues<ScanRow>({ key: x['key'] as Buffer, found: true, context: String(x['context'] ?? '') }, x));
  const out: ScanResult = { rows, truncated: r['truncated'] === true, endOfRing: r['endOfRing'] === true, consistency: r['consistency'] as ConsistencyReport };
  if (typeof r['pagingState'] === 'string') out.pagingState = r['pagingState'];
  return out;
}

/** A thrown value as a RingkvError (`internal` unless it is one already). */
export function asClientError(e: unknown, code: ErrorCode = 'internal'): RingkvError {
  return e instanceof RingkvError ? e : new RingkvError(code, String(e));
}

/** One item's reply (an item of a batch's results, or a single op's reply) as the item's result. */
export function itemResultOf(op: BatchItem['op'], x: Record<string, unknown>): BatchItemResult {
  if (x['ok'] !== true) return itemError(replyError(x as AnyReply));
  return op === 'get' ? getItemResult(x) : writeItemResult(x);
}

/** A batch item's successful get as its result (the shape of `{ ok: true, ...toGetResult(x) }`, built without the spread). */
function getItemResult(x: Record<string, unknown>): BatchItemResult {
  return withValues<GetResult & { ok: true }>({ ok: true, found: x['found'] === true, context: String(x['context'] ?? ''), consistency: x['consistency'] as ConsistencyReport }, x) as BatchItemResult;
}

/** A batch item's successful put or delete as its result (`{ ok: true, ...toWriteResult(x) }`, without the spread). */
function writeItemResult(x: Record<string, unknown>): BatchItemResult {
  return { ok: true, context: String(x['context'] ?? ''), consistency: x['consistency'] as ConsistencyReport } as BatchItemResult;
}

export function toWriteResult(r: Record<string, unknown>): WriteResult {
  return { context: String(r['context'] ?? ''), consistency: r['consistency'] as ConsistencyReport };
}

export function itemToError(r: BatchItemResult & { ok: false }): RingkvError {
  return replyError(r);
}

export function writeOf(r: BatchItemResult): WriteResult {
  if (!r.ok) throw itemToError(r);
  const w = r as BatchItemResult & { ok: true } & WriteResult;
  return { context: w.context, consistency: w.consistency };
}

/** An error as a batch item result; its details (field, a too-large get's context, ...) ride along. */
export function itemError(e: RingkvError): BatchItemResult {
  return { ...(e.details ?? {}), ok: false, code: e.code, message: e.message } as BatchItemResult;
}

/** Internal marker subclasses must not leak to callers (they compare `instanceof RingkvError` only). */
export function plain(e: RingkvError, extra?: Record<string, unknown>): RingkvError {
  if (e.constructor === RingkvError && extra === undefined) return e;
  return new RingkvError(e.code, e.message, extra === undefined ? e.details : { ...(e.details ?? {}), ...extra });
}
