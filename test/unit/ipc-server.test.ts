import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { promiseRouter, startIpcServer, type IpcDeps, type IpcServer, type RingInfo } from '../../src/api/ipc-server.js';
import { encodeFrame } from '../../src/net/frames.js';
import { ReplyBudget } from '../../src/net/reply-budget.js';
import { RingkvError } from '../../src/util/errors.js';
import { FakeRouter, ipcTeardown, RawClient, until } from '../helpers/ipc-fakes.js';

const log = pino({ level: 'silent' });
const RING: RingInfo = { digest: 'feedfacecafebeef', version: 3, nodes: [], tokens: [], replicas: 0, pref: [] };

let dir: string;
let sock: string;
let server: IpcServer | undefined;
let router: FakeRouter;
const clients: RawClient[] = [];

async function start(limits: Partial<IpcDeps['limits']> = {}, extra: Partial<IpcDeps> = {}): Promise<IpcServer> {
  server = await startIpcServer({
    path: sock,
    router: promiseRouter(router),
    ringInfo: () => RING,
    clusterStatus: async () => ({ self: 'n1', nodes: 1 }),
    limits: { maxKeyBytes: 1024, maxValueBytes: 1024 * 1024, maxFrameBytes: 4 * 1024 * 1024, maxInFlightPerConnection: 1024, ...limits },
    log,
    nodeId: 'n1',
    ...extra,
  });
  return server;
}

async function client(opts: { read?: boolean } = {}): Promise<RawClient> {
  const c = await RawClient.connect(sock, opts);
  clients.push(c);
  return c;
}

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'rkv-ipc-'));
  sock = path.join(dir, 's.sock');
  router = new FakeRouter();
});

afterEach(async () => {
  await ipcTeardown({ router, clients, server, dir });
  server = undefined;
});

describe('ipc server: requests', () => {
  it('round-trips put/get/del with string and binary keys, byte-exact binary values', async () => {
    await start();
    const c = await client();
    const allBytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const big = Buffer.alloc(200_000);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) & 0xff;
    const binKey = Buffer.from([0, 255, 10, 13, 0]);

    const p1 = await c.request({ id: 1, op: 'put', table: 't', key: 'k1', value: allBytes });
    expect(p1).toMatchObject({ id: 1, ok: true, context: 'ctx-1', rv: RING.digest, consistency: { n: 1, required: 1, replied: 1 } });
    await c.request({ id: 2, op: 'put', table: 't', key: binKey, value: big, w: 1 });
    await c.request({ id: 3, op: 'put', table: 't', key: 'ünïcode', value: 'text value', consistency: 'one' });

    const g1 = await c.request({ id: 4, op: 'get', table: 't', key: 'k1' });
    expect(g1.found).toBe(true);
    expect(Buffer.compare(g1['value'] as Buffer, allBytes)).toBe(0);
    expect(g1['context']).toBe('rctx');
    const g2 = await c.request({ id: 5, op: 'get', table: 't', key: binKey, r: 1 });
    expect(Buffer.compare(g2['value'] as Buffer, big)).toBe(0);
    // A string key and its UTF-8 bytes as bin name the same key.
    const g3 = await c.request({ id: 6, op: 'get', table: 't', key: Buffer.from('ünïcode', 'utf8') });
    expect((g3['value'] as Buffer).toString('utf8')).toBe('text value');

    const missing = await c.request({ id: 7, op: 'get', table: 't', key: 'nope' });
    expect(missing).toMatchObject({ id: 7, ok: true, found: false, context: '' });
    expect('value' in missing).toBe(false);

    const d = await c.request({ id: 8, op: 'del', table: 't', key: 'k1', context: 'rctx' });
    expect(d).toMatchObject({ ok: true, context: 'ctx-4' });
    expect((await c.request({ id: 9, op: 'get', table: 't', key: 'k1' })).found).toBe(false);
  });

  it('returns siblings, router errors, ring and status', async () => {
    await start();
    const c = await client();
    await c.request({ id: 1, op: 'put', table: 't', key: 'sib1', value: Buffer.from('mine') });
    const s = await c.request({ id: 2, op: 'get', table: 't', key: 'sib1' });
    expect(s.found).toBe(true);
    expect('value' in s).toBe(false);
    expect((s['siblings'] as Buffer[]).map((b) => b.toString())).toEqual(['mine', 'other']);

    const e = await c.request({ id: 3, op: 'get', table: 't', key: 'boom' });
    expect(e).toMatchObject({ id: 3, ok: false, code: 'unavailable', rv: RING.digest });
    expect(String(e['message'])).toMatch(/quorum/);

    const r = await c.request({ id: 4, op: 'ring' });
    expect(r).toMatchObject({ ok: true, node: 'n1', protocol: 1, ring: RING, limits: { maxKeyBytes: 1024, maxInFlightPerConnection: 1024 } });
    const r2 = await c.request({ id: 5, op: 'ring', digest: RING.digest });
    expect(r2).toMatchObject({ ok: true, unchanged: true });
    expect('ring' in r2).toBe(false);
    expect(await c.request({ id: 6, op: 'status' })).toMatchObject({ ok: true, status: { self: 'n1', nodes: 1 } });
  });

  it('answers validation errors naming the field, stores nothing, and keeps the connection', async () => {
    await start({ maxKeyBytes: 8, maxValueBytes: 16 });
    const c = await client();
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ op: 'put', key: 'k', value: 'v' }, 'bad_request', 'table'],
      [{ op: 'put', table: 'bad name!', key: 'k', value: 'v' }, 'bad_request', 'table'],
      [{ op: 'put', table: 't', key: '', value: 'v' }, 'bad_request', 'key'],
      [{ op: 'put', table: 't', key: 42, value: 'v' }, 'bad_request', 'key'],
      [{ op: 'put', table: 't', key: 'a-very-long-key', value: 'v' }, 'too_large', 'key'],
      [{ op: 'put', table: 't', key: 'k' }, 'bad_request', 'value'],
      [{ op: 'put', table: 't', key: 'k', value: Buffer.alloc(17) }, 'too_large', 'value'],
      [{ op: 'put', table: 't', key: 'k', value: 'v', context: 5 }, 'bad_request', 'context'],
      [{ op: 'put', table: 't', key: 'k', value: 'v', consistency: 'MOST' }, 'bad_request', 'consistency'],
      [{ op: 'put', table: 't', key: 'k', value: 'v', w: 9 }, 'bad_request', 'w'],
      [{ op: 'get', table: 't', key: 'k', r: 0 }, 'bad_request', 'r'],
      [{ op: 'get', table: 't', key: 'k', timeoutMs: -1 }, 'bad_request', 'timeoutMs'],
      [{ op: 'frobnicate', table: 't', key: 'k' }, 'bad_request', 'op'],
      [{ table: 't', key: 'k' }, 'bad_request', 'op'],
      [{ op: 'batch', items: 'nope' }, 'bad_request', 'items'],
    ];
    let id = 100;
    for (const [msg, code, field] of cases) {
      const r = await c.request({ ...msg, id: ++id });
      expect(r, JSON.stringify(msg)).toMatchObject({ id, ok: false, code, field });
      expect(typeof r['message']).toBe('string');
    }
    expect(router.writes + router.reads).toBe(0);
    expect(c.closed).toBe(false);
    expect(await c.request({ id: 1, op: 'put', table: 't', key: 'k', value: 'v' })).toMatchObject({ ok: true });
    expect(server!.stats().badFrames).toBe(0);
  });

  it('pipelines requests and answers out of order, matched by id', async () => {
    await start();
    const c = await client();
    router.gate = (k) => k.startsWith('slow');
    // Slow requests first, then fast ones: the fast replies must overtake them.
    for (let i = 0; i < 5; i++) c.send({ id: 1000 + i, op: 'put', table: 't', key: `slow-${i}`, value: `S${i}` });
    for (let i = 0; i < 200; i++) c.send({ id: i, op: 'put', table: 't', key: `fast-${i}`, value: `F${i}` });
    await until('200 fast replies', () => c.replies.length >= 200);
    expect(router.heldCount).toBe(5);
    expect(c.replies.every((r) => (r.id as number) < 1000)).toBe(true);
    router.release();
    await until('all replies', () => c.replies.length === 205);
    expect(new Set(c.replies.map((r) => r.id)).size).toBe(205);
    expect(c.replies.slice(200).map((r) => r.id).sort()).toEqual([1000, 1001, 1002, 1003, 1004]);

    // Pipelined gets: each reply carries the value of the key its id asked for.
    c.replies.length = 0;
    router.gate = (k) => k.startsWith('fast-1'); // hold some of them back again
    for (let i = 0; i < 200; i++) c.send({ id: 5000 + i, op: 'get', table: 't', key: `fast-${i}` });
    await until('unheld get replies', () => c.replies.length === 200 - router.heldCount && router.heldCount > 0);
    router.release();
    await until('all get replies', () => c.replies.length === 200);
    for (const r of c.replies) expect((r['value'] as Buffer).toString()).toBe(`F${(r.id as number) - 5000}`);
    expect(c.replies.map((r) => r.id)).not.toEqual([...c.replies.map((r) => r.id)].sort((a, b) => (a as number) - (b as number)));
  });

  it('runs a batch of 10,000 puts as one reply, per-item errors in place, within the in-flight bound', async () => {
    await start({ maxInFlightPerConnection: 256 });
    const c = await client();
    const items: Record<string, unknown>[] = [];
    for (let i = 0; i < 10_000; i++) items.push({ op: 'put', table: 'bulk', key: `key-${i}`, value: Buffer.from([i & 0xff, (i >> 8) & 0xff, 0, 255]) });
    items[17] = { op: 'put', table: 'bulk', key: '', value: 'x' };
    items[9_999] = { op: 'nope', table: 'bulk', key: 'x' };
    const r = await c.request({ id: 1, op: 'batch', items });
    expect(r.ok).toBe(true);
    const results = r['results'] as Array<Record<string, unknown>>;
    expect(results).toHaveLength(10_000);
    expect(results[17]).toMatchObject({ ok: false, code: 'bad_request', field: 'key' });
    expect(results[9_999]).toMatchObject({ ok: false, code: 'bad_request', field: 'op' });
    expect(results.filter((x) => x['ok'] === true)).toHaveLength(9_998);
    expect(router.store.size).toBe(9_998);
    expect(server!.stats().maxInFlightSeen).toBeLessThanOrEqual(256);
    expect(router.maxActive).toBeLessThanOrEqual(256);

    // Read them back in one batch: values byte-exact, in request order.
    const gets = Array.from({ length: 10_000 }, (_, i) => ({ op: 'get', table: 'bulk', key: `key-${i}` }));
    const g = await c.request({ id: 2, op: 'batch', items: gets, timeoutMs: 5000 });
    const gr = g['results'] as Array<Record<string, unknown>>;
    for (const i of [0, 1, 255, 256, 5000, 9998]) expect([...(gr[i]!['value'] as Buffer)]).toEqual([i & 0xff, (i >> 8) & 0xff, 0, 255]);
    expect(gr[17]).toMatchObject({ ok: true, found: false });
    expect(await c.request({ id: 3, op: 'batch', items: [] })).toMatchObject({ ok: true, results: [] });
  });

  it('keeps batch replies under the frame limit', async () => {
    await start({ maxFrameBytes: 64 * 1024, maxValueBytes: 20 * 1024 });
    const c = await client();
    const v = Buffer.alloc(20 * 1024, 7);
    for (let i = 0; i < 5; i++) await c.request({ id: i + 1, op: 'put', table: 't', key: `big${i}`, value: v });
    const before = c.bytesIn;
    const r = await c.request({ id: 10, op: 'batch', items: Array.from({ length: 5 }, (_, i) => ({ op: 'get', table: 't', key: `big${i}` })) });
    const replyFrameBytes = c.bytesIn - before;
    const results = r['results'] as Array<Record<string, unknown>>;
    // Three 20 KiB values fit in a 64 KiB frame with their overhead, a fourth would not: the
    // values that do not fit are cut (too_large), and the reply frame really is under the limit.
    expect(results.map((x) => (x['ok'] === true ? 'ok' : x['code']))).toEqual(['ok', 'ok', 'ok', 'too_large', 'too_large']);
    for (const x of results.slice(0, 3)) expect((x['value'] as Buffer).equals(v)).toBe(true);
    expect(replyFrameBytes).toBeGreaterThan(3 * v.length);
    expect(replyFrameBytes).toBeLessThanOrEqual(64 * 1024);
    expect(c.closed).toBe(false);
  });
});

describe('ipc server: query and ttl', () => {
  it('passes a query with float and bin params to the CQL handler, refuses floats elsewhere, forwards a put ttl', async () => {
    const seen: unknown[] = [];
    await start({}, { query: async (q) => (seen.push(q), { kind: 'applied', applied: true }) });
    const c = await client();
    const ok = await c.request({ id: 1, op: 'query', query: 'INSERT INTO t (k, d, b) VALUES (?, ?, ?)', params: ['k', 1.5, Buffer.from([1, 2])], consistency: 'ONE' });
    expect(ok).toMatchObject({ id: 1, ok: true, kind: 'applied', applied: true });
    expect(seen).toEqual([{ query: 'INSERT INTO t (k, d, b) VALUES (?, ?, ?)', readOnly: false, params: ['k', 1.5, Buffer.from([1, 2])], consistency: { level: 'ONE' }, pageSize: undefined, pagingState: undefined, timeoutMs: undefined }]);
    const float = await c.request({ id: 2, op: 'query', query: 'SELECT * FROM t', pageSize: 2.5 });
    expect(float).toMatchObject({ id: 2, ok: false, code: 'bad_request', field: 'pageSize' });
    const foreign = await c.request({ id: 3, op: 'query', query: 'SELECT * FROM t', table: 't' });
    expect(foreign).toMatchObject({ id: 3, ok: false, code: 'bad_request', field: 'table' });
    await c.request({ id: 4, op: 'put', table: 't', key: 'k', value: 'v', ttl: 30 });
    expect(router.lastWrite?.ttlSeconds).toBe(30);
    expect(await c.request({ id: 5, op: 'put', table: 't', key: 'k', value: 'v', ttl: -1 })).toMatchObject({ ok: false, field: 'ttl' });
    expect(await c.request({ id: 6, op: 'get', table: 't', key: 'k', ttl: 5 })).toMatchObject({ ok: false, field: 'ttl' });
    expect(seen).toHaveLength(1);
  });
});

describe('ipc server: bad frames', () => {
  it('closes only the offending connection on malformed, id-less, oversized and truncated frames', async () => {
    await start({ maxFrameBytes: 1024 });
    const good = await client();
    expect(await good.request({ id: 1, op: 'put', table: 't', key: 'a', value: 'b' })).toMatchObject({ ok: true });

    const header = (n: number): Buffer => {
      const h = Buffer.alloc(4);
      h.writeUInt32BE(n);
      return h;
    };
    // 0xc1 is never valid msgpack.
    const malformed = await client();
    malformed.socket.write(Buffer.concat([header(1), Buffer.from([0xc1])]));
    await malformed.waitClosed();
    expect(malformed.replies[0]).toMatchObject({ id: null, ok: false, code: 'bad_request' });

    const noId = await client();
    noId.send({ op: 'get', table: 't', key: 'a' });
    await noId.waitClosed();
    expect(noId.replies[0]).toMatchObject({ id: null, ok: false });

    const notMap = await client();
    notMap.send([1, 2, 3] as unknown as Record<string, unknown>);
    await notMap.waitClosed();

    const oversized = await client();
    oversized.socket.write(header(1025));
    await oversized.waitClosed();
    expect(oversized.replies[0]).toMatchObject({ id: null, code: 'too_large' });

    const truncated = await client();
    const frame = encodeFrame({ id: 1, op: 'put', table: 't', key: 'x', value: 'never' });
    truncated.socket.end(frame.subarray(0, frame.length - 3));
    await truncated.waitClosed();

    // Requests pipelined after a bad frame on the same connection are not executed.
    const after = await client();
    after.socket.write(Buffer.concat([header(1), Buffer.from([0xc1]), encodeFrame({ id: 2, op: 'put', table: 't', key: 'after', value: 'x' })]));
    await after.waitClosed();

    expect(server!.stats().badFrames).toBe(6);
    expect(router.store.has(`t/${Buffer.from('x').toString('hex')}`)).toBe(false);
    expect(router.store.has(`t/${Buffer.from('after').toString('hex')}`)).toBe(false);
    expect(good.closed).toBe(false);
    const g = await good.request({ id: 2, op: 'get', table: 't', key: 'a' });
    expect(g).toMatchObject({ ok: true, found: true });
    expect((g['value'] as Buffer).toString()).toBe('b');
    await until('only the good connection left', () => server!.stats().connections === 1);
  });

  it('answers a client that half-closes after its last request', async () => {
    await start();
    const c = await client();
    router.gate = () => true;
    c.send({ id: 1, op: 'put', table: 't', key: 'k', value: 'v' });
    c.socket.end();
    await until('request at the router', () => router.heldCount === 1);
    router.release();
    await until('reply', () => c.replies.length === 1);
    expect(c.replies[0]).toMatchObject({ id: 1, ok: true });
    await c.waitClosed();
  });
});

describe('ipc server: backpressure', () => {
  it('stops reading at maxInFlightPerConnection and resumes below it', async () => {
    await start({ maxInFlightPerConnection: 32 });
    const c = await client();
    router.gate = () => true;
    for (let i = 0; i < 500; i++) c.send({ id: i, op: 'put', table: 't', key: `k${i}`, value: 'v' });
    await until('32 requests at the router', () => router.heldCount === 32);
    const s = server!.stats();
    expect(s.inFlight).toBe(32);
    expect(s.pausedConnections).toBe(1);
    expect(router.writes).toBe(32);
    // Drain: every release lets the next 32 in, never more.
    while (c.replies.length < 500) {
      router.release();
      await until('progress', () => router.heldCount > 0 || c.replies.length === 500);
    }
    expect(router.maxActive).toBe(32);
    expect(server!.stats().maxInFlightSeen).toBe(32);
    expect(new Set(c.replies.map((r) => r.id)).size).toBe(500);
  });

  it('holds the in-flight bound against a slow reader that never reads replies', async () => {
    const max = 64;
    await start({ maxInFlightPerConnection: max });
    const writer = await client();
    await writer.request({ id: 0, op: 'put', table: 't', key: 'big', value: Buffer.alloc(64 * 1024, 1) });

    const slow = await client({ read: false });
    slow.socket.pause();
    const N = 2000;
    for (let i = 1; i <= N; i++) slow.send({ id: i, op: 'get', table: 't', key: 'big' });
    // Stuck: nothing in flight, yet the connection stays paused because its replies are not read.
    await until('server blocked on the slow reader', () => {
      const s = server!.stats();
      return s.pausedConnections >= 1 && s.inFlight === 0 && router.reads > 0 || undefined;
    });
    const readsWhileBlocked = router.reads;
    expect(readsWhileBlocked).toBeLessThan(N / 2);
    expect(server!.stats().maxInFlightSeen).toBeLessThanOrEqual(max);

    // Another connection is unaffected.
    expect(await writer.request({ id: 1, op: 'get', table: 't', key: 'nothing' })).toMatchObject({ ok: true, found: false });

    slow.startReading();
    await until('all slow replies', () => slow.replies.length === N, 10_000);
    expect(slow.replies.every((r) => r.ok === true && (r['value'] as Buffer).length === 64 * 1024)).toBe(true);
    expect(server!.stats().maxInFlightSeen).toBeLessThanOrEqual(max);
    expect(server!.stats().pauses).toBeGreaterThan(0);
  });
});

describe('ipc server: reply bytes', () => {
  /**
   * A server whose connections may hold 200 KiB of replies, and a reading client that has stored
   * a 64 KiB value under 'big' and read 150 small values, so the connection's reply estimate is
   * small and the reads that follow start all at once.
   */
  async function lowEstimateClient(limits: Partial<IpcDeps['limits']> = {}): Promise<{ c: RawClient; replies: ReplyBudget; per: number; big: Buffer }> {
    const per = 200 * 1024;
    const replies = new ReplyBudget({ maxReplyBytesPerConnection: per, maxReplyBytesTotal: 64 * per });
    await start(limits, { replies });
    const c = await client();
    const big = Buffer.alloc(64 * 1024, 7);
    await c.request({ id: 1, op: 'put', table: 't', key: 'big', value: big });
    await c.request({ id: 2, op: 'put', table: 't', key: 'small', value: 's' });
    for (let i = 0; i < 150; i++) c.send({ id: 100 + i, op: 'get', table: 't', key: 'small' });
    await until('small reads', () => c.replies.filter((r) => r.id >= 100 && r.id < 250).length === 150 || undefined);
    return { c, replies, per, big };
  }

  it('holds at most maxReplyBytesPerConnection for a client that does not read, even when its reply sizes jump', async () => {
    const per = 256 * 1024;
    const replies = new ReplyBudget({ maxReplyBytesPerConnection: per, maxReplyBytesTotal: 64 * per });
    await start({}, { replies });
    const writer = await client();
    const big = Buffer.alloc(64 * 1024, 2);
    await writer.request({ id: 1, op: 'put', table: 't', key: 'big', value: big });
    await writer.request({ id: 2, op: 'put', table: 't', key: 'small', value: 's' });

    const slow = await client({ read: false });
    slow.socket.pause();
    // Small replies first: the connection's estimate falls to their size, so many reads may start...
    for (let i = 1; i <= 200; i++) slow.send({ id: i, op: 'get', table: 't', key: 'small' });
    await until('small reads done', () => router.reads >= 200 || undefined);
    // ...then large ones: those that finish when the connection already holds its bound run again later.
    const N = 300;
    for (let i = 201; i < 201 + N; i++) slow.send({ id: i, op: 'get', table: 't', key: 'big' });
    await until('the connection stuck at its bound', () => (replies.stats().connectionsAtLimit === 1 && server!.stats().inFlight === 0) || undefined);
    expect(replies.stats().rerunsOverBudget).toBeGreaterThan(0);
    expect(replies.stats().heldBytes).toBeLessThanOrEqual(per);
    expect(server!.stats().replyBytes).toBeLessThanOrEqual(per);

    slow.startReading();
    await until('every reply', () => slow.replies.length === 200 + N, 10_000);
    for (const r of slow.replies) {
      expect(r.ok).toBe(true);
      expect((r['value'] as Buffer).equals(r.id <= 200 ? Buffer.from('s') : big)).toBe(true);
    }
    expect(new Set(slow.replies.map((r) => r.id)).size).toBe(200 + N);
    slow.close();
    await until('bytes released', () => replies.stats().heldBytes + replies.stats().reservedBytes === 0 || undefined);
  });

  it('answers a batch whose reply is larger than the per-connection bound (its items never wait for each other)', async () => {
    const per = 256 * 1024;
    await start({}, { replies: new ReplyBudget({ maxReplyBytesPerConnection: per, maxReplyBytesTotal: 64 * per }) });
    const c = await client();
    const big = Buffer.alloc(64 * 1024, 5);
    await c.request({ id: 1, op: 'put', table: 't', key: 'big', value: big });
    const items = Array.from({ length: 12 }, () => ({ op: 'get', table: 't', key: 'big' }));
    const r = await c.request({ id: 2, op: 'batch', items });
    const results = r['results'] as Array<Record<string, unknown>>;
    expect(results).toHaveLength(12);
    for (const it of results) expect((it['value'] as Buffer).equals(big)).toBe(true);
  });

  it("holds a batch's out-of-order results on the connection's account, and a re-run batch get keeps the successful gets a prefix", async () => {
    // Four 64 KiB values fit in one reply frame, five do not.
    const { c, replies, per, big } = await lowEstimateClient({ maxFrameBytes: 300 * 1024, maxValueBytes: 128 * 1024 });

    router.gate = (k) => k === 'big' || k === 'gated';
    const a = { id: 500, op: 'batch', items: [{ op: 'get', table: 't', key: 'gated' }, ...Array.from({ length: 3 }, () => ({ op: 'get', table: 't', key: 'big' }))] };
    const b = { id: 501, op: 'batch', items: Array.from({ length: 6 }, () => ({ op: 'get', table: 't', key: 'big' })) };
    c.socket.write(Buffer.concat([encodeFrame(a), encodeFrame(b)]));
    await until('both batches running', () => router.heldCount === 10 || undefined);
    // A's three values finish first, out of order (its item 0 is still held): ~192 KiB on the
    // account. B's values then do not fit beside them and are dropped to run again.
    router.release((k) => k === 'big');
    await until('B waiting for room', () => (replies.stats().rerunsOverBudget >= 6 && server!.stats().inFlight === 1) || undefined);
    expect(replies.stats().heldBytes).toBeGreaterThanOrEqual(3 * big.length);
    expect(replies.stats().heldBytes).toBeLessThanOrEqual(per);
    expect(c.replies.some((r) => r.id === 500 || r.id === 501)).toBe(false);

    router.gate = undefined;
    router.release();
    const ra = await until('batch A', () => c.replies.find((r) => r.id === 500));
    const rb = await until('batch B', () => c.replies.find((r) => r.id === 501));
    const resA = ra['results'] as Array<Record<string, unknown>>;
    expect(resA[0]).toMatchObject({ ok: true, found: false });
    for (const it of resA.slice(1)) expect((it['value'] as Buffer).equals(big)).toBe(true);
    const resB = rb['results'] as Array<Record<string, unknown>>;
    expect(resB.map((r) => r['ok'])).toEqual([true, true, true, true, false, false]);
    for (const it of resB.slice(0, 4)) expect((it['value'] as Buffer).equals(big)).toBe(true);
    for (const it of resB.slice(4)) expect(it['code']).toBe('too_large');
    c.close();
    await until('bytes released', () => replies.stats().heldBytes + replies.stats().reservedBytes === 0 || undefined);
  });

  it('never runs a crdt_update again when its reply does not fit (it would count twice), and answers each once', async () => {
    const per = 200 * 1024;
    const replies = new ReplyBudget({ maxReplyBytesPerConnection: per, maxReplyBytesTotal: 64 * per });
    // Each update answers a ~70 KiB set value, once the test releases it.
    const held: Array<() => void> = [];
    let started = 0;
    const bigSet = Array.from({ length: 4000 }, (_, i) => `element-${String(i).padStart(6, '0')}`);
    const ok = { value: bigSet, context: 'ctx', consistency: { n: 1, required: 1, replied: 1 } };
    await start({}, {
      replies,
      crdts: {
        startUpdate(req, done) {
          started++;
          if (Buffer.from(req.key).toString() === 'refused') {
            return void queueMicrotask(() => done(new RingkvError('conflict', 'remove: element "z" is not in the set', { precondition: 'not_present', outcome: 'not_applied' }), undefined));
          }
          held.push(() => done(null, ok));
        },
        startRead(_req, done) {
          queueMicrotask(() => done(new Error('not used'), undefined));
        },
      },
    });
    // Small replies first, so the connection's reply estimate is small and all six updates start at once.
    const c = await client();
    await c.request({ id: 1, op: 'put', table: 't', key: 'small', value: 's' });
    for (let i = 0; i < 150; i++) c.send({ id: 100 + i, op: 'get', table: 't', key: 'small' });
    await until('small reads', () => c.replies.filter((r) => r.id >= 100 && r.id < 250).length === 150 || undefined);
    for (let id = 11; id <= 16; id++) c.send({ id, op: 'crdt_update', table: 'carts', key: 'u1', operation: { add: ['x'] } });
    await until('six updates running', () => held.length === 6 || undefined);
    // All finish at once: ~420 KiB of replies against a 200 KiB bound. A read would be dropped and
    // run again; an update is answered as it is.
    for (const go of held.splice(0)) go();
    await until('every update answered', () => c.replies.filter((r) => r.id >= 11 && r.id <= 16).length === 6 || undefined);
    expect(started).toBe(6);
    expect(replies.stats().rerunsOverBudget).toBe(0);
    for (const r of c.replies.filter((x) => x.id >= 11 && x.id <= 16)) expect(r).toMatchObject({ ok: true, context: 'ctx' });
    // An error of these ops carries its details (what the client may retry).
    const refused = await c.request({ id: 9, op: 'crdt_update', table: 'carts', key: 'refused', operation: { remove: ['z'] } });
    expect(refused).toMatchObject({ ok: false, code: 'conflict', details: { precondition: 'not_present', outcome: 'not_applied' } });
  });

  it('runs reads that did not fit again in the order they arrived', async () => {
    const { c, replies } = await lowEstimateClient();

    router.gate = (k) => k === 'big';
    for (let id = 11; id <= 16; id++) c.send({ id, op: 'get', table: 't', key: 'big' });
    await until('six reads running', () => router.heldCount === 6 || undefined);
    // All six finish at once: three 64 KiB replies fit the 200 KiB bound, the other three run again.
    router.gate = undefined;
    router.release();
    await until('every reply', () => c.replies.filter((r) => r.id >= 11 && r.id <= 16).length === 6 || undefined);
    expect(replies.stats().rerunsOverBudget).toBeGreaterThanOrEqual(3);
    expect(c.replies.filter((r) => r.id >= 11 && r.id <= 16).map((r) => r.id)).toEqual([11, 12, 13, 14, 15, 16]);
  });
});

describe('ipc server: socket lifecycle', () => {
  it('replaces a stale socket file, refuses a live one and a non-socket file', async () => {
    // A socket file whose owner died without unlinking it (SIGKILL skips cleanup).
    try {
      execFileSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`], { timeout: 5000 });
    } catch {
      /* killed on purpose */
    }
    expect(existsSync(sock)).toBe(true);
    await start();
    const c = await client();
    expect(await c.request({ id: 1, op: 'status' })).toMatchObject({ ok: true });

    await expect(start()).rejects.toThrow(`another ringkv node owns ${sock}`);
    expect(await c.request({ id: 2, op: 'status' })).toMatchObject({ ok: true });

    const file = path.join(dir, 'plain');
    writeFileSync(file, 'not a socket');
    await expect(startIpcServer({ ...(await depsFor(file)) })).rejects.toThrow(/not a socket/);
  });

  it('serves handed-over sockets with leftover bytes (peer-port path) and cleans up on close', async () => {
    const srv = await start();
    // A stand-in for the peer port: consume a handshake line, then hand the rest over.
    const side = path.join(dir, 'side.sock');
    const peer: Server = createServer((s) => {
      let acc = Buffer.alloc(0);
      const onData = (d: Buffer): void => {
        acc = Buffer.concat([acc, d]);
        const nl = acc.indexOf(0x0a);
        if (nl < 0) return;
        s.removeListener('data', onData);
        s.pause();
        srv.handleConnection(s, acc.subarray(nl + 1));
      };
      s.on('data', onData);
    });
    await new Promise<void>((r) => peer.listen(side, () => r()));
    try {
      const c = await RawClient.connect(side);
      clients.push(c);
      c.socket.write(Buffer.concat([Buffer.from('HELLO\n'), encodeFrame({ id: 1, op: 'put', table: 't', key: 'h', value: 'over' }), encodeFrame({ id: 2, op: 'get', table: 't', key: 'h' })]));
      await until('two replies', () => c.replies.length === 2);
      expect(c.replies.find((r) => r.id === 2)!['value']).toEqual(Buffer.from('over'));
      expect(srv.stats().connections).toBe(1);
      await srv.close();
      server = undefined;
      await c.waitClosed();
      expect(srv.stats().connections).toBe(0);
      expect(existsSync(sock)).toBe(false);
    } finally {
      await new Promise<void>((r) => peer.close(() => r()));
    }
  });
});

async function depsFor(p: string): Promise<IpcDeps> {
  return {
    path: p,
    router: promiseRouter(router),
    ringInfo: () => RING,
    clusterStatus: async () => ({}),
    limits: { maxKeyBytes: 1024, maxValueBytes: 1024, maxFrameBytes: 1 << 20, maxInFlightPerConnection: 16 },
    log,
  };
}
