/**
 * The client's pure parts split out of client.ts: the routing policy (ring + endpoint health →
 * ordered candidates), batch frame splitting, and same-tick coalescing (with a fake sender port).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { BatchItem, BatchItemResult, RingInfo } from '../../src/api/ipc-protocol.js';
import { Coalescer, itemBytesEstimate, splitFrames } from '../../src/client/batcher.js';
import { ClientRing } from '../../src/client/ring.js';
import { primaryEndpoint, routeCandidates, type EndpointHealth, type RoutingView } from '../../src/client/routing.js';
import type { ClientBatchItem } from '../../src/client/types.js';
import { initHasher } from '../../src/ring/hash.js';
import { RingkvError } from '../../src/util/errors.js';

/** Three nodes, four tokens, N=2: token i's preference list is nodes i%3, (i+1)%3. */
function ringInfo(up: boolean[] = [true, true, true]): RingInfo {
  const tokens = ['1000000000000000', '5000000000000000', '9000000000000000', 'd000000000000000'];
  const pref = tokens.flatMap((_, i) => [i % 3, (i + 1) % 3]);
  const nodes = [0, 1, 2].map((i) => ({ id: `n${i}`, peer: `127.0.0.1:${7000 + i}`, http: '', ipc: `/s/n${i}.sock`, up: up[i]! }));
  return { digest: 'd', version: 1, nodes, tokens, replicas: 2, pref };
}

function view(o: Partial<RoutingView> & { endpoints?: Map<string, EndpointHealth> } = {}): RoutingView {
  return {
    ring: new ClientRing(ringInfo()),
    tokenAware: true,
    endpointOf: (n) => n.ipc,
    endpoints: new Map(),
    seeds: ['/s/seed.sock'],
    now: 1_000,
    ...o,
  };
}
const healthy = (nodeId: string): EndpointHealth => ({ downUntil: 0, nodeId, conns: [{ closed: false }] });

describe('client routing policy', () => {
  beforeAll(() => initHasher());

  it("puts a key's up replicas first, in preference order, then the seeds; each endpoint once", () => {
    const v = view();
    const ring = v.ring!;
    for (const key of ['a', 'b', 'user:42', 'zz']) {
      const reps = ring.replicasFor(key).map((i) => ring.nodes[i]!.ipc);
      const c = routeCandidates(v, key).map((x) => x.ep);
      expect(c.slice(0, 2)).toEqual(reps);
      expect(c).toContain('/s/seed.sock');
      expect(new Set(c).size).toBe(c.length);
      expect(primaryEndpoint(v, key)).toBe(reps[0]);
    }
  });

  it('moves a down replica and a backing-off endpoint behind the live ones, and skips backing-off fallbacks', () => {
    const key = 'user:42';
    const base = view();
    const [first, second] = base.ring!.replicasFor(key);
    const downFirst = view({ ring: new ClientRing(ringInfo([0, 1, 2].map((i) => i !== first))) });
    const c = routeCandidates(downFirst, key).map((x) => x.ep);
    expect(c[0]).toBe(`/s/n${second}.sock`);
    expect(c.indexOf(`/s/n${first}.sock`)).toBeGreaterThan(c.indexOf('/s/seed.sock'));
    expect(primaryEndpoint(downFirst, key)).toBe(`/s/n${second}.sock`);

    const backingOff = new Map<string, EndpointHealth>([[`/s/n${first}.sock`, { downUntil: 2_000, nodeId: `n${first}`, conns: [] }]]);
    const b = routeCandidates(view({ endpoints: backingOff }), key).map((x) => x.ep);
    expect(b[0]).toBe(`/s/n${second}.sock`);
    expect(primaryEndpoint(view({ endpoints: backingOff }), key)).toBe(`/s/n${second}.sock`);
    // A known endpoint that is no replica of the key and is backing off is left out entirely.
    const stranger = new Map<string, EndpointHealth>([['/s/other.sock', { downUntil: 2_000, nodeId: 'x', conns: [] }]]);
    expect(routeCandidates(view({ endpoints: stranger }), key).map((x) => x.ep)).not.toContain('/s/other.sock');
    expect(routeCandidates(view({ endpoints: stranger, now: 3_000 }), key).map((x) => x.ep)).toContain('/s/other.sock');
  });

  it('without token awareness or a ring: connected endpoints, then the seeds; no primary', () => {
    const endpoints = new Map([['/s/n2.sock', healthy('n2')]]);
    for (const v of [view({ tokenAware: false, endpoints }), view({ ring: undefined, endpoints })]) {
      expect(routeCandidates(v, 'a')).toEqual([
        { ep: '/s/n2.sock', node: 'n2' },
        { ep: '/s/seed.sock', node: undefined },
      ]);
      expect(primaryEndpoint(v, 'a')).toBeUndefined();
    }
  });
});

describe('client batching', () => {
  const put = (key: string, valueBytes: number): BatchItem => ({ op: 'put', table: 't', key, value: new Uint8Array(valueBytes) }) as BatchItem;

  it('property: frames cover every item once, in order, within the item and byte bounds', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5_000 }), { maxLength: 200 }), fc.integer({ min: 1, max: 50 }), fc.integer({ min: 100, max: 20_000 }), (sizes, maxItems, maxBytes) => {
        const items = sizes.map((s, i) => put(`k${i}`, s));
        const frames = splitFrames(items, maxItems, maxBytes);
        let next = 0;
        for (const [start, end] of frames) {
          expect(start).toBe(next);
          expect(end).toBeGreaterThan(start);
          expect(end - start).toBeLessThanOrEqual(maxItems);
          const bytes = items.slice(start, end).reduce((a, w) => a + itemBytesEstimate(w), 0);
          // Within the byte bound, unless one item alone exceeds it (it then goes alone).
          expect(end - start === 1 || bytes <= maxBytes).toBe(true);
          // And full: the next item would have broken a bound.
          if (end < items.length) expect(end - start === maxItems || bytes + itemBytesEstimate(items[end]!) > maxBytes).toBe(true);
          next = end;
        }
        expect(next).toBe(items.length);
      }),
    );
  });

  it('coalesces the calls of one tick into one send per timeout, and answers each call with its own result', async () => {
    const sent: Array<{ keys: string[]; timeoutMs: number | undefined }> = [];
    const c = new Coalescer(async (items, timeoutMs) => {
      sent.push({ keys: items.map((i) => String(i.key)), timeoutMs });
      return items.map((i) => ({ ok: true, context: `ctx-${String(i.key)}` }) as unknown as BatchItemResult);
    });
    const item = (key: string): ClientBatchItem => ({ op: 'get', table: 't', key });
    const rs = await Promise.all([c.add(item('a'), undefined), c.add(item('b'), 500), c.add(item('c'), undefined)]);
    expect(sent).toEqual([
      { keys: ['a', 'c'], timeoutMs: undefined },
      { keys: ['b'], timeoutMs: 500 },
    ]);
    expect(rs.map((r) => (r as { context?: string }).context)).toEqual(['ctx-a', 'ctx-b', 'ctx-c']);
    // The next tick is a new batch.
    await c.add(item('d'), undefined);
    expect(sent).toHaveLength(3);
  });

  it('a send that fails answers every waiting call with an error item carrying the code', async () => {
    const c = new Coalescer(async () => {
      throw new RingkvError('unavailable', 'no node');
    });
    const rs = await Promise.all([c.add({ op: 'del', table: 't', key: 'x' }, undefined), c.add({ op: 'del', table: 't', key: 'y' }, undefined)]);
    expect(rs).toEqual([
      { ok: false, code: 'unavailable', message: 'no node' },
      { ok: false, code: 'unavailable', message: 'no node' },
    ]);
  });
});
