/**
 * The coordinator's state machines with in-process fakes for the shard pool and the remote
 * replicas (pure logic; the real thing is covered by the multi-process integration tests): quorum
 * answers, deadlines, blocking read repair with a hung replica, blind deletes on vclock tables, and
 * requests that fail validation leaving no table behind.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG, type NodeConfig } from '../../src/config/config.js';
import { initHasher } from '../../src/ring/hash.js';
import { legacyTableIdOf, TableRegistry, tableIdBytes, tableIdOf } from '../../src/router/tables.js';
import { RingkvError } from '../../src/util/errors.js';
import { initVersions } from '../../src/versions/index.js';
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
    await expect(router.write({ table: 't', key: key('b'), value: val('x'), tombstone: false, consistency: { w: 2 } })).resolves.toBeDefined();
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
    expect(stores.get('n2')!.get(router_tableId('t'), key('d'))).not.toBeNull();
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

function router_tableId(name: string): Buffer {
  return tableIdBytes(new TableRegistry(nullMeta, DEFAULT_CONFIG.tables).draft(name));
}

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
    await expect(router.applyReplicaRead({ table: 't', tableId: wrong, key: key('p') })).rejects.toMatchObject({ code: 'bad_request', message: expect.stringMatching(/table id/) as unknown });
    await expect(router.applyReplicaRead({ table: 't', tableId: Buffer.alloc(4), key: key('p') })).rejects.toMatchObject({ code: 'bad_request' });
    await expect(router.applyReplicaRead({ table: 't', tableId: tableIdBytes(new TableRegistry(nullMeta, DEFAULT_CONFIG.tables).draft('t')), key: key('p') })).resolves.not.toBeNull();
  });
});
