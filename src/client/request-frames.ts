/**
 * A batch request frame written by hand (issue 12): `{id, op: 'batch', items, timeoutMs?}` straight
 * from the wire items into one frame buffer (length prefix included) through the shared msgpack
 * writer, instead of a spread `{id, ...msg}` object, msgpackr's generic `pack` and a copy behind the
 * frame header per request. Single puts, gets and deletes go this way too (the client coalesces
 * them into batches). The bytes are the ones `encodeFrame` writes for the same object
 * (test/unit/client-request-frames.test.ts compares them), so the server sees no difference.
 */
import type { BatchItem } from '../api/ipc-protocol.js';
import { encodeFrame, FRAME_HEADER_BYTES } from '../net/frames.js';
import { encodedStr, MsgpackWriter } from '../util/msgpack-writer.js';

/** What a connection sends: a request that writes its own frame once it has an id. */
export interface FrameEncoder {
  encodeFrame(id: number): Buffer;
}

export function isFrameEncoder(msg: object): msg is FrameEncoder {
  return typeof (msg as Partial<FrameEncoder>).encodeFrame === 'function';
}

/** The client's frame writer (one per thread): a frame is written start to finish, then copied out. */
const writer = new MsgpackWriter();

const ID = encodedStr('id');
const OP = encodedStr('op');
const BATCH = encodedStr('batch');
const ITEMS = encodedStr('items');
const TIMEOUT_MS = encodedStr('timeoutMs');
/** The field names of batch items, encoded once (any other name is written as it comes). */
const ITEM_KEYS: Readonly<Record<string, Uint8Array | undefined>> = Object.assign(
  Object.create(null) as Record<string, Uint8Array>,
  Object.fromEntries(['op', 'table', 'key', 'value', 'context', 'w', 'r', 'n', 'consistency', 'timeoutMs', 'ttl'].map((k) => [k, encodedStr(k)])),
);

/** Items [start, end) of a batch, sent as one frame. */
export class BatchRequest implements FrameEncoder {
  constructor(
    readonly items: readonly BatchItem[],
    readonly start: number,
    readonly end: number,
    readonly timeoutMs: number | undefined,
  ) {}

  get length(): number {
    return this.end - this.start;
  }

  encodeFrame(id: number): Buffer {
    try {
      return this.write(id);
    } catch (e) {
      // A field value outside the writer's vocabulary (a caller's bigint, a Date, ...): msgpackr
      // encodes whatever it can and the server names what it refuses, as before this writer.
      if (!(e instanceof TypeError)) throw e;
      const msg: Record<string, unknown> = { id, op: 'batch', items: this.items.slice(this.start, this.end) };
      if (this.timeoutMs !== undefined) msg['timeoutMs'] = this.timeoutMs;
      return encodeFrame(msg);
    }
  }

  private write(id: number): Buffer {
    const w = writer.reset();
    const at = w.skip(FRAME_HEADER_BYTES);
    w.mapHeader(this.timeoutMs !== undefined ? 4 : 3);
    w.raw(ID);
    w.number(id);
    w.raw(OP);
    w.raw(BATCH);
    w.raw(ITEMS);
    w.arrayHeader(this.end - this.start);
    for (let i = this.start; i < this.end; i++) writeItem(w, this.items[i]!);
    if (this.timeoutMs !== undefined) {
      w.raw(TIMEOUT_MS);
      w.number(this.timeoutMs);
    }
    w.setUint32At(at, w.pos - FRAME_HEADER_BYTES);
    return w.takeBuffer();
  }
}

/**
 * One item sent alone as its own op (`{id, ...item, timeoutMs?}`): what a coalesced tick of one
 * call becomes, so the node runs a plain put/get/del instead of a batch of one (its batch
 * bookkeeping and reply assembly). `timeoutMs` (the batch's) applies when the item has none, as the
 * node does for batch items.
 */
export class SingleRequest implements FrameEncoder {
  constructor(
    readonly item: BatchItem,
    readonly timeoutMs: number | undefined,
  ) {}

  encodeFrame(id: number): Buffer {
    const o = this.item as unknown as Record<string, unknown>;
    const extraTimeout = this.timeoutMs !== undefined && o['timeoutMs'] === undefined;
    try {
      const w = writer.reset();
      const at = w.skip(FRAME_HEADER_BYTES);
      w.mapHeader(1 + definedFields(o) + (extraTimeout ? 1 : 0));
      w.raw(ID);
      w.number(id);
      writeFields(w, o);
      if (extraTimeout) {
        w.raw(TIMEOUT_MS);
        w.number(this.timeoutMs!);
      }
      w.setUint32At(at, w.pos - FRAME_HEADER_BYTES);
      return w.takeBuffer();
    } catch (e) {
      if (!(e instanceof TypeError)) throw e;
      return encodeFrame(extraTimeout ? { id, ...o, timeoutMs: this.timeoutMs } : { id, ...o });
    }
  }
}

function definedFields(o: Record<string, unknown>): number {
  let n = 0;
  for (const k in o) if (o[k] !== undefined) n++;
  return n;
}

/** The defined fields of an item, in their order (what msgpackr writes for the object's entries). */
function writeFields(w: MsgpackWriter, o: Record<string, unknown>): void {
  for (const k in o) {
    const v = o[k];
    if (v === undefined) continue;
    const key = ITEM_KEYS[k];
    if (key !== undefined) w.raw(key);
    else w.str(k);
    w.value(v);
  }
}

/** One item as a map of its defined fields, in their order (what msgpackr writes for the object). */
function writeItem(w: MsgpackWriter, it: BatchItem): void {
  const o = it as unknown as Record<string, unknown>;
  w.mapHeader(definedFields(o));
  writeFields(w, o);
}
