/**
 * An IPC connection's own CPU per op (issue 16: the connection's frame path must not get slower when
 * it is split), without a cluster: a real IpcServer on a unix socket in this process, a router that
 * answers at once (on a microtask, as a real one answers later), and a raw client in this process
 * that writes pre-encoded frames and counts replies by their length prefix only, so nearly all the
 * CPU measured is the server's: decode, validate, queue, flow control, reply encoding, writes.
 * Single put / get frames pipelined (256 in flight) and batch frames of 100 puts (16 in flight).
 *
 *   node dist/bench/micro/ipc-path.js [--ops 200000]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { startIpcServer, type IpcRouter } from '../../src/api/ipc-server.js';
import { encodeFrame, FRAME_HEADER_BYTES } from '../../src/net/frames.js';
import type { ReadResult, WriteResult } from '../../src/router/router.js';
import { mainThreadCpuMs } from './thread-cpu.js';

const VALUE = Buffer.alloc(100, 7);
const WRITTEN: WriteResult = { context: 'ctx-0123456789abcdef', consistency: { n: 1, required: 1, replied: 1 } };
const READ = { values: [{ value: VALUE }], context: 'ctx-0123456789abcdef', consistency: { n: 1, required: 1, replied: 1 } } as unknown as ReadResult;

const router: IpcRouter = {
  startWrite: (_req, done) => queueMicrotask(() => done(null, WRITTEN)),
  startRead: (_req, done) => queueMicrotask(() => done(null, READ)),
};

/** Counts reply frames by their length prefix; `onReplies(n)` after each chunk that completed n. */
function countReplies(s: Socket, onReplies: (n: number) => void): void {
  let pending = Buffer.alloc(0);
  s.on('data', (chunk: Buffer) => {
    let buf = pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk;
    let n = 0;
    let at = 0;
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      const len = buf.readUInt32BE(at);
      if (buf.length - at < FRAME_HEADER_BYTES + len) break;
      at += FRAME_HEADER_BYTES + len;
      n++;
    }
    pending = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0);
    buf = pending;
    if (n > 0) onReplies(n);
  });
}

/** Send `frames` (cycled) `count` times with at most `window` unanswered; resolves when all are answered. */
function phase(name: string, sock: Socket, frames: Buffer[], count: number, window: number, opsPerFrame: number): Promise<void> {
  return new Promise((resolve) => {
    let sent = 0;
    let answered = 0;
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = mainThreadCpuMs();
    const t0 = performance.now();
    const fill = (): void => {
      const out: Buffer[] = [];
      while (sent < count && sent - answered < window) out.push(frames[sent++ % frames.length]!);
      if (out.length > 0) sock.write(out.length === 1 ? out[0]! : Buffer.concat(out));
    };
    sock.removeAllListeners('data');
    countReplies(sock, (n) => {
      answered += n;
      if (answered < count) return fill();
      const ms = performance.now() - t0;
      const elu = performance.eventLoopUtilization(elu0);
      const cpu = mainThreadCpuMs() - cpu0;
      const ops = count * opsPerFrame;
      console.log(
        `${name.padEnd(34)} ${((ops / ms) * 1000).toFixed(0).padStart(7)} ops/s  ${((elu.active * 1000) / ops).toFixed(2)} µs/op busy  ${((cpu * 1000) / ops).toFixed(2)} µs/op main-thread cpu`,
      );
      resolve();
    });
    fill();
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opsArg = args.indexOf('--ops');
  const total = opsArg >= 0 ? Number(args[opsArg + 1]) : 200_000;
  const dir = mkdtempSync(path.join(tmpdir(), 'ringkv-ipc-path-'));
  const sockPath = path.join(dir, 'ipc.sock');
  const server = await startIpcServer({
    path: sockPath,
    router,
    ringInfo: () => ({ digest: 'feedfacecafebeef', version: 1, nodes: [], tokens: [], replicas: 1, pref: [] }),
    ringDigest: () => 'feedfacecafebeef',
    clusterStatus: async () => ({}),
    limits: { maxKeyBytes: 1024, maxValueBytes: 1024 * 1024, maxFrameBytes: 4 * 1024 * 1024, maxInFlightPerConnection: 1024 },
    log: pino({ level: 'silent' }),
  });
  const sock = connect(sockPath);
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const keys = Array.from({ length: 1000 }, (_, i) => Buffer.from(`ip-${i}`));
  const puts = keys.map((key, id) => encodeFrame({ id, op: 'put', table: 'bench', key, value: VALUE }));
  const gets = keys.map((key, id) => encodeFrame({ id, op: 'get', table: 'bench', key }));
  const batches = Array.from({ length: 10 }, (_, b) =>
    encodeFrame({ id: b, op: 'batch', items: keys.slice(b * 100, b * 100 + 100).map((key) => ({ op: 'put', table: 'bench', key, value: VALUE })) }),
  );
  try {
    await phase('warm-up', sock, puts, 50_000, 256, 1);
    await phase('puts, 256 in flight', sock, puts, total, 256, 1);
    await phase('gets, 256 in flight', sock, gets, total, 256, 1);
    await phase('batches of 100 puts, 16 in flight', sock, batches, Math.ceil(total / 100), 16, 100);
    await phase('puts, 256 in flight', sock, puts, total, 256, 1);
  } finally {
    sock.destroy();
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
