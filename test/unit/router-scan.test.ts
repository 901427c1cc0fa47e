/**
 * Range scans through the router with in-process fakes for the shards and the peers (the real
 * shards and transport are covered by test/integration/scan.test.ts): token order from the start
 * token with one wrap, the limit, reconciliation of replica pages, tombstones dropped, paging with
 * replicas whose pages end at different keys, replacement of a failed replica, unavailable, and
 * the pure segment planning.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { NodeConfig } from '../../src/config/config.js';
import { initHasher, tokenFromBigInt, tokenOf, tokenToBigInt, type Token } from '../../src/ring/hash.js';
import type { Router } from '../../src/router/router.js';
import { clipWalk, decodePagingState, planScanSegments, scanWalkStart, segmentWithinRange, type ScanResult } from '../../src/router/scan.js';
import { tableIdOf } from '../../src/router/tables.js';
import { RingkvError } from '../../src/util/errors.js';
import { initVersions } from '../../src/versions/index.js';
import { routerSetup } from '../helpers/router-fakes.js';

function setup(over: Partial<NodeConfig> = {}, pages: number[] = [1000, 1000, 1000]) {
  return routerSetup({ config: { requestTimeoutMs: 500, ...over }, vnodes: 8, seedBase: 11, pages });
}

const b = (s: string): Buffer => Buffer.from(s);
const str = (u: Uint8Array): string => Buffer.from(u).toString();

/** Live keys in scan order from `start`'s token (inclusive), wrapping once: the oracle. */
function expectedOrder(keys: string[], start: string, exclusive = false): string[] {
  const t0 = tokenToBigInt(tokenOf(start));
  const ring = 1n << 64n;
  const dist = (k: string): bigint => (((tokenToBigInt(tokenOf(k)) - t0) % ring) + ring) % ring;
  const list = exclusive ? keys.filter((k) => dist(k) !== 0n) : keys;
  return [...list].sort((x, y) => {
    const d = dist(x) - dist(y);
    return d < 0n ? -1 : d > 0n ? 1 : Buffer.compare(b(x), b(y));
  });
}

async function load(router: Router, n: number, table = 't'): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    const k = `user${String(i).padStart(5, '0')}`;
    keys.push(k);
    await router.write({ table, key: b(k), value: b(`v-${k}`), tombstone: false, consistency: { w: 3 } });
  }
  return keys;
}

beforeAll(async () => {
  await initHasher();
  await initVersions();
});

describe('planScanSegments / segmentWithinRange', () => {
  const toks = (xs: bigint[]): Token[] => xs.map(tokenFromBigInt);
  it('covers the ring exactly once from the start token, in ring order, each piece inside its range', () => {
    const tokens = toks([100n, 200n, 300n]);
    const segs = planScanSegments(tokens, tokenFromBigInt(150n), false);
    expect(segs.map((s) => [s.pos, tokenToBigInt({ hi: s.startHi, lo: s.startLo }), tokenToBigInt({ hi: s.endHi, lo: s.endLo })])).toEqual([
      [1, 149n, 200n],
      [2, 200n, 300n],
      [0, 300n, (1n << 64n) - 1n], // the wrapping range, split at 2^64-1
      [0, (1n << 64n) - 1n, 100n],
      [1, 100n, 149n],
    ]);
    for (const s of segs) {
      const n = tokens.length;
      expect(segmentWithinRange(tokens[(s.pos + n - 1) % n]!, tokens[s.pos]!, { hi: s.startHi, lo: s.startLo }, { hi: s.endHi, lo: s.endLo })).toBe(true);
    }
    // Starting right after a ring token: the first range is whole, no trailing piece.
    expect(planScanSegments(tokens, tokenFromBigInt(101n), false).map((s) => s.pos)).toEqual([1, 2, 0, 0]);
    // Exclusive at a ring token: that range's last token is the very end of the walk.
    const ex = planScanSegments(tokens, tokenFromBigInt(200n), true);
    expect(ex.map((s) => s.pos)).toEqual([2, 0, 0, 1]);
    // Token 0 inclusive wraps the lower bound to 2^64-1.
    expect(tokenToBigInt({ hi: planScanSegments(tokens, tokenFromBigInt(0n), false)[0]!.startHi, lo: planScanSegments(tokens, tokenFromBigInt(0n), false)[0]!.startLo })).toBe((1n << 64n) - 1n);
    // One token: the whole ring in one or two pieces.
    expect(planScanSegments(toks([500n]), tokenFromBigInt(501n), false)).toHaveLength(2);
    expect(planScanSegments(toks([500n]), tokenFromBigInt(10n), false)).toHaveLength(3);
  });

  it('segmentWithinRange rejects pieces that leave the range or wrap the ring', () => {
    const t = (x: bigint): Token => tokenFromBigInt(x);
    expect(segmentWithinRange(t(100n), t(200n), t(150n), t(200n))).toBe(true);
    expect(segmentWithinRange(t(100n), t(200n), t(150n), t(250n))).toBe(false);
    expect(segmentWithinRange(t(100n), t(200n), t(50n), t(150n))).toBe(false);
    expect(segmentWithinRange(t(100n), t(200n), t(150n), t(150n))).toBe(false); // (x, x] = whole ring
    expect(segmentWithinRange(t(100n), t(100n), t(100n), t(100n))).toBe(true); // one-token ring
  });
});

describe('Router.scan (fakes for shards and peers)', () => {
  it('token order from the start token, deleted keys skipped, exactly limit rows, wrapping once', async () => {
    const { router } = setup();
    const keys = await load(router, 120);
    const deleted = new Set(keys.filter((_, i) => i % 9 === 0));
    for (const k of deleted) await router.write({ table: 't', key: b(k), value: b(''), tombstone: true, consistency: { w: 3 } });
    const live = keys.filter((k) => !deleted.has(k));
    const start = 'user00042';
    const r = await router.scan({ table: 't', startKey: b(start), limit: 50, consistency: { r: 2 } });
    expect(r.rows).toHaveLength(50);
    expect(r.truncated).toBe(false);
    expect(r.rows.map((x) => str(x.key))).toEqual(expectedOrder(live, start).slice(0, 50));
    expect(r.rows.every((x) => x.values.length === 1 && str(x.values[0]!.value) === `v-${str(x.key)}`)).toBe(true);
    expect(r.consistency).toMatchObject({ n: 3, required: 2, replied: 2 });
    // The whole ring: every live key exactly once, wrapping around to just before the start.
    const all = await router.scan({ table: 't', startKey: b(start), limit: 1000, consistency: { r: 3 } });
    expect(all.rows.map((x) => str(x.key))).toEqual(expectedOrder(live, start));
    // Exclusive paging from the last row continues without gaps or repeats.
    const seen: string[] = [];
    let from = start;
    let exclusive = false;
    for (let i = 0; i < 20 && seen.length < live.length; i++) {
      const p = await router.scan({ table: 't', startKey: b(from), exclusive, limit: 17, consistency: {} });
      const got = p.rows.map((x) => str(x.key));
      seen.push(...got);
      from = got[got.length - 1]!;
      exclusive = true;
    }
    expect(seen.slice(0, live.length)).toEqual(expectedOrder(live, start));
  });

  it('replicas whose pages end at different keys are merged up to the smallest cursor, over many rounds', async () => {
    const { router, remote } = setup({}, [5, 3, 7]);
    const keys = await load(router, 60);
    const r = await router.scan({ table: 't', startKey: b('user00007'), limit: 40, consistency: { r: 3 } });
    expect(r.rows.map((x) => str(x.key))).toEqual(expectedOrder(keys, 'user00007').slice(0, 40));
    expect(remote.scans).toBeGreaterThan(2 * 40 / 7); // really paged
  });

  it('reconciles each key across replicas: a stale local replica and a tombstone held by one replica only', async () => {
    const { router, stores } = setup();
    const tid = Buffer.from(tableIdOf('t'), 'hex');
    await load(router, 30);
    const staleKey = b('user00003');
    const old = stores.get('n1')!.get(tid, staleKey)!;
    const seen = await router.read({ table: 't', key: staleKey, consistency: { r: 3 } });
    await router.write({ table: 't', key: staleKey, value: b('newer'), tombstone: false, context: seen.context, consistency: { w: 3 } });
    stores.get('n1')!.set(tid, staleKey, old); // n1 (the coordinator's own shard) missed the update
    const goneKey = b('user00004');
    const oldGone = stores.get('n1')!.get(tid, goneKey)!;
    await router.write({ table: 't', key: goneKey, value: b(''), tombstone: true, consistency: { w: 3 } });
    stores.get('n1')!.set(tid, goneKey, oldGone);
    stores.get('n2')!.set(tid, goneKey, oldGone); // only n3 has the tombstone

    const all = await router.scan({ table: 't', startKey: staleKey, limit: 1000, consistency: { r: 3 } });
    const byKey = new Map(all.rows.map((x) => [str(x.key), x]));
    expect(str(byKey.get('user00003')!.values[0]!.value)).toBe('newer');
    expect(byKey.get('user00003')!.values).toHaveLength(1);
    expect(byKey.has('user00004')).toBe(false);
    expect(all.rows).toHaveLength(29);
    // R=1 reads the local replica first: it still shows what n1 holds (no repair by scans).
    const one = await router.scan({ table: 't', startKey: staleKey, limit: 1000, consistency: { r: 1 } });
    const oneByKey = new Map(one.rows.map((x) => [str(x.key), x]));
    expect(str(oneByKey.get('user00003')!.values[0]!.value)).toBe('v-user00003');
    expect(oneByKey.has('user00004')).toBe(true);
  });

  it('a failed replica is replaced by another; fewer than R answering is a clear 503 naming the count', async () => {
    const { router, remote } = setup();
    const keys = await load(router, 40);
    remote.behaviour.set('n2', 'fail');
    const ok = await router.scan({ table: 't', startKey: b('user00001'), limit: 1000, consistency: { r: 2 } });
    expect(ok.rows.map((x) => str(x.key))).toEqual(expectedOrder(keys, 'user00001'));
    remote.behaviour.set('n3', 'fail');
    const err = await router.scan({ table: 't', startKey: b('user00001'), limit: 10, consistency: { r: 2 } }).then(
      () => null,
      (e: unknown) => e as RingkvError,
    );
    expect(err).toBeInstanceOf(RingkvError);
    expect(err!.code).toBe('unavailable');
    expect(err!.status).toBe(503);
    expect(err!.message).toMatch(/1 of 2 required replicas answered/);
    // A hung replica with no spare: the scan's deadline answers `timeout`.
    remote.behaviour.set('n2', 'hang');
    remote.behaviour.set('n3', 'hang');
    await expect(router.scan({ table: 't', startKey: b('user00001'), limit: 10, consistency: { r: 3 }, timeoutMs: 100 })).rejects.toMatchObject({ code: 'timeout' });
  });

  it('validates the limit, reads unknown tables as empty, and creates no table', async () => {
    const { router, tables } = setup();
    for (const limit of [0, 1001, 2.5, Number.NaN]) {
      await expect(router.scan({ table: 't', startKey: b('a'), limit, consistency: {} })).rejects.toMatchObject({ code: 'bad_request', details: { field: 'limit' } });
    }
    await expect(router.scan({ table: 't', startKey: b('a'), limit: 10, consistency: { r: 4 } })).rejects.toMatchObject({ code: 'bad_request' });
    const r = await router.scan({ table: 'nothing', startKey: b('a'), limit: 10, consistency: {} });
    expect(r.rows).toEqual([]);
    expect(tables.all()).toEqual([]);
  });

  it('stops early with truncated when the reply byte bound is reached', async () => {
    const { router } = setup();
    const big = Buffer.alloc(900 * 1024, 7);
    for (let i = 0; i < 8; i++) await router.write({ table: 't', key: b(`big${i}`), value: big, tombstone: false, consistency: { w: 3 } });
    const r = await router.scan({ table: 't', startKey: b('big0'), limit: 100, consistency: { r: 1 } });
    expect(r.truncated).toBe(true);
    expect(r.rows.length).toBe(4); // 4 × 900 KiB fit in 4 MiB, a fifth does not
    expect(str(r.rows[0]!.key)).toBe('big0');
  });
});

describe('scan paging state and the end of the ring (issue 10 item 12)', () => {
  const RING = 1n << 64n;
  const tok = fc.bigInt({ min: 0n, max: RING - 1n }).map(tokenFromBigInt);

  it('clipWalk: the clipped walk covers exactly (walkStart, end] once, in order, inside ring ranges', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.bigInt({ min: 0n, max: RING - 1n }), { minLength: 1, maxLength: 12 }), tok, fc.boolean(), tok, (raw, start, exclusive, end) => {
        const tokens = raw.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)).map(tokenFromBigInt);
        const w = scanWalkStart(start, exclusive);
        const segs = clipWalk(planScanSegments(tokens, start, exclusive), w, end);
        const off = (t: Token): bigint => (((tokenToBigInt(t) - tokenToBigInt(w)) % RING) + RING) % RING;
        const stop = off(end) === 0n ? RING : off(end);
        let at = 0n;
        for (const sg of segs) {
          const a = off({ hi: sg.startHi, lo: sg.startLo });
          const e = off({ hi: sg.endHi, lo: sg.endLo });
          expect(a).toBe(at);
          at = e === 0n ? RING : e;
          expect(at > a).toBe(true);
          const n = tokens.length;
          expect(segmentWithinRange(tokens[(sg.pos + n - 1) % n]!, tokens[sg.pos]!, { hi: sg.startHi, lo: sg.startLo }, { hi: sg.endHi, lo: sg.endLo })).toBe(true);
        }
        expect(at).toBe(stop);
      }),
    );
  });

  /** Page with pagingState until endOfRing; every page's rows in order. */
  async function pageAll(router: Router, start: string, limit: number, exclusive = false): Promise<{ keys: string[]; pages: ScanResult[] }> {
    const pages: ScanResult[] = [];
    let r = await router.scan({ table: 't', startKey: b(start), exclusive, limit, consistency: {} });
    pages.push(r);
    while (!r.endOfRing) {
      expect(pages.length).toBeLessThan(500);
      expect(typeof r.pagingState).toBe('string');
      r = await router.scan({ table: 't', pagingState: r.pagingState!, limit, consistency: {} });
      pages.push(r);
    }
    expect(r.pagingState).toBeUndefined();
    return { keys: pages.flatMap((p) => p.rows.map((x) => str(x.key))), pages };
  }

  it('paging to the end visits every live key exactly once, from any start, and then stops', async () => {
    const { router } = setup({}, [5, 3, 7]);
    const keys = await load(router, 90);
    for (const k of keys.filter((_, i) => i % 7 === 0)) await router.write({ table: 't', key: b(k), value: b(''), tombstone: true, consistency: { w: 3 } });
    const live = keys.filter((_, i) => i % 7 !== 0);
    for (const [start, limit, exclusive] of [['user00013', 10, false], ['user00013', 10, true], ['zzz', 1, false], [live[4]!, 77, false], [live[4]!, 1000, true]] as const) {
      const { keys: got, pages } = await pageAll(router, start, limit, exclusive);
      // One full turn: exclusive starts after the start key's token and so ends with it.
      const turn = exclusive ? [...expectedOrder(live, start, true), ...live.filter((k) => tokenToBigInt(tokenOf(k)) === tokenToBigInt(tokenOf(start)))] : expectedOrder(live, start);
      expect(got, `${start}/${limit}/${exclusive}`).toEqual(turn);
      expect(pages.length).toBeLessThanOrEqual(Math.ceil(live.length / limit) + 1);
    }
    // A one-page scan of the whole ring says so: endOfRing and no paging state.
    const whole = await router.scan({ table: 't', startKey: b('a'), limit: 1000, consistency: {} });
    expect(whole).toMatchObject({ endOfRing: true, truncated: false });
    expect(whole.pagingState).toBeUndefined();
  });

  it('a page that stops at the byte bound continues from its last row', async () => {
    const { router } = setup();
    const big = Buffer.alloc(900 * 1024, 7);
    for (let i = 0; i < 9; i++) await router.write({ table: 't', key: b(`big${i}`), value: big, tombstone: false, consistency: { w: 3 } });
    const { keys, pages } = await pageAll(router, 'big3', 100);
    expect(pages[0]!.truncated).toBe(true);
    expect([...keys].sort()).toEqual(Array.from({ length: 9 }, (_, i) => `big${i}`));
  });

  it('refuses a paging state it did not make, naming the field', async () => {
    const { router } = setup();
    for (const bad of ['', 'not base64!', 'AA', Buffer.from([9, 0, 0, 0, 0, 0, 0, 0, 0, 65]).toString('base64url')]) {
      await expect(router.scan({ table: 't', pagingState: bad, limit: 10, consistency: {} })).rejects.toMatchObject({ code: 'bad_request', details: { field: 'pagingState' } });
    }
    expect(() => decodePagingState('AQAAAAAAAAAAQQ', 0)).toThrow(/key size limit/);
  });
});
