/**
 * Range movements as derived from a gossip view (src/streaming/membership.ts) and the admission
 * rules (src/streaming/admission.ts): which movements exist, the current and future rings they
 * imply, the deterministic order between concurrent ones, and the refusals with their reasons.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import type { EndpointState, NodeInfo } from '../../src/cluster/gossip-state.js';
import { GossipState } from '../../src/cluster/gossip-state.js';
import { initHasher, tokenFromBigInt, tokenToHex } from '../../src/ring/hash.js';
import { checkDecommission, checkRemove, checkReplace, removalMovesData, replicationNeed } from '../../src/streaming/admission.js';
import { currentMembers, departureOf, EXTRA_MV_STATE, EXTRA_REMOVED_BY, EXTRA_REPLACES, futureMembers, movementDigest, movementsOf, precedes, yieldsTo } from '../../src/streaming/membership.js';
import { RingkvError } from '../../src/util/errors.js';
import { thrown } from '../helpers/thrown.js';

beforeAll(async () => {
  await initHasher();
});

function st(id: string, patch: Partial<NodeInfo> = {}, t0 = 1): EndpointState {
  const tokens = [tokenToHex(tokenFromBigInt(BigInt(t0) * 1000n)), tokenToHex(tokenFromBigInt(BigInt(t0) * 1000n + 500n))];
  return { id, generation: 1, version: 1, info: { peer: `127.0.0.1:${7000 + t0}`, http: 'h', rack: 'r', dc: 'd', tokens, shards: 1, status: 'normal', load: 0, ...patch } };
}

const need3 = replicationNeed(3, []);
const allUp = (): boolean => true;

describe('movements from gossip', () => {
  it('a joining node with tokens, a leaving one, a minted removal and a replacement are movements; their drivers are known', () => {
    const view = [
      st('a', {}, 1),
      st('b', { status: 'joining' }, 2),
      st('c', { status: 'leaving' }, 3),
      st('d', { status: 'leaving', extra: { [EXTRA_REMOVED_BY]: 'a' } }, 4),
      st('e', { status: 'joining', extra: { [EXTRA_REPLACES]: 'x' } }, 5),
      st('f', { status: 'joining', tokens: [] }, 6),
    ];
    const ms = movementsOf(view);
    expect(ms.map((m) => [m.kind, m.node, m.driver])).toEqual([
      ['join', 'b', 'b'],
      ['leave', 'c', 'c'],
      ['remove', 'd', 'a'],
      ['replace', 'e', 'e'],
    ]);
    expect(ms.find((m) => m.kind === 'replace')!.replaces).toBe('x');
  });

  it('the current ring excludes joining nodes and nodes a normal member replaced; the future ring applies one movement', () => {
    const view = [st('a', {}, 1), st('x', {}, 2), st('r', { status: 'joining', extra: { [EXTRA_REPLACES]: 'x' } }, 2), st('j', { status: 'joining' }, 3)];
    const cur = currentMembers(view);
    expect(cur.filter((m) => m.status === 'normal').map((m) => m.id)).toEqual(['a', 'x']);
    const [join, replace] = movementsOf(view);
    expect(futureMembers(cur, join!).filter((m) => m.status === 'normal').map((m) => m.id)).toEqual(['a', 'x', 'j']);
    expect(futureMembers(cur, replace!).filter((m) => m.status === 'normal').map((m) => m.id)).toEqual(['a', 'r']);
    // Once the replacement is normal, the replaced node owns nothing, whatever its own state says.
    const after = currentMembers([st('a', {}, 1), st('x', {}, 2), st('r', { extra: { [EXTRA_REPLACES]: 'x' } }, 2)]);
    expect(after.find((m) => m.id === 'x')!.status).toBe('left');
    expect(departureOf([st('x', {}, 2), st('r', { extra: { [EXTRA_REPLACES]: 'x' } }, 2)], 'x')).toMatch(/replaced by r/);
  });

  it('the settle digest changes with the movements and the ring, not with progress', () => {
    const a = movementsOf([st('a'), st('b', { status: 'joining' }, 2)]);
    const b = movementsOf([st('a'), st('b', { status: 'joining', extra: { [EXTRA_MV_STATE]: 'streaming', 'mv.keys': 12 } }, 2)]);
    expect(movementDigest('r1', a)).toBe(movementDigest('r1', b));
    expect(movementDigest('r1', a)).not.toBe(movementDigest('r2', a));
    expect(movementDigest('r1', a)).not.toBe(movementDigest('r1', []));
  });

  it('concurrent movements: one that streams goes first; otherwise the lower driver id; the other yields', () => {
    const both = movementsOf([st('a'), st('j1', { status: 'joining' }, 2), st('j2', { status: 'joining' }, 3)]);
    const [j1, j2] = both;
    expect(yieldsTo(j1!, both)).toBeUndefined();
    expect(yieldsTo(j2!, both)?.node).toBe('j1');
    const streaming = movementsOf([st('a'), st('j1', { status: 'joining' }, 2), st('j2', { status: 'joining', extra: { [EXTRA_MV_STATE]: 'streaming' } }, 3)]);
    expect(precedes(streaming[1]!, streaming[0]!)).toBe(true);
    expect(yieldsTo(streaming[0]!, streaming)?.node).toBe('j2');
    expect(yieldsTo(streaming[1]!, streaming)).toBeUndefined();
  });

  it("a minted removal wins over the dead node's own versions, and gossip carries it", () => {
    const g = new GossipState(st('a'));
    g.apply([st('x', {}, 2)]);
    g.mintForeign('x', { status: 'leaving', extra: { [EXTRA_REMOVED_BY]: 'a' } });
    const other = new GossipState(st('b', {}, 3));
    other.apply([st('x', {}, 2)]);
    other.apply(g.all());
    expect(other.get('x')!.info.status).toBe('leaving');
    expect(movementsOf(other.all())[0]).toMatchObject({ kind: 'remove', node: 'x', driver: 'a' });
    expect(() => g.mintForeign('a', {})).toThrow(/its own state/);
  });
});

describe('admission', () => {
  const three = [st('a', {}, 1), st('b', {}, 2), st('c', {}, 3)];
  const four = [...three, st('d', {}, 4)];

  it("refuses a decommission that would leave fewer nodes than a table's N, naming it", () => {
    const e = thrown(() => checkDecommission(three, 'a', [], replicationNeed(3, [{ name: 'orders', n: 3 }]), allUp), RingkvError);
    expect(e.code).toBe('conflict');
    expect(e.message).toMatch(/would have 2 nodes, but table .* keeps N=3/);
    expect(() => checkDecommission(four, 'a', [], need3, allUp)).not.toThrow();
    expect(thrown(() => checkDecommission(four, 'a', [], replicationNeed(3, [{ name: 'wide', n: 4 }]), allUp), RingkvError).message).toMatch(/table wide keeps N=4/);
  });

  it('refuses any movement while another runs, saying which', () => {
    const moving = movementsOf([...four, st('j', { status: 'joining' }, 9)]);
    expect(thrown(() => checkDecommission(four, 'a', moving, need3, allUp), RingkvError).message).toMatch(/another range movement is under way \(join of j\)/);
    expect(thrown(() => checkRemove(four, 'a', 'd', moving, need3, (id) => id !== 'd'), RingkvError).message).toMatch(/another range movement/);
  });

  it('refuses a decommission while a node that would receive ranges is down', () => {
    expect(thrown(() => checkDecommission(four, 'a', [], need3, (id) => id !== 'c'), RingkvError).message).toMatch(/c is down/);
  });

  it('removenode: only of a dead member other than self', () => {
    const dead = (id: string): boolean => id !== 'd';
    expect(() => checkRemove(four, 'a', 'd', [], need3, dead)).not.toThrow();
    expect(thrown(() => checkRemove(four, 'a', 'd', [], need3, allUp), RingkvError).message).toMatch(/node d is up/);
    expect(thrown(() => checkRemove(four, 'a', 'a', [], need3, dead), RingkvError).code).toBe('bad_request');
    expect(thrown(() => checkRemove(four, 'a', 'zz', [], need3, dead), RingkvError).code).toBe('not_found');
    expect(thrown(() => checkRemove(three, 'a', 'c', [], need3, (id) => id !== 'c'), RingkvError).message).toMatch(/would have 2 nodes/);
  });

  it('removenode ends a movement that cannot finish: a node that died joining (dropped, no data) or leaving', () => {
    const joiner = [...four, st('j', { status: 'joining' }, 9)];
    const jm = movementsOf(joiner);
    expect(() => checkRemove(joiner, 'a', 'j', jm, need3, (id) => id !== 'j')).not.toThrow();
    expect(removalMovesData(joiner, 'j')).toBe(false);
    // Its own movement does not block its removal; another one does.
    expect(thrown(() => checkRemove(joiner, 'a', 'd', jm, need3, (id) => id !== 'd'), RingkvError).message).toMatch(/another range movement/);
    const leaver = [...three, st('d', { status: 'leaving' }, 4)];
    expect(() => checkRemove(leaver, 'a', 'd', movementsOf(leaver), need3, (id) => id !== 'd')).not.toThrow();
    expect(removalMovesData(leaver, 'd')).toBe(true);
    // A removal whose driver died is taken over; one whose driver is up is not.
    const removing = [...three, st('d', { status: 'leaving', extra: { [EXTRA_REMOVED_BY]: 'b' } }, 4)];
    expect(thrown(() => checkRemove(removing, 'a', 'd', movementsOf(removing), need3, (id) => id !== 'd'), RingkvError).message).toMatch(/already being removed \(by b\)/);
    expect(() => checkRemove(removing, 'a', 'd', movementsOf(removing), need3, (id) => id !== 'd' && id !== 'b')).not.toThrow();
  });

  it('replace: only a dead, normal member, by a node with an id of its own', () => {
    const view = { known: true, status: 'normal', up: false, departed: null, tokens: ['00'] };
    expect(() => checkReplace('n', 'x', view)).not.toThrow();
    expect(thrown(() => checkReplace('n', 'x', { ...view, up: true }), RingkvError).message).toMatch(/is up/);
    expect(thrown(() => checkReplace('x', 'x', view), RingkvError).message).toMatch(/node id of its own/);
    expect(thrown(() => checkReplace('n', 'x', { ...view, known: false }), RingkvError).code).toBe('not_found');
    expect(thrown(() => checkReplace('n', 'x', { ...view, departed: 'it was decommissioned' }), RingkvError).message).toMatch(/decommissioned/);
  });
});
