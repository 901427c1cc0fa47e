import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  GossipState,
  GossipValidationError,
  compareVersions,
  mergeViews,
  type EndpointState,
  type MemberStatus,
  type NodeInfo,
} from '../../src/cluster/gossip-state.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function tok(n: number): string {
  return n.toString(16).padStart(16, '0');
}

/**
 * Info as a deterministic function of (id, generation, version): in a real
 * cluster only the owner mints a given version, so its content is unique.
 */
function infoFor(id: string, generation: number, version: number): NodeInfo {
  const n = Number(id.replace(/\D/g, '')) || 0;
  return {
    peer: `10.0.0.${n}:7000`,
    http: `http://10.0.0.${n}:8080`,
    rack: `r${n % 3}`,
    dc: 'dc1',
    tokens: [tok(n * 2 + 1), tok(n * 2 + 2)],
    shards: 2,
    status: 'normal',
    load: generation * 1_000_000 + version,
  };
}

function st(id: string, generation: number, version: number, info?: NodeInfo): EndpointState {
  return { id, generation, version, info: info ?? infoFor(id, generation, version) };
}

function sorted(m: ReadonlyMap<string, EndpointState>): EndpointState[] {
  return [...m.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Full SYN -> ACK -> ACK2 round, initiated by `a`, through a structured clone (the "wire"). */
function exchange(a: GossipState, b: GossipState, dropAck2 = false): void {
  const ack = b.onSyn(structuredClone(a.makeSyn()));
  const { ack2 } = a.onAck(structuredClone(ack));
  if (!dropAck2) b.onAck2(structuredClone(ack2));
}

const statusArb = fc.constantFrom<MemberStatus>('joining', 'normal', 'leaving', 'left');

/** Arbitrary info, deliberately NOT a function of the version, to exercise the tie-break. */
const infoArb: fc.Arbitrary<NodeInfo> = fc
  .record(
    {
      host: fc.integer({ min: 1, max: 3 }),
      rack: fc.constantFrom('r1', 'r2'),
      tokens: fc.uniqueArray(fc.integer({ min: 0, max: 20 }).map(tok), { maxLength: 3 }),
      shards: fc.integer({ min: 1, max: 3 }),
      status: statusArb,
      load: fc.integer({ min: 0, max: 3 }),
      hints: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      ipc: fc.option(fc.constantFrom('/tmp/a.sock', '/tmp/b.sock'), { nil: undefined }),
      extra: fc.option(
        fc.dictionary(fc.constantFrom('x', 'y'), fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constantFrom('p', 'q'))),
        { nil: undefined },
      ),
    },
    { requiredKeys: ['host', 'rack', 'tokens', 'shards', 'status', 'load'] },
  )
  .map((r) => {
    const info: NodeInfo = {
      peer: `h${r.host}:7000`,
      http: `http://h${r.host}:8080`,
      rack: r.rack,
      dc: 'dc1',
      tokens: r.tokens,
      shards: r.shards,
      status: r.status,
      load: r.load,
    };
    if (r.hints !== undefined) info.hints = r.hints;
    if (r.ipc !== undefined) info.ipc = r.ipc;
    if (r.extra !== undefined) info.extra = r.extra;
    return info;
  });

const stateArb = fc
  .record({
    id: fc.constantFrom('a', 'b', 'c', 'd'),
    generation: fc.integer({ min: 1, max: 2 }),
    version: fc.integer({ min: 0, max: 2 }),
    info: infoArb,
  })
  .map((s): EndpointState => s);

const viewArb = fc
  .uniqueArray(stateArb, { selector: (s) => s.id, maxLength: 4 })
  .map((arr) => new Map(arr.map((s) => [s.id, s] as const)));

describe('compareVersions', () => {
  it('orders by generation, then version', () => {
    expect(compareVersions(st('a', 1, 9), st('a', 2, 0))).toBe(-1);
    expect(compareVersions(st('a', 2, 3), st('a', 2, 1))).toBe(1);
    expect(compareVersions(st('a', 2, 3), { id: 'a', generation: 2, version: 3 })).toBe(0);
  });
  it('refuses to compare different endpoints', () => {
    expect(() => compareVersions(st('a', 1, 1), st('b', 1, 1))).toThrow();
  });
});

describe('mergeViews (semilattice laws)', () => {
  it('is commutative', () => {
    fc.assert(
      fc.property(viewArb, viewArb, (a, b) => {
        expect(sorted(mergeViews(a, b))).toEqual(sorted(mergeViews(b, a)));
      }),
    );
  });
  it('is associative', () => {
    fc.assert(
      fc.property(viewArb, viewArb, viewArb, (a, b, c) => {
        expect(sorted(mergeViews(mergeViews(a, b), c))).toEqual(sorted(mergeViews(a, mergeViews(b, c))));
      }),
    );
  });
  it('is idempotent', () => {
    fc.assert(
      fc.property(viewArb, viewArb, (a, b) => {
        expect(sorted(mergeViews(a, a))).toEqual(sorted(a));
        const ab = mergeViews(a, b);
        expect(sorted(mergeViews(ab, b))).toEqual(sorted(ab));
      }),
    );
  });
  it('result dominates both inputs', () => {
    fc.assert(
      fc.property(viewArb, viewArb, (a, b) => {
        const m = mergeViews(a, b);
        for (const v of [a, b]) {
          for (const [id, s] of v) expect(compareVersions(m.get(id)!, s)).toBeGreaterThanOrEqual(0);
        }
        expect(new Set(m.keys())).toEqual(new Set([...a.keys(), ...b.keys()]));
      }),
    );
  });
  it('rejects maps whose key disagrees with the state id', () => {
    expect(() => mergeViews(new Map([['x', st('a', 1, 1)]]), new Map())).toThrow();
  });
});

/**
 * Two nodes A and B whose views are random subsets of a shared "truth": every
 * held state of node X is some (generation, version) not newer than X's own.
 */
const pairArb = fc
  .record({
    truth: fc.array(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 0, max: 5 })), {
      minLength: 6,
      maxLength: 6,
    }),
    seenA: fc.array(fc.option(fc.tuple(fc.nat(), fc.nat()), { nil: undefined }), { minLength: 6, maxLength: 6 }),
    seenB: fc.array(fc.option(fc.tuple(fc.nat(), fc.nat()), { nil: undefined }), { minLength: 6, maxLength: 6 }),
  })
  .map(({ truth, seenA, seenB }) => {
    const ids = truth.map((_, i) => `n${i}`);
    // Pick a version <= truth for node i using the random pair as a selector.
    const pick = (i: number, sel: [number, number]): EndpointState => {
      const [g, v] = truth[i]!;
      const gen = 1 + (sel[0] % g);
      const ver = gen === g ? sel[1] % (v + 1) : sel[1] % 7;
      return st(ids[i]!, gen, ver);
    };
    const build = (self: number, seen: ([number, number] | undefined)[]): GossipState => {
      const [g, v] = truth[self]!;
      const gs = new GossipState(st(ids[self]!, g, v));
      gs.apply(
        seen.flatMap((sel, i) => (i === self || sel === undefined ? [] : [pick(i, sel)])),
      );
      return gs;
    };
    return { a: build(0, seenA), b: build(1, seenB) };
  });

describe('GossipState SYN/ACK/ACK2', () => {
  it('one exchange leaves both views identical and equal to the merge of the two', () => {
    fc.assert(
      fc.property(pairArb, ({ a, b }) => {
        const expected = sorted(
          mergeViews(new Map(a.all().map((s) => [s.id, s])), new Map(b.all().map((s) => [s.id, s]))),
        );
        exchange(a, b);
        expect(a.all()).toEqual(b.all());
        expect(a.all()).toEqual(expected);
        // A second round is a no-op: nothing left to ship.
        const ack = b.onSyn(a.makeSyn());
        expect(ack.states).toEqual([]);
        expect(ack.requests).toEqual([]);
      }),
    );
  });

  it('onSyn ships states the sender never mentioned and requests what it lacks', () => {
    const a = new GossipState(st('a', 5, 1));
    const b = new GossipState(st('b', 5, 1));
    b.apply([st('c', 1, 3)]);
    a.apply([st('d', 1, 1)]);
    const ack = b.onSyn(a.makeSyn());
    expect(ack.states.map((s) => s.id)).toEqual(['b', 'c']);
    expect(ack.requests).toEqual([
      { id: 'a', generation: 0, version: 0 },
      { id: 'd', generation: 0, version: 0 },
    ]);
    const { ack2, changed } = a.onAck(ack);
    expect(changed).toEqual(['b', 'c']);
    expect(ack2.states.map((s) => s.id)).toEqual(['a', 'd']);
    expect(b.onAck2(ack2)).toEqual(['a', 'd']);
  });

  it('a restarted node (higher generation, lower version) supersedes its old state', () => {
    const a = new GossipState(st('a', 100, 1));
    const oldB = new GossipState(st('b', 100, 1));
    for (let i = 0; i < 50; i++) oldB.beat();
    exchange(a, oldB);
    expect(a.get('b')!.version).toBe(51);

    // b restarts: new generation, version counter back at 0, new info.
    const newB = new GossipState(st('b', 101, 0, { ...infoFor('b1', 101, 0), status: 'joining' }));
    exchange(newB, a);
    expect(a.get('b')).toEqual(newB.self());
    expect(a.get('b')!.info.status).toBe('joining');
    expect(newB.self().generation).toBe(101); // old state was older: no refutation
  });

  it('refutes a remote claim of a newer generation of self by jumping past it', () => {
    const a = new GossipState(st('a', 10, 3));
    const changed = a.apply([st('a', 12, 0)]);
    expect(changed).toEqual([]);
    expect(a.self().generation).toBe(13);
    expect(a.self().version).toBe(4);
    expect(a.self().info).toEqual(infoFor('a', 10, 3)); // content is ours, never the remote's
  });

  it('refutes a same-generation higher version (lost counter) and via SYN digests', () => {
    const a = new GossipState(st('a', 10, 3));
    a.apply([st('a', 10, 40)]);
    expect([a.self().generation, a.self().version]).toEqual([10, 41]);

    const b = new GossipState(st('b', 1, 0));
    const ack = b.onSyn({ from: 'x', digests: [{ id: 'b', generation: 1, version: 7 }] });
    expect([b.self().generation, b.self().version]).toEqual([1, 8]);
    expect(ack.states.map((s) => [s.id, s.version])).toEqual([['b', 8]]);
  });

  it('ignores stale and equal claims about self', () => {
    const a = new GossipState(st('a', 10, 3));
    a.apply([st('a', 10, 3, infoFor('zz', 1, 1)), st('a', 9, 99)]);
    expect(a.self()).toEqual(st('a', 10, 3));
  });

  it('beat and updateSelf bump the version; updateSelf validates and can remove optionals', () => {
    const a = new GossipState(st('a', 1, 0));
    a.beat();
    expect(a.self().version).toBe(1);
    a.updateSelf({ status: 'leaving', hints: 4, extra: { schema: 3 } });
    expect(a.self().version).toBe(2);
    expect(a.self().info.status).toBe('leaving');
    expect(a.self().info.hints).toBe(4);
    a.updateSelf({ hints: undefined });
    expect(a.self().info.hints).toBeUndefined();
    expect('hints' in a.self().info).toBe(false);
    expect(() => a.updateSelf({ shards: 0 })).toThrow(GossipValidationError);
    expect(() => a.updateSelf({ status: undefined })).toThrow(GossipValidationError);
    expect(a.self().version).toBe(3); // failed updates change nothing
  });

  it('stored states are deep-frozen copies', () => {
    const input = st('b', 1, 1);
    const a = new GossipState(st('a', 1, 0));
    a.apply([input]);
    const held = a.get('b')!;
    expect(held).not.toBe(input);
    expect(Object.isFrozen(held) && Object.isFrozen(held.info) && Object.isFrozen(held.info.tokens)).toBe(true);
    input.info.tokens.push(tok(999));
    expect(a.get('b')!.info.tokens).toHaveLength(2);
  });

  it('all() is sorted by id', () => {
    const a = new GossipState(st('n5', 1, 0));
    a.apply([st('n9', 1, 0), st('n1', 1, 0), st('n3', 1, 0)]);
    expect(a.all().map((s) => s.id)).toEqual(['n1', 'n3', 'n5', 'n9']);
  });
});

describe('validation', () => {
  const good = (): Record<string, unknown> => structuredClone(st('b', 1, 1)) as unknown as Record<string, unknown>;
  const withInfo = (patch: Record<string, unknown>): unknown => {
    const s = good();
    s.info = { ...(s.info as object), ...patch };
    return s;
  };
  const bad: [string, unknown][] = [
    ['null', null],
    ['array', []],
    ['generation 0', { ...good(), generation: 0 }],
    ['fractional version', { ...good(), version: 1.5 }],
    ['negative version', { ...good(), version: -1 }],
    ['string generation', { ...good(), generation: '1' }],
    ['empty id', { ...good(), id: '' }],
    ['unknown info field', withInfo({ colour: 'red' })],
    ['bad token', withInfo({ tokens: ['XYZ'] })],
    ['uppercase token', withInfo({ tokens: ['00000000000000AB'] })],
    ['duplicate token', withInfo({ tokens: [tok(1), tok(1)] })],
    ['bad status', withInfo({ status: 'dead' })],
    ['zero shards', withInfo({ shards: 0 })],
    // A node owns at most MAX_VNODES_PER_NODE (256, config's vnodes bound) tokens.
    ['257 tokens', withInfo({ tokens: Array.from({ length: 257 }, (_, i) => tok(i + 1)) })],
    ['negative load', withInfo({ load: -5 })],
    ['peer without port', withInfo({ peer: 'host' })],
    ['peer port out of range', withInfo({ peer: 'host:70000' })],
    ['extra nested object', withInfo({ extra: { a: { b: 1 } } })],
    ['extra NaN', withInfo({ extra: { a: Number.NaN } })],
    ['extra __proto__', withInfo({ extra: JSON.parse('{"__proto__": 1}') as unknown })],
    ['huge string', withInfo({ rack: 'x'.repeat(10_000) })],
  ];
  for (const [name, value] of bad) {
    it(`rejects ${name}`, () => {
      const a = new GossipState(st('a', 1, 0));
      expect(() => a.apply([value as EndpointState])).toThrow(GossipValidationError);
    });
  }

  it('accepts a node with 256 tokens (the vnodes bound)', () => {
    const a = new GossipState(st('a', 1, 0));
    expect(a.apply([withInfo({ tokens: Array.from({ length: 256 }, (_, i) => tok(i + 1)) }) as EndpointState])).toEqual(['b']);
  });

  it('accepts IPv6 peers and string/number extras', () => {
    const a = new GossipState(st('a', 1, 0));
    expect(a.apply([withInfo({ peer: '[::1]:7000', extra: { v: 'x', n: 2 } }) as EndpointState])).toEqual(['b']);
  });

  it('apply is atomic: one bad state in a batch changes nothing', () => {
    const a = new GossipState(st('a', 1, 0));
    expect(() => a.apply([st('b', 1, 1), { ...st('c', 1, 1), version: -1 }])).toThrow(GossipValidationError);
    expect(a.all().map((s) => s.id)).toEqual(['a']);
  });

  it('rejects malformed messages', () => {
    const a = new GossipState(st('a', 1, 0));
    const dup = { from: 'x', digests: [{ id: 'b', generation: 1, version: 0 }, { id: 'b', generation: 1, version: 1 }] };
    expect(() => a.onSyn(dup)).toThrow(GossipValidationError);
    expect(() => a.onSyn({ from: 'x', digests: 'no' } as unknown as never)).toThrow(GossipValidationError);
    expect(() => a.onSyn({ from: 'x', digests: [{ id: 'b', generation: 0, version: 3 }] })).toThrow(
      GossipValidationError,
    );
    expect(() => a.onAck({ from: 'x', states: [], requests: [{ id: 'b' }] } as unknown as never)).toThrow(
      GossipValidationError,
    );
    expect(() => a.onAck2({ from: '', states: [] })).toThrow(GossipValidationError);
    expect(() => new GossipState({ ...st('a', 1, 0), generation: 0 })).toThrow(GossipValidationError);
  });
});

describe('cluster convergence (10 nodes, seeded random pairwise gossip)', () => {
  it('converges within a bounded number of quiet rounds, despite lost ACK2s', () => {
    const MAX_QUIET_ROUNDS = 20;
    const worst: number[] = [];
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 31 - 1 }), (seed) => {
        const rnd = mulberry32(seed);
        const N = 10;
        const ids = Array.from({ length: N }, (_, i) => `n${i}`);
        const nodes = ids.map((id) => new GossipState(st(id, 1 + Math.floor(rnd() * 3), 0)));
        const byId = new Map(ids.map((id, i) => [id, nodes[i]!] as const));

        const round = (mutate: boolean): void => {
          const order = [...nodes].sort(() => rnd() - 0.5);
          for (const n of order) {
            if (mutate) {
              n.beat();
              if (rnd() < 0.1) n.updateSelf({ load: Math.floor(rnd() * 1e9) });
            }
            // Partners: whoever we know of, plus the seed node n0 (as a real node would be configured).
            const known = n.all().map((s) => s.id).filter((id) => id !== n.selfId);
            if (n.selfId !== 'n0' && !known.includes('n0')) known.push('n0');
            if (known.length === 0) continue;
            const peer = byId.get(known[Math.floor(rnd() * known.length)]!)!;
            exchange(n, peer, rnd() < 0.1);
          }
        };
        const converged = (): boolean => {
          const ref = JSON.stringify(nodes[0]!.all());
          return nodes.every((n) => JSON.stringify(n.all()) === ref);
        };

        for (let r = 0; r < 5; r++) round(true);
        // A node restarts mid-way: its old incarnation must be superseded everywhere.
        const victim = 3;
        nodes[victim] = new GossipState(st(ids[victim]!, 10, 0));
        byId.set(ids[victim]!, nodes[victim]!);
        for (let r = 0; r < 3; r++) round(true);

        let quiet = 0;
        while (!converged()) {
          expect(quiet).toBeLessThan(MAX_QUIET_ROUNDS);
          round(false);
          quiet++;
        }
        worst.push(quiet);
        const view = nodes[0]!.all();
        expect(view.map((s) => s.id)).toEqual(ids);
        // Every node's own state is what everyone holds.
        for (const n of nodes) expect(view.find((s) => s.id === n.selfId)).toEqual(n.self());
        expect(view[victim]!.generation).toBe(10);
      }),
      { numRuns: 50 },
    );
    console.log(`gossip convergence: worst case ${Math.max(...worst)} quiet rounds over ${worst.length} seeds`);
  });
});
