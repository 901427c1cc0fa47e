/**
 * One-pass decoding of the common request frames (issue 12): a put, get, del or batch whose map
 * keys are all protocol fields and whose values are what a well-behaved client sends (unsigned
 * 32-bit integers, nil, bools, valid UTF-8 strs, bins, and a batch's array of such item maps). It
 * builds exactly the object msgpackr builds (bins as views into the payload) while it checks, so a
 * frame costs one walk instead of the shape check's walk plus msgpackr's decode.
 *
 * Anything else makes it return null and the frame takes the full path (checkRequestShape, then
 * msgpackr, then the field checks of ipc-request.ts), which names the offending field: floats,
 * integers beyond 32 bits or negative, ext types, non-str or unknown map keys, invalid UTF-8,
 * nesting other than `items`, a truncated payload or trailing bytes. The fast path therefore
 * never accepts a frame the full path would refuse, and never refuses one at all
 * (test/unit/ipc-fast-decode.test.ts checks both against msgpackr and checkRequestShape).
 */
import { isUtf8 } from 'node:buffer';
import { MsgpackReader, NOT_READ as NO } from '../util/msgpack-reader.js';
import { OP_FIELDS } from './ipc-protocol.js';

/** Keys the fast path takes: those of put, get, del and batch (other ops take the full path). */
const TOP_KEYS: ReadonlySet<string> = new Set(['id', 'op', ...OP_FIELDS.put, ...OP_FIELDS.get, ...OP_FIELDS.del, ...OP_FIELDS.batch]);
const ITEM_KEYS: ReadonlySet<string> = new Set(['op', ...OP_FIELDS.put, ...OP_FIELDS.get, ...OP_FIELDS.del]);
/** Map keys are few and short: decoded ASCII keys are looked up here instead of making a string per key. */
const KEY_CACHE = new Map<number, string>();



class Reader extends MsgpackReader {
  constructor(override readonly b: Buffer) {
    super(b);
  }

  /** A str of `n` bytes, or NO when it is not valid UTF-8 (the full path reports that). */
  str(n: number): string | typeof NO {
    const b = this.b;
    const start = this.pos;
    const end = start + n;
    if (end > b.length) return NO;
    this.pos = end;
    let i = start;
    while (i < end && b[i]! < 0x80) i++;
    if (i === end) return b.toString('latin1', start, end);
    const s = b.subarray(start, end);
    return isUtf8(s) ? s.toString('utf8') : NO;
  }

  /** A map key (a fixstr of known ASCII, the common case, hits the cache without building a string). */
  key(allowed: ReadonlySet<string>): string | typeof NO {
    const b = this.b;
    const t = b[this.pos];
    if (t === undefined || t < 0xa0 || t > 0xbf) return NO;
    const n = t & 0x1f;
    const start = this.pos + 1;
    if (start + n > b.length || n > 12) return NO;
    // A hash of the key's bytes (at most 12 ASCII letters) as the cache key; the cached string is compared to be sure.
    let h = n;
    for (let i = 0; i < n; i++) h = (Math.imul(h, 31) + b[start + i]!) | 0;
    const cached = KEY_CACHE.get(h);
    if (cached !== undefined && cached.length === n) {
      let same = true;
      for (let i = 0; i < n; i++) if (cached.charCodeAt(i) !== b[start + i]) same = false;
      if (same) {
        this.pos = start + n;
        return allowed.has(cached) ? cached : NO;
      }
    }
    this.pos++;
    const k = this.str(n);
    if (k === NO || !allowed.has(k)) return NO;
    if (!KEY_CACHE.has(h)) KEY_CACHE.set(h, k);
    return k;
  }

  /** A scalar field value: uint32, nil, bool, str, bin. */
  scalar(): unknown {
    const b = this.b;
    const t = b[this.pos++];
    if (t === undefined) return NO;
    if (t >= 0xa0 && t <= 0xbf) return this.str(t & 0x1f);
    if (t === 0xd9) return this.pos + 1 <= b.length ? this.str(b[this.pos++]!) : NO;
    if (t === 0xda) {
      if (this.pos + 2 > b.length) return NO;
      this.pos += 2;
      return this.str(b.readUInt16BE(this.pos - 2));
    }
    if (t >= 0xc4 && t <= 0xc6) {
      const n = this.binLength(t);
      if (n < 0) return NO;
      this.pos += n;
      return b.subarray(this.pos - n, this.pos);
    }
    return this.basic(t);
  }

  /** A map of scalar fields with keys from `allowed` (and, at the top, `items`), or NO. */
  map(allowed: ReadonlySet<string>, top: boolean): Record<string, unknown> | typeof NO {
    const n = this.mapLength();
    if (n < 0) return NO;
    const o: Record<string, unknown> = {};
    for (let i = 0; i < n; i++) {
      const k = this.key(allowed);
      if (k === NO) return NO;
      let v: unknown;
      if (top && k === 'items') {
        const len = this.arrayLength();
        // Each item is at least one byte: a count beyond what is left is malformed (full path).
        if (len < 0 || len > this.b.length - this.pos) return NO;
        const items = new Array<unknown>(len);
        for (let j = 0; j < len; j++) {
          const it = this.map(ITEM_KEYS, false);
          if (it === NO) return NO;
          items[j] = it;
        }
        v = items;
      } else {
        v = this.scalar();
        if (v === NO) return NO;
      }
      o[k] = v;
    }
    return o;
  }
}

/**
 * The request object msgpackr would decode from `payload`, for the common well-formed put, get,
 * del and batch frames; null for anything else (take the full path: it decides and reports).
 */
export function fastDecodeRequest(payload: Buffer): Record<string, unknown> | null {
  const r = new Reader(payload);
  const m = r.map(TOP_KEYS, true);
  if (m === NO || r.pos !== payload.length) return null;
  return m;
}
