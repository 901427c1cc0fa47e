/**
 * IPC request validation and reply shaping found wanting by issue 10 (items 9, 13, 14, 15, 16),
 * against a real IPC server over a real Unix socket with an in-process fake router: 64-bit
 * integers, floats, non-str map keys and invalid UTF-8 named as bad requests; options that do not
 * apply to an op refused; every complete frame before a bad one answered; batch reply cuts decided
 * in item order; a get too large for one frame still returning its context.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BatchAssembly, estimateBytes, REPLY_OVERHEAD } from '../../src/api/ipc-replies.js';
import type { BatchItemResult, GetOk } from '../../src/api/ipc-protocol.js';
import { promiseRouter, startIpcServer, type IpcDeps, type IpcServer, type RingInfo } from '../../src/api/ipc-server.js';
import { checkRequestShape } from '../../src/api/ipc-request.js';
import { encodeFrame, encodePayload, FrameError } from '../../src/net/frames.js';
import { FakeRouter, ipcTeardown, mp, RawClient, until, type Reply } from '../helpers/ipc-fakes.js';

const log = pino({ level: 'silent' });
const RING: RingInfo = { digest: 'feedfacecafebeef', version: 3, nodes: [], tokens: [], replicas: 0, pref: [] };

let dir: string;
let server: IpcServer | undefined;
let router: FakeRouter;
const clients: RawClient[] = [];

async function start(limits: Partial<IpcDeps['limits']> = {}): Promise<void> {
  server = await startIpcServer({
    path: path.join(dir, 's.sock'),
    router: promiseRouter(router),
    ringInfo: () => RING,
    clusterStatus: async () => ({}),
    limits: { maxKeyBytes: 1024, maxValueBytes: 1024 * 1024, maxFrameBytes: 4 * 1024 * 1024, maxInFlightPerConnection: 1024, ...limits },
    log,
  });
}

async function client(): Promise<RawClient> {
  const c = await RawClient.connect(path.join(dir, 's.sock'));
  clients.push(c);
  return c;
}

/** Send one hand-built payload and wait for the reply with `id` (or, for id-less failures, the close). */
async function raw(c: RawClient, payload: Buffer, id: number): Promise<Reply> {
  c.socket.write(mp.frame(payload));
  return until(`reply ${id}`, () => c.replies.find((r) => r.id === id));
}

const base = (id: number, op: string): Array<[string, Buffer]> => [
  ['id', mp.v(id)],
  ['op', mp.str(op)],
];

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rkv-ipcin-'));
  router = new FakeRouter();
});

afterEach(async () => {
  await ipcTeardown({ router, clients, server, dir });
  server = undefined;
});

describe('checkRequestShape (pure)', () => {
  const leaf = fc.oneof(fc.string({ maxLength: 20 }), fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), fc.boolean(), fc.constant(null), fc.uint8Array({ maxLength: 40 }));
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), tie('v'), { maxKeys: 4 })),
  })).v;
  const top = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), value, { minKeys: 1, maxKeys: 6 });

  it('finds nothing in what a well-behaved client sends, and names the one bad field planted in it', () => {
    fc.assert(
      fc.property(top, fc.nat(), fc.constantFrom(mp.f64(0.5), mp.u64(1n << 62n), mp.i64(-(1n << 60n))), (msg, pick, bad) => {
        const payload = encodePayload(msg);
        expect(checkRequestShape(payload, 10)).toEqual([]);
        const keys = Object.keys(msg);
        const victim = keys[pick % keys.length]!;
        const planted = mp.map(keys.map((k) => [k, k === victim ? bad : encodePayload(msg[k])] as [string, Buffer]));
        expect(checkRequestShape(planted, 10)).toEqual([expect.objectContaining({ path: [victim], message: expect.any(String) as string })]);
      }),
    );
  });

  it('on arbitrary bytes it returns or throws a FrameError, nothing else', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          checkRequestShape(bytes, 10);
        } catch (e) {
          expect(e).toBeInstanceOf(FrameError);
        }
      }),
    );
  });
});

describe('64-bit integers, floats, non-str keys and invalid UTF-8 (items 9, 10, 16)', () => {
  it('names the field instead of failing internal, and keeps the connection', async () => {
    await start();
    const c = await client();
    const get = (id: number, extra: Array<[string | Buffer, Buffer]>): Buffer => mp.map([...base(id, 'get'), ['table', mp.str('t')], ['key', mp.str('k')], ...extra]);
    const cases: Array<[Buffer, number, string]> = [
      [get(1, [['timeoutMs', mp.u64(1n << 63n)]]), 1, 'timeoutMs'],
      [get(2, [['n', mp.i64(-(1n << 62n))]]), 2, 'n'],
      [get(3, [['r', mp.f64(2)]]), 3, 'r'],
      [get(4, [['frobnicate', mp.u64((1n << 64n) - 1n)]]), 4, 'frobnicate'],
      [get(5, [[mp.v(1), mp.str('x')]]), 5, '(int key)'],
      [get(6, [[mp.v(true), mp.str('x')]]), 6, '(bool key)'],
      [mp.map([...base(7, 'get'), ['table', mp.str('t')], ['key', mp.rawStr(Buffer.from([0x61, 0xff]))]]), 7, 'key'],
      [mp.map([...base(8, 'put'), ['table', mp.str('t')], ['key', mp.str('k')], ['value', mp.f64(1.5)]]), 8, 'value'],
    ];
    for (const [payload, id, field] of cases) {
      const r = await raw(c, payload, id);
      expect(r, field).toMatchObject({ id, ok: false, code: 'bad_request', field });
      expect(String(r['message'])).not.toMatch(/BigInt/);
    }
    // 64-bit encodings of small values are ordinary integers (Go's msgpack sends every int64 as 0xd3).
    expect(await raw(c, get(20, [['n', mp.i64(3n)], ['r', mp.u64(2n)], ['timeoutMs', mp.u64(1000n)]]), 20)).toMatchObject({ ok: true, found: false });
    expect(await raw(c, mp.map([['id', mp.u64(21n)], ['op', mp.str('status')]]), 21)).toMatchObject({ ok: true });
    expect(router.reads).toBe(1);
    expect(c.closed).toBe(false);
  });

  it('a problem inside a batch item fails that item only', async () => {
    await start();
    const c = await client();
    const item = (k: string, extra: Array<[string | Buffer, Buffer]> = []): Buffer => mp.map([['op', mp.str('put')], ['table', mp.str('t')], ['key', mp.str(k)], ['value', mp.str('v')], ...extra]);
    const r = await raw(c, mp.map([...base(1, 'batch'), ['items', mp.arr([item('a'), item('b', [['w', mp.u64(1n << 60n)]]), item('c', [[mp.v(7), mp.v(1)]]), item('d', [['w', mp.f64(1)]]), item('e')])]]), 1);
    const results = r['results'] as Array<Record<string, unknown>>;
    expect(results.map((x) => x['ok'])).toEqual([true, false, false, false, true]);
    expect(results[1]).toMatchObject({ code: 'bad_request', field: 'w' });
    expect(results[2]).toMatchObject({ code: 'bad_request', field: '(int key)' });
    expect(results[3]).toMatchObject({ code: 'bad_request', field: 'w' });
    expect(router.writes).toBe(2);
  });

  it('a float, 64-bit or missing id closes the connection with an id-nil error', async () => {
    await start();
    for (const id of [mp.f64(1), mp.u64(1n << 60n)]) {
      const c = await client();
      c.socket.write(mp.frame(mp.map([['id', id], ['op', mp.str('status')]])));
      await c.waitClosed();
      expect(c.replies).toEqual([expect.objectContaining({ id: null, ok: false, code: 'bad_request' })]);
    }
  });

  it('refuses options that do not apply to the op (nil is absent)', async () => {
    await start();
    const c = await client();
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ op: 'get', table: 't', key: 'k', w: 2 }, 'w'],
      [{ op: 'get', table: 't', key: 'k', context: 'c' }, 'context'],
      [{ op: 'get', table: 't', key: 'k', value: 'v' }, 'value'],
      [{ op: 'put', table: 't', key: 'k', value: 'v', r: 2 }, 'r'],
      [{ op: 'put', table: 't', key: 'k', value: 'v', limit: 5 }, 'limit'],
      [{ op: 'del', table: 't', key: 'k', value: 'v' }, 'value'],
      [{ op: 'scan', table: 't', key: 'k', limit: 5, w: 1 }, 'w'],
      [{ op: 'ring', digest: 42 }, 'digest'],
      [{ op: 'ring', table: 't' }, 'table'],
      [{ op: 'status', key: 'k' }, 'key'],
      [{ op: 'batch', items: [], table: 't' }, 'table'],
    ];
    let id = 100;
    for (const [msg, field] of cases) {
      expect(await c.request({ ...msg, id: ++id }), JSON.stringify(msg)).toMatchObject({ ok: false, code: 'bad_request', field });
    }
    const b = await c.request({ id: 1, op: 'batch', items: [{ op: 'get', table: 't', key: 'k', w: 1 }, { op: 'get', table: 't', key: 'k', id: 9 }, { op: 'get', table: 't', key: 'k', w: null }] });
    expect((b['results'] as Reply[]).map((x) => x['field'] ?? x.ok)).toEqual(['w', 'id', true]);
    expect(router.writes).toBe(0);
    expect(await c.request({ id: 2, op: 'ring', digest: RING.digest })).toMatchObject({ ok: true, unchanged: true });
    expect('unchanged' in (await c.request({ id: 3, op: 'ring', digest: 'old' }))).toBe(false);
  });
});

describe('a bad frame after good ones in the same write (item 14)', () => {
  it('answers (and runs) every complete frame before it, then the id-nil error; nothing after it runs', async () => {
    await start();
    const c = await client();
    const bad = Buffer.concat([Buffer.from([0, 0, 0, 1]), Buffer.from([0xc1])]);
    c.socket.write(
      Buffer.concat([
        encodeFrame({ id: 1, op: 'put', table: 't', key: 'before', value: 'x' }),
        encodeFrame({ id: 2, op: 'get', table: 't', key: 'before' }),
        bad,
        encodeFrame({ id: 3, op: 'put', table: 't', key: 'after', value: 'x' }),
      ]),
    );
    await c.waitClosed();
    expect(c.replies.map((r) => r.id)).toEqual([1, 2, null]);
    expect(c.replies[0]).toMatchObject({ ok: true });
    expect(c.replies[2]).toMatchObject({ ok: false, code: 'bad_request' });
    expect(router.store.has(`t/${Buffer.from('before').toString('hex')}`)).toBe(true);
    expect(router.store.has(`t/${Buffer.from('after').toString('hex')}`)).toBe(false);
  });

  it('waits for a request still at the router before closing', async () => {
    await start({ maxFrameBytes: 1024 });
    const c = await client();
    router.gate = (k) => k === 'held';
    const tooBig = Buffer.from([0, 0, 0x10, 0]); // a 4096-byte length prefix, over the limit
    c.socket.write(Buffer.concat([encodeFrame({ id: 1, op: 'put', table: 't', key: 'held', value: 'x' }), tooBig]));
    await until('held at the router', () => router.heldCount === 1);
    expect(c.closed).toBe(false);
    router.release();
    await c.waitClosed();
    expect(c.replies.map((r) => [r.id, r.ok])).toEqual([
      [1, true],
      [null, false],
    ]);
    expect(c.replies[1]).toMatchObject({ code: 'too_large' });
  });
});

describe('batch replies past the frame limit (item 15)', () => {
  it('the gets that return values are a prefix, whatever the completion order; writes are never cut', async () => {
    // Two requests in flight at a time, so the last get cannot start before the cut is known.
    await start({ maxFrameBytes: 64 * 1024, maxValueBytes: 20 * 1024, maxInFlightPerConnection: 2 });
    const c = await client();
    const v = Buffer.alloc(20 * 1024, 7);
    for (let i = 0; i < 6; i++) await c.request({ id: i + 1, op: 'put', table: 't', key: `big${i}`, value: v });
    const reads0 = router.reads;
    // Three 20 KiB values fit in a 64 KiB reply. Items 0 and 1 are held back, so items 2.. complete
    // first: deciding in completion order would keep 2, 3 and 4 and cut 0 and 1.
    router.gate = (k) => k === 'big0' || k === 'big1';
    const items = [
      { op: 'get', table: 't', key: 'big0' },
      { op: 'get', table: 't', key: 'big1' },
      { op: 'get', table: 't', key: 'big2' },
      { op: 'put', table: 't', key: 'small', value: 's' },
      { op: 'get', table: 't', key: 'big3' },
      { op: 'get', table: 't', key: 'big4' },
      { op: 'get', table: 't', key: 'big5' },
    ];
    c.send({ id: 10, op: 'batch', items });
    await until('gets at the router', () => router.heldCount === 2);
    router.release();
    const r = await until('batch reply', () => c.replies.find((x) => x.id === 10));
    const res = r['results'] as Array<Record<string, unknown>>;
    expect(res.map((x) => (x['ok'] === true ? 'ok' : x['code']))).toEqual(['ok', 'ok', 'ok', 'ok', 'too_large', 'too_large', 'too_large']);
    expect((res[0]!['value'] as Buffer).equals(v)).toBe(true);
    expect(router.store.has(`t/${Buffer.from('small').toString('hex')}`)).toBe(true);
    // A cut get that ran carries its context; gets past the cut that had not started never ran.
    expect(res[4]).toMatchObject({ code: 'too_large', context: 'rctx' });
    expect(res[6]).not.toHaveProperty('context');
    expect(router.reads - reads0).toBe(5);
  });

  it('BatchAssembly: successes among gets are a prefix, every item is answered once, held bytes stay within the budget', () => {
    const kind = fc.constantFrom('put', 'get', 'del', 'invalid') as fc.Arbitrary<'put' | 'get' | 'del' | 'invalid'>;
    fc.assert(
      fc.property(fc.array(fc.record({ kind, size: fc.integer({ min: 0, max: 5000 }) }), { minLength: 1, maxLength: 40 }), fc.integer({ min: 1000, max: 40_000 }), fc.infiniteStream(fc.nat()), (spec, budget, picks) => {
        const a = new BatchAssembly(1, spec.map((s) => s.kind), budget, budget + 1024);
        const open = spec.map((_, i) => i);
        const it = picks[Symbol.iterator]();
        let last = false;
        while (open.length > 0) {
          const [i] = open.splice(it.next().value! % open.length, 1);
          const s = spec[i!]!;
          const result: BatchItemResult =
            s.kind === 'invalid'
              ? { ok: false, code: 'bad_request', message: 'x' }
              : s.kind === 'get'
                ? a.shouldRun(i!)
                  ? { ok: true, found: true, value: Buffer.alloc(s.size), context: 'c', consistency: { n: 1, required: 1, replied: 1 } }
                  : a.cutResult(i!)
                : { ok: true, context: 'c', consistency: { n: 1, required: 1, replied: 1 } };
          last = a.set(i!, result);
          expect(last).toBe(open.length === 0);
          // What the server holds on the connection's account for the batch: every recorded result.
          const recorded = a.results.reduce((n, r) => n + (r ? estimateBytes(r as GetOk) : 0), 0);
          expect(a.resultBytes).toBe(recorded);
          // Held get values never exceed the budget (plus the per-item overhead of what is pending).
          expect(a.heldEstimate()).toBeLessThanOrEqual(budget + REPLY_OVERHEAD * spec.length);
        }
        const gets = spec.map((s, i) => (s.kind === 'get' ? i : -1)).filter((i) => i >= 0);
        const okGets = gets.filter((i) => a.results[i]!.ok);
        expect(okGets).toEqual(gets.slice(0, okGets.length));
        for (let i = 0; i < spec.length; i++) if (spec[i]!.kind === 'put' || spec[i]!.kind === 'del') expect(a.results[i]!.ok).toBe(true);
        // The kept gets fit the budget.
        const kept = okGets.reduce((n, i) => n + spec[i]!.size + REPLY_OVERHEAD, 0);
        expect(kept).toBeLessThanOrEqual(budget);
      }),
    );
  });
});

describe('a get whose siblings exceed the frame limit (item 13)', () => {
  it('answers too_large with the context, the siblings that fit, and which were left out', async () => {
    await start({ maxFrameBytes: 64 * 1024, maxValueBytes: 64 * 1024 });
    const c = await client();
    const big = Buffer.alloc(63 * 1024, 1);
    await c.request({ id: 1, op: 'put', table: 't', key: 'sibbig', value: big });
    // The fake answers keys starting with "sib" with two siblings: the stored value and "other".
    const r = await c.request({ id: 2, op: 'get', table: 't', key: 'sibbig' });
    expect(r).toMatchObject({ ok: false, code: 'too_large', context: 'rctx', omitted: [0], sizes: [big.length, 5] });
    expect(r['siblings']).toEqual([null, Buffer.from('other')]);
    // With that context a writer resolves the key.
    expect(await c.request({ id: 3, op: 'put', table: 't', key: 'sibbig', value: 'resolved', context: r['context'] })).toMatchObject({ ok: true });
  });
});
