import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { IPC_PROTOCOL_VERSION, type IpcLimits, type RingInfo } from '../../src/api/ipc-protocol.js';
import type { KvOp, QueryParsed } from '../../src/api/ipc-request.js';
import type { IpcDeps } from '../../src/api/ipc-server-types.js';
import { isRead, replyReserve, runWork, SMALL_REPLY_RESERVE_BYTES, type Outcome, type Work } from '../../src/api/ipc-work.js';
import type { WriteRequest } from '../../src/router/router.js';

const RING: RingInfo = { digest: 'feedfacecafebeef', version: 3, nodes: [], tokens: [], replicas: 0, pref: [] };
const LIMITS: Required<IpcLimits> = Object.freeze({ maxKeyBytes: 64, maxValueBytes: 1024, maxFrameBytes: 4096, maxInFlightPerConnection: 8, maxBatchItems: 10 });
const consistency = { n: 1, required: 1, replied: 1 };
const op = (kind: KvOp['kind']): KvOp => ({ kind, table: 't', key: new Uint8Array([7]), value: new Uint8Array([1, 2]), tombstone: kind === 'del', context: 'c0', consistency: {}, timeoutMs: 50, ttlSeconds: undefined });
const query = (readOnly: boolean): QueryParsed => ({ query: 'SELECT * FROM t', readOnly, params: undefined, consistency: undefined, pageSize: undefined, pagingState: undefined, timeoutMs: undefined });

function deps(extra: Partial<IpcDeps> = {}): { deps: IpcDeps; writes: WriteRequest[] } {
  const writes: WriteRequest[] = [];
  return {
    writes,
    deps: {
      path: '',
      router: {
        startWrite: (req, done) => {
          writes.push(req);
          queueMicrotask(() => done(null, { context: 'c1', consistency }));
        },
        startRead: (_req, done) => queueMicrotask(() => done(null, { values: [], context: '', consistency })),
      },
      ringInfo: () => RING,
      clusterStatus: async () => ({ nodes: 1 }),
      limits: LIMITS,
      log: pino({ level: 'silent' }),
      nodeId: 'n1',
      ...extra,
    },
  };
}

/** Run `w` and return its outcome, checking it is delivered once and not inside runWork. */
async function outcomeOf(w: Work, d: IpcDeps): Promise<Outcome> {
  const outs: Outcome[] = [];
  runWork(w, d, LIMITS, { complete: (done, out) => (expect(done).toBe(w), outs.push(out)) });
  expect(outs).toHaveLength(0);
  for (let i = 0; i < 10 && outs.length === 0; i++) await Promise.resolve();
  expect(outs).toHaveLength(1);
  return outs[0]!;
}

describe('ipc work units (no socket)', () => {
  it('a put or del becomes the router write it asks for; a del is a tombstone', async () => {
    const d = deps();
    expect(await outcomeOf({ t: 'kv', id: 1, op: op('put') }, d.deps)).toEqual({ ok: true, value: { context: 'c1', consistency } });
    await outcomeOf({ t: 'kv', id: 2, op: op('del') }, d.deps);
    expect(d.writes.map((w) => [w.tombstone, w.context, w.timeoutMs, Buffer.from(w.key).toString('hex')])).toEqual([
      [false, 'c0', 50, '07'],
      [true, 'c0', 50, '07'],
    ]);
  });

  it('ring answers unchanged for the current digest and the ring otherwise, with the protocol, node and limits', async () => {
    const d = deps().deps;
    expect(await outcomeOf({ t: 'ring', id: 1, digest: RING.digest }, d)).toEqual({
      ok: true,
      value: { protocol: IPC_PROTOCOL_VERSION, node: 'n1', limits: LIMITS, unchanged: true },
    });
    expect(await outcomeOf({ t: 'ring', id: 1, digest: undefined }, d)).toEqual({ ok: true, value: { protocol: IPC_PROTOCOL_VERSION, node: 'n1', limits: LIMITS, ring: RING } });
  });

  it('an op whose service this server lacks answers unavailable', async () => {
    const d = deps().deps;
    const unavailable = (out: Outcome): unknown => (out.ok ? 'ok' : (out.err as { code: string }).code);
    expect(unavailable(await outcomeOf({ t: 'query', id: 1, op: query(true) }, d))).toBe('unavailable');
    expect(unavailable(await outcomeOf({ t: 'crdt_get', id: 1, op: { table: 't', key: new Uint8Array([1]), consistency: {}, timeoutMs: undefined } }, d))).toBe('unavailable');
    expect(unavailable(await outcomeOf({ t: 'define_table', id: 1, op: { table: 't', settings: {} } }, d))).toBe('unavailable');
    expect(unavailable(await outcomeOf({ t: 'scan', id: 1, op: { table: 't', from: { pagingState: 'p' }, limit: 1, consistency: {}, timeoutMs: undefined } }, d))).toBe('unavailable');
  });

  it('reads (the units that may run again) and what each reserves on the reply account', () => {
    const kinds: Array<[Work, boolean, number]> = [
      [{ t: 'kv', id: 1, op: op('get') }, true, 5000],
      [{ t: 'kv', id: 1, op: op('put') }, false, SMALL_REPLY_RESERVE_BYTES],
      [{ t: 'query', id: 1, op: query(true) }, true, 5000],
      [{ t: 'query', id: 1, op: query(false) }, false, SMALL_REPLY_RESERVE_BYTES],
      // An update never runs twice, but its reply carries the key's value.
      [{ t: 'crdt_update', id: 1, op: { table: 't', key: new Uint8Array([1]), operation: {}, consistency: {}, timeoutMs: undefined } }, false, 5000],
      [{ t: 'define_table', id: 1, op: { table: 't', settings: {} } }, false, SMALL_REPLY_RESERVE_BYTES],
      [{ t: 'status', id: 1 }, true, 5000],
    ];
    expect(kinds.map(([w]) => isRead(w))).toEqual(kinds.map(([, read]) => read));
    expect(kinds.map(([w]) => replyReserve(w, 5000))).toEqual(kinds.map(([, , reserve]) => reserve));
  });
});
