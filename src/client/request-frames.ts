/**
 * Request frames of the client's per-op traffic written by hand (issue 12): a batch
 * `{id, op: 'batch', items, timeoutMs?}` and an item sent alone `{id, ...item, timeoutMs?}` go
 * straight from the wire items into one frame buffer (length prefix included) through the shared
 * msgpack writer, instead of a spread `{id, ...msg}` object, msgpackr's generic `pack` and a copy
 * behind the frame header per request. With `autoBatch` (the default), single puts, gets and
 * deletes go this way too. The bytes are the ones `encodeFrame` writes for the same object
 * (test/unit/client-request-frames.test.ts compares them), so the server sees no difference.
 */
import type { BatchItem } from '../api/ipc-protocol.js';
import { encodeFrame, FRAME_HEADER_BYTES } from '../net/frames.js';
import { definedCount, encodedStr, MsgpackWriter } from '../util/msgpack-writer.js';

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

/**
 * `write` into the client's writer as a frame; when a field value is outside the writer's
 * vocabulary (a caller's bigint, a symbol, ...), msgpackr encodes `generic()` instead, and the
 * server names what it refuses, as before this writer.
 */
function frameOr(write: (w: MsgpackWriter) => void, generic: () => object): Buffer {
  try {
    const w = writer.beginFrame(FRAME_HEADER_BYTES);
    write(w);
    return w.takeFrame(FRAME_HEADER_BYTES);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return encodeFrame(generic());
  }
}

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
    return frameOr(
      (w) => {
        w.mapHeader(this.timeoutMs !== undefined ? 4 : 3);
        w.raw(ID);
        w.number(id);
        w.raw(OP);
        w.raw(BATCH);
        w.raw(ITEMS);
        w.arrayHeader(this.end - this.start);
        for (let i = this.start; i < this.end; i++) w.value(this.items[i]);
        if (this.timeoutMs !== undefined) {
          w.raw(TIMEOUT_MS);
          w.number(this.timeoutMs);
        }
      },
      () => ({ id, op: 'batch', items: this.items.slice(this.start, this.end), ...(this.timeoutMs !== undefined ? { timeoutMs: this.timeoutMs } : {}) }),
    );
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
    return frameOr(
      (w) => {
        w.mapHeader(1 + definedCount(o) + (extraTimeout ? 1 : 0));
        w.raw(ID);
        w.number(id);
        w.fields(o);
        if (extraTimeout) {
          w.raw(TIMEOUT_MS);
          w.number(this.timeoutMs!);
        }
      },
      () => (extraTimeout ? { id, ...o, timeoutMs: this.timeoutMs } : { id, ...o }),
    );
  }
}
