/**
 * 1. Hashing + ring lookup.
 *
 * Main thread: xxh64 (`tokenInto`) and the preference-list lookup from the SharedArrayBuffer table,
 * against the same binary search over plain JS arrays (`PlainRing`). The SAB table is measured
 * twice: through the creating (writer) instance, which is what the router on the main thread uses
 * (plain loads, no seqlock), and through an attached read-only instance on the same thread, which
 * takes the Atomics + seqlock path every shard worker pays.
 *
 * Worker thread: a worker attaches the SAB and times loops of 1M lookups itself (see
 * ring-worker.ts), next to the alternatives a worker would have without shared memory: a private
 * structured-clone copy of the layout (re-shipped on every ring change) or asking the main thread
 * by message per lookup.
 *
 * Ring sizes: 256 x 16 = 4,096 tokens (the table's capacity before it was resized) and
 * 1,024 x 16 = 16,384 tokens (the 500-1,000-node clusters the table is now sized for: MAX_TOKENS =
 * 32,768, MAX_NODES = 2,048 in src/ring/table.ts), plus a 3-node ring. The lookup is a binary search,
 * so 4x the tokens costs two more probes, but the 16,384-token arrays (128 KiB of tokens) no longer
 * sit in L1/L2 the way 4,096 do.
 */
import { Worker } from 'node:worker_threads';
import { initHasher, tokenInto } from '../../src/ring/hash.js';
import { Liveness, MAX_REPLICAS, RingTable } from '../../src/ring/table.js';
import { PlainRing } from '../../src/ring/plain-ring.js';
import type { RingLayout } from '../../src/ring/builder.js';
import { makeKeys, makeLayout } from './fixtures.js';
import { runSuite, sink, type RatioSpec, type Row, type SuiteOptions, type TaskSpec } from './harness.js';
import type { FromRingWorker, ToRingWorker } from './ring-worker.js';

/** Keys per call of the main-thread tasks (one call = one pass over the key set). */
const KEYS = 1024;
/** Lookups per worker call, as the brief asks ("a loop of 1M lookups"). */
export const WORKER_LOOKUPS = 1_000_000;
/** Sequential message round trips per call for the "ask the main thread" alternative. */
export const WORKER_MSG_LOOKUPS = 5_000;

interface Ring {
  label: string;
  layout: RingLayout;
}

function publishTable(layout: RingLayout): RingTable {
  const t = RingTable.create();
  t.publish(layout, 0, () => Liveness.Up);
  return t;
}

export async function ringSuite(opts: SuiteOptions): Promise<Row[]> {
  await initHasher();
  const keys = makeKeys(KEYS);
  const his = new Uint32Array(KEYS);
  const los = new Uint32Array(KEYS);
  const tok = new Uint32Array(2);
  for (let i = 0; i < KEYS; i++) {
    tokenInto(keys[i]!, tok);
    his[i] = tok[0]!;
    los[i] = tok[1]!;
  }
  const outNodes = new Uint16Array(MAX_REPLICAS);

  const tasks: TaskSpec[] = [
    {
      name: 'hash tokenInto',
      opsPerCall: KEYS,
      note: 'xxh64 of a 13-byte key into [hi, lo]',
      fn: () => {
        let acc = 0;
        for (let i = 0; i < KEYS; i++) {
          tokenInto(keys[i]!, tok);
          acc ^= tok[1]!;
        }
        sink.n ^= acc;
      },
    },
  ];

  type Lookup = { lookup(hi: number, lo: number, n: Uint16Array): number };
  const lookupOnly = (name: string, ring: Lookup, note: string): TaskSpec => ({
    name,
    opsPerCall: KEYS,
    note,
    fn: () => {
      let acc = 0;
      for (let i = 0; i < KEYS; i++) {
        acc += ring.lookup(his[i]!, los[i]!, outNodes) + outNodes[0]!;
      }
      sink.n ^= acc;
    },
  });
  const hashAndLookup = (name: string, ring: Lookup, note: string): TaskSpec => ({
    name,
    opsPerCall: KEYS,
    note,
    fn: () => {
      let acc = 0;
      for (let i = 0; i < KEYS; i++) {
        tokenInto(keys[i]!, tok);
        acc += ring.lookup(tok[0]!, tok[1]!, outNodes) + outNodes[0]!;
      }
      sink.n ^= acc;
    },
  });

  const rings: Ring[] = [
    { label: '1024x16', layout: makeLayout(1024, 16) },
    { label: '256x16', layout: makeLayout(256, 16) },
    { label: '3x16', layout: makeLayout(3, 16) },
  ];
  for (const { label, layout } of rings) {
    const writer = publishTable(layout);
    const reader = RingTable.attach(writer.buffer);
    const plain = new PlainRing(layout);
    const n = layout.tokens.length;
    tasks.push(
      lookupOnly(`${label} sab lookup`, writer, `${n} tokens, R=3; writer-thread path (router), plain loads`),
      lookupOnly(`${label} sab-atomics lookup`, reader, `${n} tokens; attached instance: Atomics + seqlock (worker path)`),
      lookupOnly(`${label} plain lookup`, plain, `${n} tokens; PlainRing (Token objects)`),
      hashAndLookup(`${label} hash+sab lookup`, writer, 'tokenInto + RingTable.lookup (router hot path)'),
      hashAndLookup(`${label} hash+plain lookup`, plain, 'tokenInto + PlainRing.lookup'),
    );
  }
  return runSuite('ring', tasks, opts);
}

/** Request/response with the ring worker; one outstanding request at a time. */
class RingWorkerClient {
  private waiting: ((m: FromRingWorker) => void) | null = null;

  constructor(
    readonly worker: Worker,
    onLookup: (hi: number, lo: number) => number[],
  ) {
    worker.on('message', (m: FromRingWorker) => {
      if (m.t === 'lookup') {
        // The "no shared memory" alternative: the worker asks the main thread for each key.
        worker.postMessage({ t: 'lookup-reply', r: onLookup(m.hi, m.lo) } satisfies ToRingWorker);
        return;
      }
      const w = this.waiting;
      this.waiting = null;
      w?.(m);
    });
  }

  call(msg: ToRingWorker): Promise<FromRingWorker> {
    if (this.waiting !== null) throw new Error('ring worker: request already outstanding');
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.worker.once('error', onError);
      this.waiting = (m) => {
        this.worker.off('error', onError);
        if (m.t === 'error') reject(new Error(`ring worker: ${m.message}`));
        else resolve(m);
      };
      this.worker.postMessage(msg);
    });
  }

  async timed(msg: ToRingWorker): Promise<{ overriddenDuration: number }> {
    const r = await this.call(msg);
    if (r.t !== 'done') throw new Error(`ring worker: unexpected reply ${r.t}`);
    sink.n ^= r.check;
    return { overriddenDuration: r.ms };
  }
}

export async function ringWorkerSuite(opts: SuiteOptions): Promise<Row[]> {
  await initHasher();
  const layout = makeLayout(256, 16);
  const table = publishTable(layout);
  const outNodes = new Uint16Array(MAX_REPLICAS);
  const worker = new Worker(new URL('./ring-worker.js', import.meta.url), { workerData: { buffer: table.buffer } });
  const client = new RingWorkerClient(worker, (hi, lo) => {
    const r = table.lookup(hi, lo, outNodes);
    const out: number[] = [];
    for (let k = 0; k < r; k++) out.push(outNodes[k]!);
    return out;
  });
  try {
    const ready = await client.call({ t: 'ping' });
    if (ready.t !== 'pong') throw new Error('ring worker did not start');
    // Give the worker its private copy once up front (the "plain" task measures lookups only).
    await client.call({ t: 'layout', layout });
    // A second writer table so publishing here never disturbs what the worker is reading.
    const scratch = RingTable.create();

    const heavy: SuiteOptions = { timeMs: 0, warmupMs: 0, iterations: 5, warmupIterations: 1 };
    const rows = await runSuite(
      'ring-worker',
      [
        {
          name: 'worker sab lookup',
          opsPerCall: WORKER_LOOKUPS,
          note: '256x16; loop of 1M lookups timed inside the worker (attached SAB, Atomics)',
          fn: async () => client.timed({ t: 'sab', n: WORKER_LOOKUPS }),
        },
        {
          name: 'worker hash+sab lookup',
          opsPerCall: WORKER_LOOKUPS,
          note: '1M x (tokenInto + lookup) inside the worker',
          fn: async () => client.timed({ t: 'hash+sab', n: WORKER_LOOKUPS }),
        },
        {
          name: 'worker plain-copy lookup',
          opsPerCall: WORKER_LOOKUPS,
          note: '1M lookups in a PlainRing built from a structured-clone copy',
          fn: async () => client.timed({ t: 'plain', n: WORKER_LOOKUPS }),
        },
        {
          name: 'worker lookup via message',
          opsPerCall: WORKER_MSG_LOOKUPS,
          note: 'one postMessage round trip to the main thread per lookup, sequential',
          fn: async () => client.timed({ t: 'msg', n: WORKER_MSG_LOOKUPS }),
        },
      ],
      heavy,
    );
    rows.push(
      ...(await runSuite(
        'ring-worker',
        [
          {
            name: 'layout publish to SAB',
            note: '4096 tokens: RingTable.publish on the main thread; attached workers see it at once',
            fn: () => {
              scratch.publish(layout, 0, () => Liveness.Up);
            },
          },
          {
            name: 'layout copy to worker',
            note: 'postMessage(layout) + PlainRing rebuild in the worker + ack, per worker per ring change',
            fn: async () => {
              const r = await client.call({ t: 'layout', layout });
              if (r.t !== 'done') throw new Error('layout copy failed');
            },
          },
        ],
        { ...opts, timeMs: Math.min(opts.timeMs, 200), iterations: 10 },
      )),
    );
    return rows;
  } finally {
    await worker.terminate();
  }
}

export const ringRatios: RatioSpec[] = [
  { label: 'hash+lookup (router path): 16,384 vs 4,096 tokens', a: 'ring/1024x16 hash+sab lookup', b: 'ring/256x16 hash+sab lookup' },
  { label: 'lookup (worker path): 16,384 vs 4,096 tokens', a: 'ring/1024x16 sab-atomics lookup', b: 'ring/256x16 sab-atomics lookup' },
  { label: 'SAB (router path) vs plain arrays, lookup, 4096 tokens', a: 'ring/256x16 sab lookup', b: 'ring/256x16 plain lookup' },
  { label: 'SAB (Atomics/worker path) vs plain arrays, lookup, 4096 tokens', a: 'ring/256x16 sab-atomics lookup', b: 'ring/256x16 plain lookup' },
  { label: 'SAB vs plain, hash+lookup, 4096 tokens', a: 'ring/256x16 hash+sab lookup', b: 'ring/256x16 hash+plain lookup' },
  { label: 'SAB (router path) vs plain arrays, lookup, 48 tokens', a: 'ring/3x16 sab lookup', b: 'ring/3x16 plain lookup' },
  { label: 'SAB vs plain, hash+lookup, 48 tokens', a: 'ring/3x16 hash+sab lookup', b: 'ring/3x16 hash+plain lookup' },
  { label: 'worker: SAB lookup vs private plain copy', a: 'ring-worker/worker sab lookup', b: 'ring-worker/worker plain-copy lookup' },
  { label: 'worker: SAB lookup vs asking main thread by message', a: 'ring-worker/worker sab lookup', b: 'ring-worker/worker lookup via message' },
  { label: 'ring change: SAB publish vs copying the layout to one worker', a: 'ring-worker/layout publish to SAB', b: 'ring-worker/layout copy to worker' },
];
