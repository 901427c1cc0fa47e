/**
 * Reply frames of the hot ops written by hand (issue 12): a put/del/get answer and a batch's
 * results go straight from the result into one frame buffer (length prefix included) through
 * src/util/msgpack-writer.ts, instead of building `{id, ok, ...value, rv}` objects and a generic
 * `pack` plus a copy behind the frame header per reply. The maps keep the key order and the
 * encodings the generic path produced (test/unit/ipc-reply-frames.test.ts compares the two), so
 * clients see the same bytes. Other replies (errors, scans, queries, ring, status) keep the
 * generic path: they are not per-op hot.
 */
import { FRAME_HEADER_BYTES } from '../net/frames.js';
import type { ConsistencyReport } from '../router/router.js';
import { encodedStr, MsgpackWriter } from '../util/msgpack-writer.js';
import type { BatchItemResult, GetOk, WriteOk } from './ipc-protocol.js';

/** The reply frames' writer: one per thread, separate from the record codec's (MsgpackWriter.shared). */
const writer = new MsgpackWriter();

// The constant map keys, encoded once.
const K = {
  id: encodedStr('id'),
  ok: encodedStr('ok'),
  rv: encodedStr('rv'),
  results: encodedStr('results'),
  found: encodedStr('found'),
  value: encodedStr('value'),
  siblings: encodedStr('siblings'),
  context: encodedStr('context'),
  consistency: encodedStr('consistency'),
  n: encodedStr('n'),
  required: encodedStr('required'),
  replied: encodedStr('replied'),
  clamped: encodedStr('clamped'),
  requested: encodedStr('requested'),
  ringReplicas: encodedStr('ringReplicas'),
};

/** A write result's map in a batch up to its fields: `{ok: true, ` (one copy per item). */
const WRITE_ITEM_HEAD = ((): Uint8Array => {
  const w = new MsgpackWriter();
  w.mapHeader(3);
  w.raw(K.ok);
  w.bool(true);
  return w.takeBuffer();
})();

function consistency(w: MsgpackWriter, c: ConsistencyReport): void {
  w.mapHeader(c.clamped !== undefined ? 4 : 3);
  w.raw(K.n);
  w.number(c.n);
  w.raw(K.required);
  w.number(c.required);
  w.raw(K.replied);
  w.number(c.replied);
  const cl = c.clamped;
  if (cl === undefined) return;
  w.raw(K.clamped);
  // The shape of ResolvedConsistency['clamped'] (a test compares this with the generic encoding of what resolveConsistency returns).
  w.mapHeader(2);
  w.raw(K.requested);
  w.mapHeader(2);
  w.raw(K.n);
  w.number(cl.requested.n);
  w.raw(K.required);
  w.number(cl.requested.required);
  w.raw(K.ringReplicas);
  w.number(cl.ringReplicas);
}

/**
 * The `consistency` key and report of the common reports (unclamped, each count below
 * REPORT_CACHE_BOUND), encoded once each: per write result, one copy instead of seven writer calls.
 * Indexed n | required << 4 | replied << 8; at most REPORT_CACHE_BOUND^3 small entries.
 */
const REPORT_CACHE_BOUND = 16;
const encodedReports: Array<Uint8Array | undefined> = new Array<Uint8Array | undefined>(REPORT_CACHE_BOUND ** 3);

function isSmallCount(x: number): boolean {
  return x >>> 0 === x && x < REPORT_CACHE_BOUND;
}

/** `consistency` key and map, from the cache when the report is a common one (the same bytes as `consistency`). */
function consistencyField(w: MsgpackWriter, c: ConsistencyReport): void {
  if (c.clamped === undefined && isSmallCount(c.n) && isSmallCount(c.required) && isSmallCount(c.replied)) {
    const i = c.n | (c.required << 4) | (c.replied << 8);
    let bytes = encodedReports[i];
    if (bytes === undefined) {
      const one = new MsgpackWriter();
      one.raw(K.consistency);
      consistency(one, c);
      bytes = encodedReports[i] = one.takeBuffer();
    }
    w.raw(bytes);
    return;
  }
  w.raw(K.consistency);
  consistency(w, c);
}

/** The fields of a write's answer after `ok`: context, consistency. */
function writeFields(w: MsgpackWriter, r: WriteOk): void {
  w.raw(K.context);
  w.str(r.context);
  consistencyField(w, r.consistency);
}

/** The fields of a get's answer after `ok`: found, context, consistency, then value or siblings. */
function getFields(w: MsgpackWriter, g: GetOk): void {
  w.raw(K.found);
  w.bool(g.found);
  w.raw(K.context);
  w.str(g.context);
  consistencyField(w, g.consistency);
  if (g.value !== undefined) {
    w.raw(K.value);
    w.bin(g.value);
  }
  if (g.siblings !== undefined) {
    w.raw(K.siblings);
    w.arrayHeader(g.siblings.length);
    for (const s of g.siblings) w.bin(s);
  }
}

function getFieldCount(g: GetOk): number {
  return 3 + (g.value !== undefined ? 1 : 0) + (g.siblings !== undefined ? 1 : 0);
}

function begin(id: number, fields: number): void {
  const w = writer.beginFrame(FRAME_HEADER_BYTES);
  w.mapHeader(fields);
  w.raw(K.id);
  w.number(id);
  w.raw(K.ok);
  w.bool(true);
}

function finish(rv: string): Buffer {
  const w = writer;
  w.raw(K.rv);
  w.str(rv);
  return w.takeFrame(FRAME_HEADER_BYTES);
}

/** `{id, ok: true, context, consistency, rv}` as a frame (a put's or del's answer). */
export function writeOkFrame(id: number, r: WriteOk, rv: string): Buffer {
  begin(id, 5);
  writeFields(writer, r);
  return finish(rv);
}

/** `{id, ok: true, found, context, consistency, value | siblings, rv}` as a frame (a get's answer). */
export function getOkFrame(id: number, g: GetOk, rv: string): Buffer {
  begin(id, 3 + getFieldCount(g));
  getFields(writer, g);
  return finish(rv);
}

/** `{id, ok: true, results, rv}` as a frame (a batch's answer); item errors take the generic writer. */
export function batchOkFrame(id: number, results: readonly BatchItemResult[], rv: string): Buffer {
  const w = writer;
  begin(id, 4);
  w.raw(K.results);
  w.arrayHeader(results.length);
  for (const r of results) {
    if (!r.ok) {
      w.value(r);
      continue;
    }
    if ('found' in r) {
      w.mapHeader(1 + getFieldCount(r));
      w.raw(K.ok);
      w.bool(true);
      getFields(w, r);
    } else {
      w.raw(WRITE_ITEM_HEAD);
      writeFields(w, r);
    }
  }
  return finish(rv);
}
