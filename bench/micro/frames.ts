/**
 * 5. Peer-transport frames: encodeFrame / FrameDecoder.push for a typical replica-write request
 * (`{t:'req', id, body: {t:'write', op}}` as PeerTransport.request sends Cluster.write's message,
 * with one version carrying a 100-byte value), one at a time and as a batch of 100 frames that
 * arrive in one chunk (what a socket read delivers under pipelining).
 */
import { encodeFrame, FrameDecoder } from '../../src/net/frames.js';
import { newVersion } from '../../src/versions/version.js';
import { initVersions } from '../../src/versions/record.js';
import { makeKeys, makeValue } from './fixtures.js';
import { runSuite, sink, type RatioSpec, type Row, type SuiteOptions } from './harness.js';

const INNER = 128;
const BATCH = 100;

export async function framesSuite(opts: SuiteOptions): Promise<Row[]> {
  await initVersions();
  const value = makeValue(100);
  const keys = makeKeys(BATCH, 'user:', 11);
  const T0 = 1_732_000_000_000_000;
  const msgs = keys.map((key, i) => {
    const v = newVersion({ node: 'node-001', counter: T0 + i, context: [['node-000', T0 - 5]], ts: T0 + i, tombstone: false, value, maxClockEntries: 16 });
    return {
      t: 'req',
      id: 1000 + i,
      body: { t: 'write', op: { table: 'users', tableId: 0x5eed1234, mode: 'vclock', key, versions: [v], returnMerged: false } },
    };
  });
  const one = msgs[0]!;
  const oneFrame = encodeFrame(one);
  const batchChunk = Buffer.concat(msgs.map((m) => encodeFrame(m)));
  const dec = new FrameDecoder();

  return runSuite(
    'frames',
    [
      {
        name: 'encodeFrame replica-write',
        opsPerCall: INNER,
        note: `${oneFrame.length}-byte frame (100-byte value)`,
        fn: () => {
          let acc = 0;
          for (let i = 0; i < INNER; i++) acc += encodeFrame(one).length;
          sink.n ^= acc;
        },
      },
      {
        name: 'decode replica-write (1 frame/chunk)',
        opsPerCall: INNER,
        note: 'FrameDecoder.push of one whole frame',
        fn: () => {
          let acc = 0;
          for (let i = 0; i < INNER; i++) acc += dec.push(oneFrame).length;
          sink.n ^= acc;
        },
      },
      {
        name: 'encodeFrame batch of 100',
        opsPerCall: BATCH,
        note: '100 distinct replica writes -> 100 frames, concatenated',
        fn: () => {
          const frames: Buffer[] = new Array<Buffer>(BATCH);
          for (let i = 0; i < BATCH; i++) frames[i] = encodeFrame(msgs[i]!);
          sink.n ^= Buffer.concat(frames).length;
        },
      },
      {
        name: 'decode batch of 100 (1 chunk)',
        opsPerCall: BATCH,
        note: `FrameDecoder.push of a ${batchChunk.length}-byte chunk holding 100 frames`,
        fn: () => {
          sink.n ^= dec.push(batchChunk).length;
        },
      },
    ],
    opts,
  );
}

export const frameRatios: RatioSpec[] = [
  { label: 'frame encode: batch of 100 vs one at a time (per frame)', a: 'frames/encodeFrame batch of 100', b: 'frames/encodeFrame replica-write' },
  { label: 'frame decode: 100 frames/chunk vs 1 frame/chunk (per frame)', a: 'frames/decode batch of 100 (1 chunk)', b: 'frames/decode replica-write (1 frame/chunk)' },
];
