/**
 * The CRDT coordinations (src/router/crdt*.ts) with in-process fakes for the shards and the other
 * nodes (the real multi-process behaviour is test/integration/crdt.test.ts): the operation is
 * applied at exactly one replica and its state replicated; a refusal moves on to another replica;
 * a lost answer is never retried and is reported as an unknown outcome; a remove whose context is
 * ahead of the coordinating replica catches it up first; reads join and repair.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeCrdt, parseOp, readEncoded } from '../../src/crdt/index.js';
import { encodeApplyRequest } from '../../src/storage/crdt-shard.js';
import { initHasher } from '../../src/ring/hash.js';
import { tableIdBytes } from '../../src/router/tables.js';
import { RingkvError } from '../../src/util/errors.js';
import { initVersions } from '../../src/versions/index.js';
import { crdtSetup } from '../helpers/crdt-fakes.js';
import { rejected } from '../helpers/thrown.js';

beforeAll(async () => {
  await initHasher();
  await initVersions();
});

const key = (s: string): Uint8Array => Buffer.from(s);

const rejection = (p: Promise<unknown>): Promise<RingkvError> => rejected(p, RingkvError);

/** The replica writes still in flight after an answer: the fakes answer from microtasks, all run before the next macrotask. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('CRDT updates (fakes for shards and peers)', () => {
  it('an increment is applied once, at this node\'s own replica, and its state reaches the other two', async () => {
    const { crdts, stores, tables } = crdtSetup();
    const r1 = await crdts.update({ table: 'c', key: key('k'), operation: { increment: 5 }, consistency: { w: 2 } });
    const r2 = await crdts.update({ table: 'c', key: key('k'), operation: { decrement: 2 }, consistency: { w: 2 } });
    expect(r1.value).toBe(5);
    expect(r2.value).toBe(3);
    await settle();
    expect([...stores.values()].map((s) => s.applies)).toEqual([2, 0, 0]);
    const id = tableIdBytes(tables.get('c')!);
    const bytes = [...stores.values()].map((s) => Buffer.from(s.get(id, key('k'))!).toString('hex'));
    expect(new Set(bytes).size).toBe(1);
    expect(readEncoded('counter', stores.get('n2')!.get(id, key('k'))!).value).toBe(3);
  });

  it('a refusal (overload) at the local replica moves the apply to the next replica, which then ships the state back', async () => {
    const { crdts, shards, stores } = crdtSetup();
    shards.behaviour = 'refuse';
    const r = await crdts.update({ table: 'c', key: key('k'), operation: { increment: 1 }, consistency: { w: 2 } });
    expect(r.value).toBe(1);
    expect(stores.get('n1')!.applies).toBe(0);
    expect(stores.get('n2')!.applies + stores.get('n3')!.applies).toBe(1);
  });

  it('a lost answer from the coordinating replica is an unknown outcome, and is not applied anywhere else', async () => {
    const { crdts, router, remote, stores } = crdtSetup();
    // A key of the N=2 table whose replicas are n2 and n3 only: the coordinating replica is remote.
    let k = 0;
    while (router.replicasOf(key(`r${k}`)).replicas.slice(0, 2).some((r) => r.local)) k++;
    const remoteKey = key(`r${k}`);
    const first = router.replicasOf(remoteKey).replicas[0]!.nodeId;
    remote.behaviour.set(first, 'fail');
    const err = await rejection(crdts.update({ table: 'c2', key: remoteKey, operation: { increment: 1 }, consistency: { w: 1 } }));
    expect(err.details?.['outcome']).toBe('unknown');
    expect(err.details?.['applied']).toBeUndefined();
    await settle();
    for (const s of stores.values()) expect(s.applies).toBe(0);
  });

  it('a coordinating replica that never answers: timeout at the deadline, outcome unknown', async () => {
    const { crdts, shards } = crdtSetup({ requestTimeoutMs: 100 });
    shards.behaviour = 'hang';
    const err = await rejection(crdts.update({ table: 'c', key: key('k'), operation: { increment: 1 }, consistency: { w: 1 } }));
    expect(err.code).toBe('timeout');
    expect(err.details?.['outcome']).toBe('unknown');
    // The router's own deadline answered it (a hung shard would otherwise never answer).
    expect(err.message).toMatch(/0 of 3 replicas answered, 1 acks required \(deadline passed\)/);
  });

  it('an apply answered after the deadline (the client was told "unknown") still spreads its state to the other replicas', async () => {
    const { crdts, shards, stores, tables } = crdtSetup({ requestTimeoutMs: 100 });
    shards.behaviour = 'hold';
    const err = await rejection(crdts.update({ table: 'c', key: key('late'), operation: { increment: 4 }, consistency: { w: 2 } }));
    expect(err.details).toMatchObject({ outcome: 'unknown' });
    shards.release();
    await settle();
    const id = tableIdBytes(tables.get('c')!);
    for (const s of stores.values()) expect(readEncoded('counter', s.get(id, key('late'))!).value).toBe(4);
  });

  it('applied at the coordinating replica but W not met: outcome unknown with applied: true', async () => {
    const { crdts, remote } = crdtSetup({ requestTimeoutMs: 150 });
    remote.behaviour.set('n2', 'hang');
    remote.behaviour.set('n3', 'hang');
    const err = await rejection(crdts.update({ table: 'c', key: key('k'), operation: { increment: 1 }, consistency: { w: 3 } }));
    expect(err.code).toBe('timeout');
    expect(err.details).toMatchObject({ outcome: 'unknown', applied: true });
  });

  it('a bad operation or an unknown or non-crdt table changes nothing anywhere', async () => {
    const { crdts, stores, tables } = crdtSetup();
    tables.define('plain', { conflicts: 'lww' }, true);
    expect((await rejection(crdts.update({ table: 'c', key: key('k'), operation: { add: ['x'] }, consistency: {} }))).code).toBe('bad_request');
    expect((await rejection(crdts.update({ table: 'nope', key: key('k'), operation: { increment: 1 }, consistency: {} }))).code).toBe('not_found');
    expect((await rejection(crdts.update({ table: 'plain', key: key('k'), operation: { increment: 1 }, consistency: {} }))).code).toBe('bad_request');
    for (const s of stores.values()) expect(s.data.size).toBe(0);
  });

  it('a remove whose context has seen an add the coordinating replica has not: the replica is caught up, then the remove applies', async () => {
    const { crdts, stores, tables } = crdtSetup();
    const id = tableIdBytes(tables.get('s')!);
    const k = key('cart');
    await crdts.update({ table: 's', key: k, operation: { add: ['a'] }, consistency: { w: 3 } });
    await settle();
    // An add n1 never received (applied at n2, its state left on n2 only), which the client read there.
    const n2 = stores.get('n2')!;
    n2.apply(id, k, encodeApplyRequest('set', parseOp('set', { add: ['b'] })));
    const context = readEncoded('set', n2.get(id, k)!).context!;
    const r = await crdts.update({ table: 's', key: k, operation: { remove: ['b'], context }, consistency: { w: 2 } });
    expect(r.value).toEqual(['a']);
    await settle();
    for (const s of stores.values()) expect(readEncoded('set', s.get(id, k)!).value).toEqual(['a']);
  });

  it('removing an element nobody added is refused (not_present) and marked not applied', async () => {
    const { crdts } = crdtSetup();
    await crdts.update({ table: 's', key: key('cart'), operation: { add: ['a'] }, consistency: {} });
    const err = await rejection(crdts.update({ table: 's', key: key('cart'), operation: { remove: ['zz'] }, consistency: {} }));
    expect(err.code).toBe('conflict');
    expect(err.details).toMatchObject({ precondition: 'not_present', outcome: 'not_applied' });
  });
});

describe('CRDT reads (fakes)', () => {
  it('reads the join of divergent replicas and repairs the ones that differ', async () => {
    const { crdts, stores, tables } = crdtSetup({ readRepair: 'blocking' });
    const id = tableIdBytes(tables.get('c')!);
    const inc = (n: number) => encodeApplyRequest('counter', { op: { type: 'counter', increment: n }, context: undefined });
    // Each node applied increments of its own that never spread: 1 + 2 + 4.
    stores.get('n1')!.apply(id, key('k'), inc(1));
    stores.get('n2')!.apply(id, key('k'), inc(2));
    stores.get('n3')!.apply(id, key('k'), inc(4));
    const r = await crdts.read({ table: 'c', key: key('k'), consistency: { r: 3 } });
    expect(r).toMatchObject({ found: true, value: 7 });
    expect(r.bytes).toBeGreaterThan(0);
    const states = [...stores.values()].map((s) => Buffer.from(s.get(id, key('k'))!).toString('hex'));
    expect(new Set(states).size).toBe(1);
    expect(decodeCrdt(Buffer.from(states[0]!, 'hex'))).toMatchObject({ type: 'counter' });
  });

  it('an absent key reads as not found with the empty value', async () => {
    const { crdts } = crdtSetup();
    expect(await crdts.read({ table: 's', key: key('none'), consistency: {} })).toMatchObject({ found: false, value: [], bytes: 0 });
  });
});
