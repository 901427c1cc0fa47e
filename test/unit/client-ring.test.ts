import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { promiseRouter, ringInfoFromLayout, startIpcServer, type IpcServer, type RingInfo } from '../../src/api/ipc-server.js';
import { runIngest } from '../../src/cli/data-commands.js';
import { ClientRing, RingkvClient } from '../../src/client/index.js';
import { PeerTransport } from '../../src/cluster/transport.js';
import { buildRing, positionOf, type RingLayout, type RingMember } from '../../src/ring/builder.js';
import { initHasher, tokenOf } from '../../src/ring/hash.js';
import { Liveness, MAX_REPLICAS, RingTable } from '../../src/ring/table.js';
import { randomTokens } from '../../src/ring/tokens.js';
import type { ReadRequest, ReadResult, WriteRequest, WriteResult } from '../../src/router/router.js';
import type { Version } from '../../src/versions/index.js';

const log = pino({ level: 'silent' });

/** Deterministic PRNG (mulberry32) so layouts and keys are reproducible. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomKey(rand: () => number, i: number): string | Uint8Array {
  const kind = i % 3;
  if (kind === 0) return `user:${Math.floor(rand() * 1e9)}`;
  if (kind === 1) return `ключ-${i}-ü-${Math.floor(rand() * 1e6)}`;
  return Uint8Array.from({ length: 1 + Math.floor(rand() * 40) }, () => Math.floor(rand() * 256));
}

function layoutOf(nodes: number, vnodes: number, rand: () => number, racks = 0): RingLayout {
  const members: RingMember[] = Array.from({ length: nodes }, (_, i) => ({
    id: `n${i}`,
    tokens: randomTokens(vnodes, rand),
    ...(racks > 0 ? { rack: `r${i % racks}` } : {}),
    status: 'normal' as const,
  }));
  return buildRing(members, { maxReplicas: MAX_REPLICAS });
}

function until<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    for (;;) {
      const v = fn();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setImmediate(r));
    }
  })();
}

beforeAll(async () => {
  await initHasher();
});

describe('client ring math', () => {
  it('computes the same replicas as the layout pref list and the shared ring table', () => {
    const rand = prng(42);
    const table = RingTable.create();
    const outNodes = new Uint16Array(MAX_REPLICAS);
    let checked = 0;
    for (const [nodes, vnodes, racks] of [
      [1, 1, 0],
      [1, 16, 0],
      [2, 4, 0],
      [3, 16, 0],
      [5, 16, 2],
      [7, 8, 3],
      [12, 32, 0],
    ] as const) {
      const layout = layoutOf(nodes, vnodes, rand, racks);
      table.publish(layout, 0, () => Liveness.Up);
      const info = ringInfoFromLayout(layout, table.version, (id) => ({ peer: `${id}:7000`, http: `${id}:7070`, ipc: `/tmp/${id}.sock`, up: true }));
      const ring = new ClientRing(info);
      expect(ring.digest).toBe(layout.digest);
      expect(ring.replicas).toBe(Math.min(nodes, MAX_REPLICAS));
      for (let i = 0; i < 1500; i++) {
        const key = randomKey(rand, i);
        const got = ring.replicasFor(key);
        const pos = positionOf(layout, tokenOf(key));
        expect(got).toEqual(Array.from(layout.pref.subarray(pos * layout.replicas, (pos + 1) * layout.replicas)));
        const t = tokenOf(key);
        const r = table.lookup(t.hi, t.lo, outNodes);
        expect(got).toEqual(Array.from(outNodes.subarray(0, r)));
        expect(new Set(got).size).toBe(got.length);
        checked++;
      }
      // A string key and its UTF-8 bytes route identically (the server stores the bytes).
      expect(ring.replicasFor('ключ')).toEqual(ring.replicasFor(Buffer.from('ключ', 'utf8')));
    }
    expect(checked).toBe(7 * 1500);
  });

  it('handles tokens at the edges of the wrap-around', () => {
    const info: RingInfo = {
      digest: 'd',
      version: 1,
      nodes: [
        { id: 'a', peer: '', http: '', ipc: '', up: true },
        { id: 'b', peer: '', http: '', ipc: '', up: true },
      ],
      tokens: ['4000000000000000', 'c000000000000000'],
      replicas: 2,
      pref: [0, 1, 1, 0],
    };
    const ring = new ClientRing(info);
    expect(ring.positionOf({ hi: 0, lo: 0 })).toBe(0);
    expect(ring.positionOf({ hi: 0x40000000, lo: 0 })).toBe(0);
    expect(ring.positionOf({ hi: 0x40000000, lo: 1 })).toBe(1);
    expect(ring.positionOf({ hi: 0xc0000000, lo: 0 })).toBe(1);
    expect(ring.positionOf({ hi: 0xc0000000, lo: 1 })).toBe(0);
    expect(ring.positionOf({ hi: 0xffffffff, lo: 0xffffffff })).toBe(0);
    expect(new ClientRing({ ...info, tokens: [], pref: [], replicas: 0 }).replicasFor('x')).toEqual([]);
  });

  it('rejects a malformed ring', () => {
    const base: RingInfo = { digest: 'd', version: 1, nodes: [{ id: 'a', peer: '', http: '', ipc: '', up: true }], tokens: ['0000000000000001', '0000000000000002'], replicas: 1, pref: [0, 0] };
    expect(() => new ClientRing({ ...base, tokens: ['0000000000000002', '0000000000000001'] })).toThrow(/ascending/);
    expect(() => new ClientRing({ ...base, pref: [0, 1] })).toThrow(/names node/);
    expect(() => new ClientRing({ ...base, pref: [0] })).toThrow(/pref has/);
    expect(() => new ClientRing({ ...base, tokens: ['xyz', '0000000000000002'] })).toThrow(/token/);
  });
});

// ---------------------------------------------------------------------------------------------
// Client against real IPC servers (one per fake node) sharing an in-memory store.

class SharedStore {
  readonly data = new Map<string, Buffer>();
  /** Which node coordinated each request: `${node} ${op} ${key}`. */
  readonly log: string[] = [];
  held: Array<() => void> = [];
  gate: ((key: string) => boolean) | undefined;
  active = 0;
  maxActive = 0;
  release(): void {
    const h = this.held;
    this.held = [];
    for (const r of h) r();
  }
}

function fakeRouter(node: string, s: SharedStore): { write(r: WriteRequest): Promise<WriteResult>; read(r: ReadRequest): Promise<ReadResult> } {
  const enter = async (key: Uint8Array): Promise<void> => {
    s.active++;
    s.maxActive = Math.max(s.maxActive, s.active);
    try {
      if (s.gate?.(Buffer.from(key).toString('latin1'))) await new Promise<void>((r) => s.held.push(r));
    } finally {
      s.active--;
    }
  };
  const id = (t: string, k: Uint8Array): string => `${t}/${Buffer.from(k).toString('hex')}`;
  return {
    async write(req) {
      s.log.push(`${node} w ${Buffer.from(req.key).toString('hex')}`);
      await enter(req.key);
      if (req.tombstone) s.data.delete(id(req.table, req.key));
      else s.data.set(id(req.table, req.key), Buffer.from(req.value));
      return { context: `c-${node}`, consistency: { n: 3, required: 2, replied: 3 } };
    },
    async read(req) {
      s.log.push(`${node} r ${Buffer.from(req.key).toString('hex')}`);
      await enter(req.key);
      const v = s.data.get(id(req.table, req.key));
      const mk = (value: Uint8Array, i: number): Version => ({ dot: [node, i + 1], clock: [[node, i + 1]], prior: 0, ts: 1, tombstone: false, value });
      const values = !v ? [] : Buffer.from(req.key).toString().startsWith('sib') ? [mk(v, 0), mk(Buffer.from('theirs'), 1)] : [mk(v, 0)];
      return { values, context: values.length ? 'rc' : '', consistency: { n: 3, required: 2, replied: 2 } };
    },
  };
}

interface Cluster {
  dir: string;
  paths: string[];
  servers: Array<IpcServer | undefined>;
  store: SharedStore;
  info: { current: RingInfo };
  layout: { current: RingLayout };
}

async function startCluster(n: number, seed: number): Promise<Cluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rkv-cli-'));
  const paths = Array.from({ length: n }, (_, i) => path.join(dir, `n${i}.sock`));
  const store = new SharedStore();
  const mkInfo = (l: RingLayout): RingInfo => ringInfoFromLayout(l, 1, (id) => ({ peer: '', http: '', ipc: paths[Number(id.slice(1))]!, up: true }));
  const layout = { current: layoutOf(n, 8, prng(seed)) };
  const info = { current: mkInfo(layout.current) };
  const servers: Array<IpcServer | undefined> = [];
  for (let i = 0; i < n; i++) {
    servers.push(
      await startIpcServer({
        path: paths[i]!,
        router: promiseRouter(fakeRouter(`n${i}`, store)),
        ringInfo: () => info.current,
        ringDigest: () => info.current.digest,
        nodeId: `n${i}`,
        clusterStatus: async () => ({ self: `n${i}` }),
        limits: { maxKeyBytes: 1024, maxValueBytes: 1 << 20, maxFrameBytes: 8 << 20, maxInFlightPerConnection: 1024 },
        log,
      }),
    );
  }
  return { dir, paths, servers, store, info, layout };
}

async function stopCluster(c: Cluster): Promise<void> {
  for (const s of c.servers) await s?.close();
  rmSync(c.dir, { recursive: true, force: true });
}

function primaryOf(c: Cluster, key: string | Uint8Array): string {
  const l = c.layout.current;
  const pos = positionOf(l, tokenOf(key));
  return l.nodeIds[l.pref[pos * l.replicas]!]!;
}

const hex = (k: string | Uint8Array): string => Buffer.from(typeof k === 'string' ? Buffer.from(k, 'utf8') : k).toString('hex');

describe('RingkvClient over IPC', () => {
  let c: Cluster;
  let client: RingkvClient | undefined;

  beforeEach(async () => {
    c = await startCluster(3, 7);
  });
  afterEach(async () => {
    c.store.release();
    await client?.close();
    client = undefined;
    await stopCluster(c);
  });

  it('routes each key to its primary replica (zero-hop), values byte-exact', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! });
    expect(client.currentRing?.digest).toBe(c.info.current.digest);
    const keys = Array.from({ length: 300 }, (_, i) => (i % 5 === 0 ? Buffer.from([i & 0xff, 0, 0xff, i >> 8]) : `key-${i}`));
    const value = (i: number): Buffer => Buffer.from(Array.from({ length: 64 }, (_, j) => (i * 31 + j) & 0xff));
    await Promise.all(keys.map((k, i) => client!.put('t', k, value(i))));
    for (let i = 0; i < keys.length; i++) expect(c.store.log).toContain(`${primaryOf(c, keys[i]!)} w ${hex(keys[i]!)}`);
    c.store.log.length = 0;
    const got = await Promise.all(keys.map((k) => client!.get('t', k)));
    got.forEach((g, i) => {
      expect(g.found).toBe(true);
      expect(Buffer.compare(g.value!, value(i))).toBe(0);
    });
    for (let i = 0; i < keys.length; i++) expect(c.store.log).toContain(`${primaryOf(c, keys[i]!)} r ${hex(keys[i]!)}`);
    expect(client.connectionCount()).toBe(3);

    const miss = await client.get('t', 'never-written');
    expect(miss).toMatchObject({ found: false, context: '' });
    await client.put('t', 'sib-1', 'mine', { w: 2 });
    const sib = await client.get('t', 'sib-1', { consistency: 'ALL' });
    expect(sib.siblings?.map(String)).toEqual(['mine', 'theirs']);
    const del = await client.delete('t', 'sib-1', { context: sib.context });
    expect(del.context).toMatch(/^c-n/);
    expect((await client.get('t', 'sib-1')).found).toBe(false);
    await expect(client.put('bad table', 'k', 'v')).rejects.toMatchObject({ code: 'bad_request', details: { field: 'table' } });
    await expect(client.put('t', '', 'v')).rejects.toMatchObject({ code: 'bad_request' });
    await expect(client.put('t', 'k', 'v', { w: 7 })).rejects.toMatchObject({ code: 'bad_request', details: { field: 'w' } });
    expect(await client.status()).toMatchObject({ self: expect.stringMatching(/^n\d$/) });
    expect((await client.ring()).digest).toBe(c.info.current.digest);
  });

  it('routes around a node whose socket is gone and reconnects when it returns', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! });
    const keys = Array.from({ length: 200 }, (_, i) => `fail-${i}`);
    const onN1 = keys.filter((k) => primaryOf(c, k) === 'n1');
    expect(onN1.length).toBeGreaterThan(10);
    await Promise.all(keys.map((k) => client!.put('t', k, 'x'))); // connects to every node
    expect(client.connectionCount()).toBe(3);
    await c.servers[1]!.close();
    c.servers[1] = undefined;
    await until('client noticed n1 closing', () => client!.connectionCount() === 2);
    c.store.log.length = 0;
    const results = await Promise.all(onN1.map((k) => client!.put('t', k, `v-${k}`)));
    // Each write was coordinated once, by a surviving node (the fake answers with its node's context).
    expect(results.map((r) => r.context).filter((ctx) => ctx !== 'c-n2' && ctx !== 'c-n3')).toEqual([]);
    for (const k of onN1) expect(c.store.log.filter((l) => l === `n2 w ${hex(k)}` || l === `n3 w ${hex(k)}`)).toHaveLength(1);
    expect(c.store.log.filter((l) => l.startsWith('n1'))).toEqual([]);
    expect((await client.get('t', onN1[1]!)).value?.toString()).toBe(`v-${onN1[1]}`);

    // The node comes back on the same path: once its backoff expires the client uses it again.
    c.servers[1] = await startIpcServer({
      path: c.paths[1]!,
      router: promiseRouter(fakeRouter('n1', c.store)),
      ringInfo: () => c.info.current,
      nodeId: 'n1',
      clusterStatus: async () => ({}),
      limits: { maxKeyBytes: 1024, maxValueBytes: 1 << 20, maxFrameBytes: 8 << 20, maxInFlightPerConnection: 1024 },
      log,
    });
    c.store.log.length = 0;
    const deadline = Date.now() + 8000;
    while (!c.store.log.some((l) => l.startsWith('n1 w')) && Date.now() < deadline) {
      await client.put('t', onN1[2]!, 'again');
      await new Promise((r) => setImmediate(r));
    }
    expect(c.store.log.some((l) => l.startsWith('n1 w'))).toBe(true);
  });

  it('refreshes the ring when a reply carries another digest', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! });
    const old = c.info.current.digest;
    // Membership changed: new tokens, so a new layout and digest on every node.
    c.layout.current = layoutOf(3, 8, prng(99));
    c.info.current = ringInfoFromLayout(c.layout.current, 2, (id) => ({ peer: '', http: '', ipc: c.paths[Number(id.slice(1))]!, up: true }));
    expect(c.info.current.digest).not.toBe(old);
    await client.get('t', 'anything');
    await until('client adopted the new ring', () => client!.currentRing?.digest === c.info.current.digest);
    c.store.log.length = 0;
    const keys = Array.from({ length: 50 }, (_, i) => `after-${i}`);
    await Promise.all(keys.map((k) => client!.put('t', k, 'v')));
    for (const k of keys) expect(c.store.log).toContain(`${primaryOf(c, k)} w ${hex(k)}`);
  });

  it('times out a request whose reply never comes', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! });
    c.store.gate = (k) => k === 'hang';
    // Timed out by the request's own deadline (100 ms + the client's 200 ms grace for the server's
    // answer), not the 5 s default: the message names the wait it gave the reply.
    const e = (await client.get('t', 'hang', { timeoutMs: 100 }).catch((x: unknown) => x)) as RingkvError;
    expect(e.code).toBe('timeout');
    const waited = Number(/within (\d+) ms$/.exec(e.message)?.[1]);
    expect(waited).toBeGreaterThan(0);
    expect(waited).toBeLessThanOrEqual(300);
    // The connection is still usable.
    await client.put('t', 'fine', 'ok');
  });

  it('coalesces single calls made in one tick into batch frames, each call keeping its own result', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! });
    await client.put('t', 'warm', 'x'); // connect to every node first
    const before = c.servers.reduce((a, s) => a + (s?.stats().requests ?? 0), 0);
    const keys = Array.from({ length: 300 }, (_, i) => `co-${i}`);
    const puts = await Promise.allSettled([...keys.map((k) => client!.put('t', k, `v-${k}`)), client.put('t', '', 'bad key')]);
    const frames = c.servers.reduce((a, s) => a + (s?.stats().requests ?? 0), 0) - before;
    expect(puts.slice(0, 300).every((p) => p.status === 'fulfilled')).toBe(true);
    expect(puts[300]).toMatchObject({ status: 'rejected', reason: { code: 'bad_request' } });
    // 301 calls, 3 nodes: a frame per node (plus at most a ring refresh), not a frame per call.
    expect(frames).toBeLessThanOrEqual(6);
    const gets = await Promise.all(keys.map((k) => client!.get('t', k)));
    gets.forEach((g, i) => expect(g.value?.toString()).toBe(`v-${keys[i]}`));
    for (const k of keys) expect(c.store.log).toContain(`${primaryOf(c, k)} w ${hex(k)}`);
  });

  it('bounds pending requests per connection and reports overload', async () => {
    // Single requests as separate frames (autoBatch off): the per-request bound is what is tested.
    client = await RingkvClient.connect({ socket: c.paths[0]! }, { maxPendingPerConnection: 8, maxQueuedPerConnection: 16, tokenAware: false, autoBatch: false });
    c.store.gate = (k) => k.startsWith('g-');
    const ps = Array.from({ length: 30 }, (_, i) => client!.get('t', `g-${i}`).then((r) => r, (e: { code: string }) => e.code));
    await until('8 at the server', () => c.store.held.length === 8);
    const settled = await Promise.all(ps.slice(24));
    expect(settled).toEqual(Array(6).fill('overloaded'));
    expect(c.store.maxActive).toBe(8);
    let done = 0;
    for (const p of ps.slice(0, 24)) void p.then(() => done++);
    while (done < 24) {
      c.store.release();
      await until('progress', () => c.store.held.length > 0 || done === 24);
    }
    expect(c.store.maxActive).toBe(8);
  });

  it('batches: grouped per primary, results in order, per-item errors', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! }, { maxBatchItems: 400 });
    const items = Array.from({ length: 3000 }, (_, i) => ({ op: 'put' as const, table: 'b', key: `bk-${i}`, value: Buffer.from(`val-${i}`) }));
    items[5] = { op: 'put', table: 'b', key: '', value: Buffer.from('x') };
    const res = await client.batch(items);
    expect(res).toHaveLength(3000);
    expect(res[5]).toMatchObject({ ok: false, code: 'bad_request', field: 'key' });
    expect(res.filter((r) => r.ok)).toHaveLength(2999);
    for (let i = 0; i < 3000; i++) if (i !== 5) expect(c.store.log).toContain(`${primaryOf(c, `bk-${i}`)} w ${hex(`bk-${i}`)}`);
    const gets = await client.batch(Array.from({ length: 3000 }, (_, i) => ({ op: 'get' as const, table: 'b', key: `bk-${i}` })));
    gets.forEach((g, i) => {
      if (i === 5) expect(g).toMatchObject({ ok: true, found: false });
      else expect(g.ok && 'found' in g && g.value?.toString()).toBe(`val-${i}`);
    });
  });

  it('fails clearly when no node is listening', async () => {
    await expect(RingkvClient.connect({ socket: path.join(c.dir, 'nobody.sock') }, { connectTimeoutMs: 500 })).rejects.toThrow(/cannot connect to ringkv at .*nobody\.sock.*is the ringkv node running/);
  });

  it('ingests NDJSON and CSV, reporting bad lines by number', async () => {
    client = await RingkvClient.connect({ socket: c.paths[0]! });
    const nd = path.join(c.dir, 'rows.ndjson');
    const lines: string[] = [];
    for (let i = 1; i <= 1200; i++) {
      if (i === 5) lines.push('{"key": "broken"');
      else if (i === 10) lines.push('{"key": "novalue"}');
      else if (i === 11) lines.push('');
      else if (i === 12) lines.push(JSON.stringify({ key: 'obj', value: { a: [1, 2] } }));
      else if (i === 13) lines.push(JSON.stringify({ key: 'bin', value: { $base64: Buffer.from([0, 255, 1]).toString('base64') } }));
      else lines.push(JSON.stringify({ key: `nd-${i}`, value: `text ${i}` }));
    }
    writeFileSync(nd, lines.join('\n') + '\n');
    const errs: string[] = [];
    const summary = await runIngest({ client, table: 'ing', file: nd, format: 'ndjson', batchSize: 100, concurrency: 4, onError: 'skip', progress: 'lines', progressEveryMs: 60_000, err: (s) => errs.push(s) });
    expect(summary).toMatchObject({ rows: 1199, written: 1197, errors: 2, stopped: false });
    const errText = errs.join('');
    expect(errText).toMatch(/line 5: invalid JSON/);
    expect(errText).toMatch(/line 10: "value" is missing/);
    const get = (k: string): Buffer | undefined => c.store.data.get(`ing/${hex(k)}`);
    expect(get('nd-1')?.toString()).toBe('text 1');
    expect(get('nd-1200')?.toString()).toBe('text 1200');
    expect(get('obj')?.toString()).toBe('{"a":[1,2]}');
    expect([...get('bin')!]).toEqual([0, 255, 1]);

    const csv = path.join(c.dir, 'rows.csv');
    writeFileSync(csv, 'value,key\r\n"has, comma",c1\r\n"multi\nline ""quoted""",c2\r\nonly-one-field\r\nplain,c3\r\n');
    const errs2: string[] = [];
    const s2 = await runIngest({ client, table: 'ing', file: csv, format: 'csv', batchSize: 2, concurrency: 2, onError: 'skip', progress: 'none', err: (s) => errs2.push(s) });
    expect(s2).toMatchObject({ rows: 4, written: 3, errors: 1 });
    expect(errs2.join('')).toMatch(/line 5: expected 2 fields, got 1/);
    expect(get('c1')?.toString()).toBe('has, comma');
    expect(get('c2')?.toString()).toBe('multi\nline "quoted"');
    expect(get('c3')?.toString()).toBe('plain');

    // --on-error stop: the run ends at the first bad row and says which rows were not written.
    const errs3: string[] = [];
    const s3 = await runIngest({ client, table: 'ing2', file: nd, format: 'ndjson', batchSize: 1000, concurrency: 1, onError: 'stop', progress: 'none', err: (s) => errs3.push(s) });
    expect(s3).toMatchObject({ stopped: true, errors: 1, written: 0 });
    expect(errs3.join('')).toMatch(/line 5: invalid JSON[\s\S]*4 valid rows read before the error \(lines 1-4\) were not written/);

    // Server-side rejections are reported per row too.
    const big = path.join(c.dir, 'big.ndjson');
    writeFileSync(big, `${JSON.stringify({ key: 'k'.repeat(2000), value: 'v' })}\n${JSON.stringify({ key: 'ok', value: 'v' })}\n`);
    const errs4: string[] = [];
    const s4 = await runIngest({ client, table: 'ing', file: big, format: 'ndjson', batchSize: 10, concurrency: 1, onError: 'skip', progress: 'none', err: (s) => errs4.push(s) });
    expect(s4).toMatchObject({ rows: 2, written: 1, errors: 1 });
    expect(errs4.join('')).toMatch(/line 1: too_large: key is 2000 bytes/);
    await expect(
      runIngest({ client, table: 'ing', file: path.join(c.dir, 'rows.ndjson'), format: 'csv', batchSize: 10, concurrency: 1, onError: 'skip', progress: 'none', err: () => undefined }),
    ).rejects.toThrow(/CSV header must name/);
  });

  it('ingest --threads: the parse pool gives the same rows, errors and line numbers as the main thread', async () => {
    // The pool runs the compiled worker (dist/workers/ingest-parse.js): use the built runIngest.
    const built = (await import('../../dist/src/cli/data-commands.js')) as { runIngest: typeof runIngest };
    client ??= await RingkvClient.connect({ socket: c.paths[0]! });
    const nd = path.join(c.dir, 'rows-t.ndjson');
    const lines: string[] = ['\ufeff' + JSON.stringify({ key: 'bom', value: 'b' })];
    for (let i = 2; i <= 5000; i++) {
      if (i % 997 === 0) lines.push('{"key": "broken"');
      else if (i % 1001 === 0) lines.push('');
      else lines.push(JSON.stringify({ key: `t-${i}`, value: i % 2 ? `text ${i}` : { n: i } }));
    }
    writeFileSync(nd, lines.join('\n') + '\n');
    const run = async (impl: typeof runIngest, file: string, format: 'ndjson' | 'csv', threads: number): Promise<{ summary: unknown; errs: string }> => {
      const errs: string[] = [];
      const summary = await impl({ client: client!, table: `th${threads}`, file, format, batchSize: 300, concurrency: 4, onError: 'skip', progress: 'none', err: (x) => errs.push(x), threads });
      const { seconds: _s, rowsPerSec: _r, table: _t, ...rest } = summary;
      return { summary: rest, errs: errs.join('') };
    };
    const one = await run(runIngest, nd, 'ndjson', 1);
    const two = await run(built.runIngest, nd, 'ndjson', 2);
    expect(two).toEqual(one);
    expect(one.errs).toMatch(/line 997: invalid JSON/);
    const get = (t: string, k: string): Buffer | undefined => c.store.data.get(`${t}/${hex(k)}`);
    expect(get('th2', 'bom')?.toString()).toBe('b');
    expect(get('th2', 't-4998')?.toString()).toBe('{"n":4998}');
    expect(get('th2', 't-4999')?.toString()).toBe('text 4999');

    const csv = path.join(c.dir, 'rows-t.csv');
    writeFileSync(csv, 'value,key\r\n"has, comma",c1\r\n"multi\nline ""quoted""",c2\r\nonly-one-field\r\nplain,c3\r\n"open\n');
    const c1 = await run(runIngest, csv, 'csv', 1);
    const c2 = await run(built.runIngest, csv, 'csv', 2);
    expect(c2).toEqual(c1);
    expect(c2.errs).toMatch(/line 5: expected 2 fields, got 1[\s\S]*line 7: unterminated quoted field/);
    expect(get('th2', 'c2')?.toString()).toBe('multi\nline "quoted"');
  });
});

describe('RingkvClient over the peer port ({ hosts })', () => {
  let dir: string;
  let ipc: IpcServer;
  let transport: PeerTransport;
  const store = new SharedStore();

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'rkv-peer-'));
    let info: RingInfo = { digest: 'x', version: 0, nodes: [], tokens: [], replicas: 0, pref: [] };
    ipc = await startIpcServer({
      path: path.join(dir, 'n0.sock'),
      router: promiseRouter(fakeRouter('n0', store)),
      ringInfo: () => info,
      nodeId: 'n0',
      clusterStatus: async () => ({}),
      limits: { maxKeyBytes: 1024, maxValueBytes: 1 << 20, maxFrameBytes: 8 << 20, maxInFlightPerConnection: 1024 },
      log,
    });
    transport = await PeerTransport.listen({
      selfId: 'n0',
      secret: 'a-test-secret',
      host: '127.0.0.1',
      port: 0,
      handler: async () => ({}),
      onClient: (socket, firstBytes) => ipc.handleConnection(socket, firstBytes),
      log,
    });
    const layout = layoutOf(1, 4, prng(3));
    info = ringInfoFromLayout(layout, 1, () => ({ peer: `127.0.0.1:${transport.port}`, http: '', ipc: '', up: true }));
  });
  afterAll(async () => {
    await transport.close();
    await ipc.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('authenticates with the cluster secret and speaks the same protocol', async () => {
    const client = await RingkvClient.connect({ hosts: [`127.0.0.1:${transport.port}`], secret: 'a-test-secret' });
    try {
      await client.put('t', 'remote', Buffer.from([1, 2, 3]));
      expect([...(await client.get('t', 'remote')).value!]).toEqual([1, 2, 3]);
      expect(store.log).toContain(`n0 w ${hex('remote')}`);
    } finally {
      await client.close();
    }
    await expect(RingkvClient.connect({ hosts: [`127.0.0.1:${transport.port}`], secret: 'wrong-secret' }, { connectTimeoutMs: 1000 })).rejects.toThrow();
  });
});
