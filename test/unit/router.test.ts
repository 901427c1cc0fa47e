/**
 * The coordinator's state machines with in-process fakes for the shard pool and the remote
 * replicas (pure logic; the real thing is covered by the multi-process integration tests): quorum
 * answers, deadlines, blocking read repair with a hung replica, blind deletes on vclock tables, and
 * requests that fail validation leaving no table behind.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/config/config.js';
import { initHasher } from '../../src/ring/hash.js';
import { legacyTableIdOf, TableRegistry, tableIdBytes, tableIdOf } from '../../src/router/tables.js';
import { RingkvError } from '../../src/util/errors.js';
import { decodeRecord, encodeRecord, initVersions, newVersion } from '../../src/versions/index.js';
import type { PeerServiceHandler } from '../../src/cluster/peer-services.js';
import { nowMicros } from '../../src/router/router.js';
import { nullMeta, routerSetup } from '../helpers/router-fakes.js';

function setup(over: Partial<NodeConfig> = {}) {
  return routerSetup({ config: { requestTimeoutMs: 300, ...over }, vnodes: 16, seedBase: 1 });
}

const key = (s: string): Uint8Array => Buffer.from(s);
const val = (s: string): Uint8Array => Buffer.from(s);

beforeAll(async () => {
  await initHasher();
  await initVersions();
});

describe('Router coordination (fakes for shards and peers)', () => {
  it('writes reach all three replicas and a read reconciles them', async () => {
    const { router, stores } = setup();
    const w = await router.write({ table: 't', key: key('a'), value: val('1'), tombstone: false, consistency: { w: 2 } });
    expect(w.consistency.required).toBe(2);
    await new Promise((r) => setImmediate(r));
    for (const s of stores.values()) expect(s.writes).toBe(1);
    const r = await router.read({ table: 't', key: key('a'), consistency: { r: 3 } });
    expect(r.values.map((v) => Buffer.from(v.value).toString())).toEqual(['1']);
  });

  it('a replica that never answers: W=2 succeeds, W=3 fails at the deadline with a 503 naming the count', async () => {
    const { router, remote } = setup();
    remote.behaviour.set('n3', 'hang');
    // Answered by the two replicas that answer: W=2 of N=3, two replied (not the hung one).
    const ok = await router.write({ table: 't', key: key('b'), value: val('x'), tombstone: false, consistency: { w: 2 } });
    expect(ok.consistency).toEqual({ n: 3, required: 2, replied: 2 });
    const err = await router.write({ table: 't', key: key('c'), value: val('x'), tombstone: false, consistency: { w: 3 } }).then(
      () => null,
      (e: unknown) => e as RingkvError,
    );
    expect(err).toBeInstanceOf(RingkvError);
    expect(err!.code).toBe('timeout');
    expect(err!.status).toBe(503);
    expect(err!.message).toMatch(/2 of 3 replicas answered, 3 acks required \(deadline passed\)/);
  });

  it('blocking read repair: a hung replica delays the answer to the deadline but does not fail a read that met R', async () => {
    const { router, remote, stores } = setup({ readRepair: 'blocking' });
    await router.write({ table: 't', key: key('d'), value: val('v'), tombstone: false, consistency: { w: 3 } });
    remote.behaviour.set('n3', 'hang');
    const t0 = performance.now();
    const r = await router.read({ table: 't', key: key('d'), consistency: { r: 2 } });
    expect(Buffer.from(r.values[0]!.value).toString()).toBe('v');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250); // waited for the deadline (300 ms)
    // And it repairs the replica that was stale: make n2 lose the key, read again with n3 failing fast.
    stores.get('n2')!.data.clear();
    remote.behaviour.set('n3', 'fail');
    await router.read({ table: 't', key: key('d'), consistency: { r: 2 } });
    const repaired = stores.get('n2')!.get(router_tableId('t'), key('d'));
    expect(repaired?.map((v) => Buffer.from(v.value).toString())).toEqual(['v']);
  });

  it('lww: the version with the later timestamp wins on every replica, not the one that arrived last', async () => {
    const { router, stores, tables } = setup();
    const def = tables.define('lw', { conflicts: 'lww' }, true);
    const id = tableIdBytes(def);
    const text = (vs: readonly { value: Uint8Array }[] | null | undefined): string[] | undefined => vs?.map((v) => Buffer.from(v.value).toString());
    // A write another coordinator stamped 10 s ahead of this one's clock reached every replica first.
    const ahead = newVersion({ node: 'n9', counter: 1, context: [], ts: nowMicros() + 10_000_000, tombstone: false, value: val('stamped-later'), maxClockEntries: 16 });
    for (const s of stores.values()) s.merge(id, key('w'), 'lww', [ahead]);
    // This coordinator's write arrives after it but carries the earlier timestamp: it loses everywhere.
    await router.write({ table: 'lw', key: key('w'), value: val('arrived-later'), tombstone: false, consistency: { w: 3 } });
    for (const s of stores.values()) expect(text(s.get(id, key('w')))).toEqual(['stamped-later']);
    expect(text((await router.read({ table: 'lw', key: key('w'), consistency: { r: 3 } })).values)).toEqual(['stamped-later']);
    // The other way round: a value stamped earlier than what the replicas hold cannot replace it,
    // and one stamped later does (one winner, no siblings).
    const behind = newVersion({ node: 'n8', counter: 1, context: [], ts: 1, tombstone: false, value: val('stamped-earlier'), maxClockEntries: 16 });
    const newest = newVersion({ node: 'n7', counter: 1, context: [], ts: ahead.ts + 1, tombstone: false, value: val('stamped-last'), maxClockEntries: 16 });
    for (const s of stores.values()) s.merge(id, key('w'), 'lww', [newest]);
    for (const s of stores.values()) s.merge(id, key('w'), 'lww', [behind]);
    expect(text((await router.read({ table: 'lw', key: key('w'), consistency: { r: 3 } })).values)).toEqual(['stamped-last']);
  });

  it('a delete without a context on a vclock table deletes what is there (not a sibling tombstone)', async () => {
    const { router } = setup();
    await router.write({ table: 'vc', key: key('e'), value: val('gone'), tombstone: false, consistency: { w: 3 } });
    await router.write({ table: 'vc', key: key('e'), value: val(''), tombstone: true, consistency: {} });
    const r = await router.read({ table: 'vc', key: key('e'), consistency: { r: 3 } });
    expect(r.values).toEqual([]);
  });

  it('requests that fail validation, and reads, create no table', async () => {
    const { router, tables } = setup();
    await expect(router.write({ table: 'nt1', key: key('k'), value: val('v'), tombstone: false, context: '!!bad', consistency: {} })).rejects.toMatchObject({ code: 'bad_request' });
    await expect(router.write({ table: 'nt2', key: key('k'), value: val('v'), tombstone: false, consistency: { w: 5 } })).rejects.toMatchObject({ code: 'bad_request' });
    const r = await router.read({ table: 'nt3', key: key('k'), consistency: {} });
    expect(r.values).toEqual([]);
    expect(tables.all().map((t) => t.name)).toEqual([]);
    await router.write({ table: 'nt4', key: key('k'), value: val('v'), tombstone: false, consistency: {} });
    expect(tables.all().map((t) => t.name)).toEqual(['nt4']);
  });
});

/** Settle within `ms` or fail: a coordination that never answers must fail the test, not hang it. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let t: NodeJS.Timeout;
  const late = new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(t));
}

describe('every coordination answers by its deadline (issue 10 item 1)', () => {
  it('a delete without a context of a key never written answers at once, with one read, writing nothing', async () => {
    const { router, stores, tables } = setup();
    await router.write({ table: 'vc', key: key('other'), value: val('x'), tombstone: false, consistency: { w: 3 } });
    await new Promise((r) => setImmediate(r));
    const writesBefore = [...stores.values()].map((s) => s.writes);
    const reads0 = router.counters.coordinatedReads;
    const d = await within(2000, router.write({ table: 'vc', key: key('never-written'), value: val(''), tombstone: true, consistency: {} }));
    expect(d.context).toBe('');
    expect(router.counters.coordinatedReads - reads0).toBe(1);
    expect([...stores.values()].map((s) => s.writes)).toEqual(writesBefore);
    // A table that does not exist yet: same answer, and no table is created.
    await within(2000, router.write({ table: 'nosuch', key: key('k'), value: val(''), tombstone: true, consistency: {} }));
    expect(tables.get('nosuch')).toBeUndefined();
    expect(router.counters.coordinationsInFlight).toBe(0);
    expect(router.counters.overdueCoordinations).toBe(0);
  });

  it('the two phases of a delete share one deadline', async () => {
    const { router, remote } = setup({ readRepair: 'off' });
    await router.write({ table: 'vc', key: key('d2'), value: val('v'), tombstone: false, consistency: { w: 3 } });
    // n3 takes 150 ms per answer and both phases need it (w=3 reads with r=3): 300 ms in all,
    // past the delete's 200 ms deadline. The write phase gets what the read left, not 200 ms more.
    remote.behaviour.set('n3', 'slow');
    // (With a fresh deadline per phase the write phase would succeed at ~300 ms.)
    const err = await within(2000, router.write({ table: 'vc', key: key('d2'), value: val(''), tombstone: true, consistency: { w: 3 }, timeoutMs: 200 })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'timeout' });
    expect(router.counters.coordinationsInFlight).toBe(0);
  });

  it('the backstop answers a coordination stuck past its deadline (blocking read repair into a stuck shard)', async () => {
    const { router, shards, stores } = setup({ readRepair: 'blocking', requestTimeoutMs: 100 });
    await router.write({ table: 't', key: key('stuck'), value: val('v'), tombstone: false, consistency: { w: 3 } });
    stores.get('n1')!.data.clear(); // the local replica is stale: the read will repair it
    shards.hangWrites = true; // ... and the local shard never answers the repair write
    const t0 = performance.now();
    await expect(within(4000, router.read({ table: 't', key: key('stuck'), consistency: { r: 3 } }))).rejects.toMatchObject({ code: 'timeout' });
    // Answered by the backstop: after deadline + grace, not never.
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1000);
    expect(router.counters.overdueCoordinations).toBe(1);
    expect(router.counters.coordinationsInFlight).toBe(0);
  });

  it('random reads, writes and deletes with hung and failing replicas all answer, and none is left live', async () => {
    const op = fc.record({
      kind: fc.constantFrom('put', 'get', 'del', 'delctx'),
      key: fc.constantFrom('a', 'b', 'c', 'never'),
      req: fc.integer({ min: 1, max: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), fc.constantFrom('ok', 'hang', 'fail'), fc.constantFrom('ok', 'hang', 'fail'), async (ops, b2, b3) => {
        const { router, remote } = setup({ requestTimeoutMs: 60, readRepair: 'blocking' });
        remote.behaviour.set('n2', b2 as 'ok');
        remote.behaviour.set('n3', b3 as 'ok');
        const settle = (p: Promise<unknown>): Promise<unknown> => p.catch((e: unknown) => e);
        const runs = ops.map(async (o) => {
          if (o.kind === 'get') return settle(router.read({ table: 'vc', key: key(o.key), consistency: { r: o.req } }));
          if (o.kind === 'put') return settle(router.write({ table: 'vc', key: key(o.key), value: val('v'), tombstone: false, consistency: { w: o.req } }));
          if (o.kind === 'del') return settle(router.write({ table: 'vc', key: key(o.key), value: val(''), tombstone: true, consistency: { w: o.req } }));
          const seen = await settle(router.read({ table: 'vc', key: key(o.key), consistency: {} }));
          const context = (seen as { context?: string }).context;
          return settle(router.write({ table: 'vc', key: key(o.key), value: val(''), tombstone: true, context, consistency: { w: o.req } }));
        });
        const out = await within(1000, Promise.all(runs));
        for (const r of out) if (r instanceof Error) expect(['timeout', 'unavailable']).toContain((r as RingkvError).code);
        expect(router.counters.coordinationsInFlight).toBe(0);
        expect(router.counters.overdueCoordinations).toBe(0);
      }),
      { numRuns: 25 },
    );
  });
});

function router_tableId(name: string): Buffer {
  return tableIdBytes(new TableRegistry(nullMeta, DEFAULT_CONFIG.tables).draft(name));
}

describe('the replica side on the peer port (issue 16: the router registers its own handlers)', () => {
  it('registers write, read and scan at construction and serves them; a message without an op is bad_request', async () => {
    const handlers = new Map<string, PeerServiceHandler>();
    const { router } = routerSetup({ config: { requestTimeoutMs: 300 }, vnodes: 16, seedBase: 1, peers: { registerService: (t, h) => void handlers.set(t, h) } });
    expect([...handlers.keys()]).toEqual(['write', 'read', 'scan']);
    const tableId = router_tableId('t');
    const v = newVersion({ node: 'n2', counter: 1, context: [], ts: nowMicros(), tombstone: false, value: val('from-a-peer'), maxClockEntries: 16 });
    const op = { table: 't', tableId, mode: 'vclock', key: key('peer-k'), record: encodeRecord([v]) };
    expect(await handlers.get('write')!({ t: 'write', op }, 'n2')).toEqual({ t: 'ok' });
    const merged = (await handlers.get('write')!({ t: 'write', op: { ...op, returnMerged: true } }, 'n2')) as { t: string; record: Uint8Array };
    expect(merged.t).toBe('record');
    expect(decodeRecord(merged.record).map((x) => Buffer.from(x.value).toString())).toEqual(['from-a-peer']);
    const read = (await handlers.get('read')!({ t: 'read', op: { table: 't', tableId, key: key('peer-k') } }, 'n2')) as { t: string; record: Uint8Array };
    expect(read.t).toBe('record');
    expect(decodeRecord(read.record).map((x) => Buffer.from(x.value).toString())).toEqual(['from-a-peer']);
    for (const t of ['write', 'read', 'scan']) await expect(handlers.get(t)!({ t }, 'n2')).rejects.toMatchObject({ code: 'bad_request', message: `${t} without an op` });
    expect(router.counters.replicaWrites).toBe(2);
  });
});

describe('table id collisions (issue 10 item 3)', () => {
  /**
   * The format-1 id (low 32 bits of xxh64), padded to the id width, under which `cfyd` and
   * `c161t` collide: the registry must keep the two tables apart for writes, reads and scans.
   */
  const weakId = (name: string): string => legacyTableIdOf(name).toString(16).padStart(32, '0');

  it('cfyd and c161t share a format-1 id but not a current one', () => {
    expect(legacyTableIdOf('cfyd')).toBe(legacyTableIdOf('c161t'));
    expect(tableIdOf('cfyd')).not.toBe(tableIdOf('c161t'));
  });

  it('with a colliding id function, the second name is refused for writes, reads, scans and deletes, naming both tables', async () => {
    const { router, stores } = routerSetup({ config: { requestTimeoutMs: 300 }, vnodes: 16, seedBase: 1, tableIdOf: weakId });
    await router.write({ table: 'cfyd', key: key('k'), value: val('secret'), tombstone: false, consistency: { w: 3 } });
    const conflict = { code: 'conflict', message: expect.stringMatching(/c161t.*cfyd|cfyd.*c161t/) as unknown };
    await expect(router.read({ table: 'c161t', key: key('k'), consistency: { r: 1 } })).rejects.toMatchObject(conflict);
    await expect(router.scan({ table: 'c161t', startKey: key('k'), limit: 10, consistency: { r: 1 } })).rejects.toMatchObject(conflict);
    await expect(router.write({ table: 'c161t', key: key('k'), value: val('x'), tombstone: false, consistency: {} })).rejects.toMatchObject(conflict);
    await expect(router.write({ table: 'c161t', key: key('k'), value: val(''), tombstone: true, consistency: {} })).rejects.toMatchObject(conflict);
    await expect(router.readLocalReplica('c161t', key('k'))).rejects.toMatchObject(conflict);
    // Nothing of c161t was written, and cfyd's value is untouched.
    const r = await router.read({ table: 'cfyd', key: key('k'), consistency: { r: 3 } });
    expect(r.values.map((v) => Buffer.from(v.value).toString())).toEqual(['secret']);
    for (const st of stores.values()) expect(st.writes).toBe(1);
  });

  it('a replica op from a peer whose table id does not match the name is refused', async () => {
    const { router } = setup();
    await router.write({ table: 't', key: key('p'), value: val('v'), tombstone: false, consistency: { w: 1 } });
    const wrong = Buffer.alloc(16, 7);
    // Every node of the 3-node fake ring is a replica of every key, so the table check decides.
    await expect(router.local.applyReplicaRead({ table: 't', tableId: wrong, key: key('p') })).rejects.toMatchObject({ code: 'bad_request', message: expect.stringMatching(/table id/) as unknown });
    await expect(router.local.applyReplicaRead({ table: 't', tableId: Buffer.alloc(4), key: key('p') })).rejects.toMatchObject({ code: 'bad_request' });
    const stored = await router.local.applyReplicaRead({ table: 't', tableId: tableIdBytes(new TableRegistry(nullMeta, DEFAULT_CONFIG.tables).draft('t')), key: key('p') });
    expect(decodeRecord(stored!).map((v) => Buffer.from(v.value).toString())).toEqual(['v']);
  });
});
