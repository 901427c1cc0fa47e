/**
 * Worker side of the ring-worker suite: attaches the ring table's SharedArrayBuffer and times
 * lookup loops itself, so only the lookups are on the clock (not the messages that start them).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initHasher, tokenInto } from '../../src/ring/hash.js';
import { MAX_REPLICAS, RingTable } from '../../src/ring/table.js';
import { PlainRing } from '../../src/ring/plain-ring.js';
import type { RingLayout } from '../../src/ring/builder.js';
import { makeKeys } from './fixtures.js';

export type ToRingWorker =
  | { t: 'ping' }
  | { t: 'layout'; layout: RingLayout }
  | { t: 'sab' | 'hash+sab' | 'plain' | 'msg'; n: number }
  | { t: 'lookup-reply'; r: number[] };

export type FromRingWorker =
  | { t: 'pong' }
  | { t: 'done'; ms: number; check: number }
  | { t: 'lookup'; hi: number; lo: number }
  | { t: 'error'; message: string };

const KEYS = 1024;

async function main(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('ring-worker must run in a worker thread');
  await initHasher();
  const ring = RingTable.attach((workerData as { buffer: SharedArrayBuffer }).buffer);
  const keys = makeKeys(KEYS, 'user:', 99);
  const his = new Uint32Array(KEYS);
  const los = new Uint32Array(KEYS);
  const tok = new Uint32Array(2);
  for (let i = 0; i < KEYS; i++) {
    tokenInto(keys[i]!, tok);
    his[i] = tok[0]!;
    los[i] = tok[1]!;
  }
  const outNodes = new Uint16Array(MAX_REPLICAS);
  let plain: PlainRing | null = null;
  let replyWaiter: ((r: number[]) => void) | null = null;

  const send = (m: FromRingWorker): void => port.postMessage(m);

  const loop = (n: number, f: (i: number) => number): { ms: number; check: number } => {
    let acc = 0;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) acc += f(i & (KEYS - 1));
    return { ms: performance.now() - t0, check: acc };
  };

  const viaMessage = async (n: number): Promise<{ ms: number; check: number }> => {
    let acc = 0;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const j = i & (KEYS - 1);
      const r = await new Promise<number[]>((resolve) => {
        replyWaiter = resolve;
        send({ t: 'lookup', hi: his[j]!, lo: los[j]! });
      });
      acc += r[0]!;
    }
    return { ms: performance.now() - t0, check: acc };
  };

  port.on('message', (m: ToRingWorker) => {
    void (async () => {
      try {
        switch (m.t) {
          case 'ping':
            send({ t: 'pong' });
            return;
          case 'lookup-reply': {
            const w = replyWaiter;
            replyWaiter = null;
            w?.(m.r);
            return;
          }
          case 'layout': {
            // The structured clone already happened on receipt; rebuilding is the rest of the cost.
            plain = new PlainRing(m.layout);
            send({ t: 'done', ms: 0, check: 0 });
            return;
          }
          case 'sab':
            send({ t: 'done', ...loop(m.n, (j) => ring.lookup(his[j]!, los[j]!, outNodes) + outNodes[0]!) });
            return;
          case 'hash+sab':
            send({
              t: 'done',
              ...loop(m.n, (j) => {
                tokenInto(keys[j]!, tok);
                return ring.lookup(tok[0]!, tok[1]!, outNodes) + outNodes[0]!;
              }),
            });
            return;
          case 'plain': {
            const p = plain;
            if (p === null) throw new Error('no layout copy received yet');
            send({ t: 'done', ...loop(m.n, (j) => p.lookup(his[j]!, los[j]!, outNodes) + outNodes[0]!) });
            return;
          }
          case 'msg':
            send({ t: 'done', ...(await viaMessage(m.n)) });
            return;
        }
      } catch (e) {
        send({ t: 'error', message: e instanceof Error ? e.message : String(e) });
      }
    })();
  });
}

await main();
