/**
 * In-process stand-ins for IPC server unit tests: a fake router (an in-memory map with gates that
 * hold requests, so tests control reply order), a raw protocol client, and a byte-level msgpack
 * encoder for payloads the library would never produce (floats, 64-bit ints, non-str keys).
 */
import { rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import type { IpcServer } from '../../src/api/ipc-server.js';
import { encodeFrame, encodePayload, FrameDecoder } from '../../src/net/frames.js';
import type { ReadRequest, ReadResult, WriteRequest, WriteResult } from '../../src/router/router.js';
import { RingkvError } from '../../src/util/errors.js';
import type { Version } from '../../src/versions/index.js';

/** Poll until `fn` is truthy or the deadline passes (no fixed sleeps). */
export async function until<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/**
 * In-process stand-in for the Router: an in-memory map. Requests whose key starts with a gated
 * prefix are held until `release()`, so tests control reply order and in-flight counts exactly.
 */
export class FakeRouter {
  readonly store = new Map<string, Buffer>();
  writes = 0;
  reads = 0;
  active = 0;
  maxActive = 0;
  private counter = 0;
  private held: Array<{ key: string; go: () => void }> = [];
  gate: ((key: string) => boolean) | undefined;

  private async enter(key: Uint8Array): Promise<void> {
    this.active++;
    this.maxActive = Math.max(this.maxActive, this.active);
    const text = Buffer.from(key).toString('latin1');
    if (this.gate?.(text)) await new Promise<void>((go) => this.held.push({ key: text, go }));
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Let held requests go on, in the order they arrived (only those whose key `which` accepts). */
  release(which: (key: string) => boolean = () => true): void {
    const go = this.held.filter((h) => which(h.key));
    this.held = this.held.filter((h) => !which(h.key));
    for (const h of go) h.go();
  }

  /** The last write request, as the router got it. */
  lastWrite: WriteRequest | undefined;

  async write(req: WriteRequest): Promise<WriteResult> {
    this.writes++;
    this.lastWrite = req;
    await this.enter(req.key);
    this.active--;
    const k = `${req.table}/${Buffer.from(req.key).toString('hex')}`;
    if (req.tombstone) this.store.delete(k);
    else this.store.set(k, Buffer.from(req.value));
    return { context: `ctx-${++this.counter}`, consistency: { n: 1, required: 1, replied: 1 } };
  }

  async read(req: ReadRequest): Promise<ReadResult> {
    this.reads++;
    await this.enter(req.key);
    this.active--;
    const keyText = Buffer.from(req.key).toString('latin1');
    if (keyText === 'boom') throw new RingkvError('unavailable', 'read quorum not met: 0 of 3 replicas answered');
    const v = this.store.get(`${req.table}/${Buffer.from(req.key).toString('hex')}`);
    const mk = (value: Uint8Array, i: number): Version => ({ dot: [`n${i}`, i + 1], clock: [[`n${i}`, i + 1]], prior: 0, ts: 1, tombstone: false, value });
    let values: Version[] = v ? [mk(v, 0)] : [];
    if (keyText.startsWith('sib') && v) values = [mk(v, 0), mk(Buffer.from('other'), 1)];
    return { values, context: values.length ? 'rctx' : '', consistency: { n: 1, required: 1, replied: 1 } };
  }
}

export type Reply = Record<string, unknown> & { id: number | null; ok: boolean };

/** A raw protocol client: frames out, decoded replies collected in arrival order. */
export class RawClient {
  readonly replies: Reply[] = [];
  closed = false;
  /** Bytes read from the socket so far (frame headers included): with one reply outstanding, its frame's size. */
  bytesIn = 0;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private constructor(readonly socket: Socket) {}

  static connect(p: string, opts: { read?: boolean } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection({ path: p });
      const c = new RawClient(s);
      s.once('error', reject);
      s.on('close', () => (c.closed = true));
      s.once('connect', () => {
        s.removeListener('error', reject);
        s.on('error', () => undefined);
        if (opts.read !== false) c.startReading();
        resolve(c);
      });
    });
  }

  startReading(): void {
    this.socket.on('data', (chunk: Buffer) => {
      this.bytesIn += chunk.length;
      for (const m of this.decoder.push(chunk)) this.replies.push(m as Reply);
    });
    this.socket.resume();
  }

  send(msg: Record<string, unknown>): void {
    this.socket.write(encodeFrame(msg));
  }

  async request(msg: Record<string, unknown> & { id: number }): Promise<Reply> {
    this.send(msg);
    return until(`reply ${msg.id}`, () => this.replies.find((r) => r.id === msg.id));
  }

  waitClosed(): Promise<true> {
    return until('connection closed', () => this.closed || undefined);
  }

  close(): void {
    this.socket.destroy();
  }
}


/** Hand-built msgpack values (each returns its encoded bytes). */
export const mp = {
  /** Anything the library encodes as expected (ints, strs, bins, nil, bools). */
  v: (x: unknown): Buffer => encodePayload(x),
  str: (s: string): Buffer => encodePayload(s),
  /** A str whose bytes are given (possibly not UTF-8). */
  rawStr: (bytes: Buffer): Buffer => Buffer.concat([Buffer.from([0xd9, bytes.length]), bytes]),
  f64: (x: number): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0xcb;
    b.writeDoubleBE(x, 1);
    return b;
  },
  u64: (x: bigint): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0xcf;
    b.writeBigUInt64BE(x, 1);
    return b;
  },
  i64: (x: bigint): Buffer => {
    const b = Buffer.alloc(9);
    b[0] = 0xd3;
    b.writeBigInt64BE(x, 1);
    return b;
  },
  /** A map from [key bytes, value bytes] pairs; a plain string key is encoded as a str. */
  map: (entries: Array<[string | Buffer, Buffer]>): Buffer => {
    if (entries.length > 15) throw new Error('mp.map: fixmap only');
    return Buffer.concat([Buffer.from([0x80 | entries.length]), ...entries.flatMap(([k, v]) => [typeof k === 'string' ? encodePayload(k) : k, v])]);
  },
  arr: (items: Buffer[]): Buffer => {
    if (items.length > 15) throw new Error('mp.arr: fixarray only');
    return Buffer.concat([Buffer.from([0x90 | items.length]), ...items]);
  },
  /** A frame around a payload. */
  frame: (payload: Buffer): Buffer => {
    const h = Buffer.alloc(4);
    h.writeUInt32BE(payload.length);
    return Buffer.concat([h, payload]);
  },
};

/** afterEach of an IPC server test: release held requests, drop clients, close the server, remove the dir. */
export async function ipcTeardown(t: { router: FakeRouter; clients: RawClient[]; server: IpcServer | undefined; dir: string }): Promise<void> {
  t.router.release();
  for (const c of t.clients.splice(0)) c.close();
  await t.server?.close();
  rmSync(t.dir, { recursive: true, force: true });
}
