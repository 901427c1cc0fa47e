import { Packr, Unpackr } from 'msgpackr';

/**
 * Length-prefixed msgpack frames, shared by the peer transport and the IPC socket:
 *
 *   +----------------------+---------------------------+
 *   | length: uint32 BE    | payload: msgpack (length) |
 *   +----------------------+---------------------------+
 *
 * `length` counts payload bytes only. Binary values are msgpack `bin` and come back as Buffers,
 * byte-exact. Records/structures extensions are off so any msgpack library can read our frames.
 */
export const FRAME_HEADER_BYTES = 4;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

const packr = new Packr({ useRecords: false, moreTypes: false, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: false, mapsAsObjects: true });

export function encodePayload(msg: unknown): Buffer {
  return packr.pack(msg);
}

export function decodePayload(buf: Uint8Array): unknown {
  return unpackr.unpack(buf);
}

export function encodeFrame(msg: unknown): Buffer {
  const body = packr.pack(msg);
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  frame.writeUInt32BE(body.length, 0);
  body.copy(frame, FRAME_HEADER_BYTES);
  return frame;
}

export class FrameError extends Error {
  /**
   * Set by FrameDecoder.push: the complete frames it decoded before the bad one in the same push,
   * so a server can still answer requests a client sent ahead of its bad frame.
   */
  decodedBefore: unknown[] = [];
  constructor(
    readonly code: 'frame_too_large' | 'malformed_frame',
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

function withDecoded(e: FrameError, before: unknown[]): FrameError {
  e.decodedBefore = before;
  return e;
}

/**
 * Incremental decoder for a byte stream. `push` returns every complete frame's decoded payload and
 * keeps a partial frame buffered. It throws FrameError for an oversized length prefix (before
 * buffering it: a hostile length can't make us allocate) or an undecodable payload, carrying the
 * frames decoded before it in the same push (`decodedBefore`); the caller closes that connection
 * only.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private need = -1;

  /**
   * `decode`: payload -> message (default: msgpack). It may throw FrameError to refuse a frame;
   * any other error counts as a malformed payload.
   */
  constructor(
    readonly maxFrameBytes: number = DEFAULT_MAX_FRAME_BYTES,
    private readonly decode: (payload: Buffer) => unknown = (p) => unpackr.unpack(p),
  ) {}

  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): unknown[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: unknown[] = [];
    for (;;) {
      if (this.need < 0) {
        if (this.buffered < FRAME_HEADER_BYTES) break;
        const head = this.take(FRAME_HEADER_BYTES);
        const len = head.readUInt32BE(0);
        if (len > this.maxFrameBytes) {
          throw withDecoded(new FrameError('frame_too_large', `frame of ${len} bytes exceeds the limit of ${this.maxFrameBytes}`), out);
        }
        this.need = len;
      }
      if (this.buffered < this.need) break;
      const body = this.take(this.need);
      this.need = -1;
      let msg: unknown;
      try {
        msg = this.decode(body);
      } catch (e) {
        const fe = e instanceof FrameError ? e : new FrameError('malformed_frame', `frame payload is not valid msgpack: ${(e as Error).message}`);
        throw withDecoded(fe, out);
      }
      out.push(msg);
    }
    return out;
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    let first = this.chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
