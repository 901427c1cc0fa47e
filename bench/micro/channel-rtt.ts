/**
 * The floor of a single op on this machine (issue 12): the router <-> shard channel's round trip
 * with both ends doing nothing else. The main thread pushes one message into a request ring
 * (src/storage/spsc-ring.ts) and parks on the reply ring with Atomics.waitAsync; an echo worker,
 * parked the same way the shard actor parks (src/storage/shard-channel.ts, no spin), copies it back.
 * One message in flight: the figure is two thread wake-ups (notify -> waitAsync -> event loop ->
 * drain), what every single op pays at least once per direction when the shard has gone idle.
 *
 *   node dist/bench/micro/channel-rtt.js [--trips 5000]
 */
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { parkUntilData } from '../../src/storage/shard-channel.js';
import { SpscRing } from '../../src/storage/spsc-ring.js';

const RING_BYTES = 1 << 16;

if (!isMainThread) {
  const { req, rep } = workerData as { req: SharedArrayBuffer; rep: SharedArrayBuffer };
  const requests = new SpscRing(req);
  const replies = new SpscRing(rep);
  const onWake = (): void => {
    for (;;) {
      requests.drain((m) => void replies.push(m));
      if (parkUntilData(requests, onWake)) return;
    }
  };
  onWake();
  // A pending Atomics.waitAsync does not keep a thread alive; the port does (as the shard's control port does).
  parentPort!.on('message', () => undefined);
  parentPort!.postMessage('ready');
} else {
  const args = process.argv.slice(2);
  const i = args.indexOf('--trips');
  const trips = i >= 0 ? Number(args[i + 1]) : 5000;
  const requests = SpscRing.create(RING_BYTES);
  const replies = SpscRing.create(RING_BYTES);
  const w = new Worker(fileURLToPath(import.meta.url), { workerData: { req: requests.buffer, rep: replies.buffer } });
  await new Promise((r) => w.once('message', r));
  const msg = new Uint8Array(64);
  const lat: number[] = [];
  const keepAlive = setInterval(() => undefined, 1000);
  await new Promise<void>((resolve) => {
    let n = 0;
    let t0 = 0;
    const send = (): void => {
      t0 = performance.now();
      requests.push(msg);
      wait();
    };
    const wait = (): void => {
      if (parkUntilData(replies, onReply)) return;
      onReply();
    };
    const onReply = (): void => {
      if (replies.drain(() => undefined) === 0) return wait();
      lat.push((performance.now() - t0) * 1000);
      if (++n === trips) return resolve();
      send();
    };
    send();
  });
  clearInterval(keepAlive);
  lat.sort((a, b) => a - b);
  const q = (p: number): string => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(0);
  console.log(`channel round trip, 1 in flight, ${trips} trips: p50 ${q(0.5)} µs, p90 ${q(0.9)} µs, p99 ${q(0.99)} µs, mean ${(lat.reduce((a, b) => a + b, 0) / lat.length).toFixed(0)} µs; wakes ${requests.wakes} / ${replies.wakes}`);
  await w.terminate();
}
