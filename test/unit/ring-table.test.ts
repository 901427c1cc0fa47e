import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import ts from 'typescript';
import { initHasher, tokenFromBigInt, tokenOf, tokenToBigInt, type Token } from '../../src/ring/hash.js';
import { buildRing, positionOf, type RingLayout, type RingMember } from '../../src/ring/builder.js';
import { randomTokens } from '../../src/ring/tokens.js';
import { Liveness, MAX_NODES, MAX_REPLICAS, MAX_TOKENS, RING_TABLE_LAYOUT, RingTable, ringTableCapacityError } from '../../src/ring/table.js';
import { PlainRing } from '../../src/ring/plain-ring.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function ring(prefix: string, nodes: number, vnodes: number, maxReplicas: number, seed: number): RingLayout {
  const rand = seeded(seed);
  const members: RingMember[] = [];
  for (let i = 0; i < nodes; i++) members.push({ id: `${prefix}${i}`, tokens: randomTokens(vnodes, rand), status: 'normal' });
  return buildRing(members, { maxReplicas });
}

/** Expected answer from the pure builder: the nodes of the key's position. */
function expected(layout: RingLayout, t: Token): { nodes: number[]; pos: number } {
  if (layout.tokens.length === 0) return { nodes: [], pos: -1 };
  const pos = positionOf(layout, t);
  const R = layout.replicas;
  return { nodes: [...layout.pref.subarray(pos * R, pos * R + R)], pos };
}

const keys: Token[] = [];
beforeAll(async () => {
  await initHasher();
  for (let i = 0; i < 2000; i++) keys.push(tokenOf(`key-${i}`));
  // Exact boundaries matter most: lookups of the tokens themselves and their neighbours.
  keys.push(tokenFromBigInt(0n), tokenFromBigInt((1n << 64n) - 1n));
});

describe('RingTable (single thread)', () => {
  it('empty table: no replicas, self -1', () => {
    const t = RingTable.create();
    const nodes = new Uint16Array(MAX_REPLICAS);
    const pos = new Int32Array(1);
    expect(t.lookup(1, 2, nodes, pos)).toBe(0);
    expect(pos[0]).toBe(-1);
    pos[0] = 7;
    expect(RingTable.attach(t.buffer).lookup(1, 2, nodes, pos)).toBe(0);
    expect(pos[0]).toBe(-1);
    expect(t.selfIndex()).toBe(-1);
    expect(t.tokenCount()).toBe(0);
    expect(t.version).toBe(0);
    expect(t.isReplica(1, 2)).toBe(false);
    t.publish(buildRing([], { maxReplicas: 3 }), -1, () => Liveness.Up);
    expect(t.version).toBe(1);
    expect(t.lookup(1, 2, nodes)).toBe(0);
  });

  it('lookups agree with buildRing + positionOf (and PlainRing), across republishes', () => {
    const t = RingTable.create();
    // The creating instance takes the plain-load path; an attached one the seqlock path: check both.
    const reader = RingTable.attach(t.buffer);
    const nodes = new Uint16Array(MAX_REPLICAS);
    const pos = new Int32Array(1);
    const pn = new Uint16Array(MAX_REPLICAS);
    // 'e' is the size the table must hold for the seeds' 1,000-node clusters: 1,024 nodes x 16 vnodes.
    const layouts = [ring('a', 5, 16, 3, 1), ring('b', 1, 4, 3, 2), ring('c', 12, 32, 5, 3), ring('d', 256, 16, 5, 4), ring('e', 1024, 16, 3, 5)];
    for (const [v, layout] of layouts.entries()) {
      t.publish(layout, 1 % layout.nodeIds.length, () => Liveness.Up);
      expect(t.version).toBe(v + 1);
      expect(t.tokenCount()).toBe(layout.tokens.length);
      expect(t.replicaCount()).toBe(layout.replicas);
      const plain = new PlainRing(layout);
      // Keys, every token exactly, and every token + 1 (the first key of the next range).
      const probe = [...keys, ...layout.tokens, ...layout.tokens.map((x) => tokenFromBigInt((tokenToBigInt(x) + 1n) % (1n << 64n)))];
      // Collect mismatches and assert once: per-key expect() calls dominate the runtime here.
      const mismatches: string[] = [];
      for (const k of probe) {
        const e = expected(layout, k);
        const want = encode(e);
        const r = t.lookup(k.hi, k.lo, nodes, pos);
        const got = encode({ nodes: [...nodes.subarray(0, r)] });
        const p0 = pos[0];
        const rr = reader.lookup(k.hi, k.lo, pn, pos);
        const gotReader = encode({ nodes: [...pn.subarray(0, rr)] });
        const rp = plain.lookup(k.hi, k.lo, pn);
        const gotPlain = encode({ nodes: [...pn.subarray(0, rp)] });
        if (r !== layout.replicas || got !== want || gotReader !== want || gotPlain !== want || p0 !== e.pos || pos[0] !== e.pos) {
          mismatches.push(`${k.hi}:${k.lo} want ${want} got ${got} reader ${gotReader} plain ${gotPlain}`);
        }
      }
      expect(mismatches).toEqual([]);
    }
  });

  it('selfIndex, isReplica and liveness', () => {
    const t = RingTable.create();
    const layout = ring('n', 6, 8, 3, 9);
    const self = 2;
    t.publish(layout, self, (id) => (id === 'n4' ? Liveness.Down : id === 'n5' ? Liveness.Unknown : Liveness.Up));
    expect(t.selfIndex()).toBe(self);
    expect([0, 1, 2, 3, 4, 5].map((i) => t.liveness(i))).toEqual([1, 1, 1, 1, 2, 0]);
    expect(t.liveness(200)).toBe(Liveness.Unknown);
    expect(t.liveness(MAX_NODES - 1)).toBe(Liveness.Unknown);
    t.setLiveness(5, Liveness.Down);
    expect(t.liveness(5)).toBe(Liveness.Down);
    expect(() => t.setLiveness(6, Liveness.Up)).toThrow(RangeError);
    expect(() => t.liveness(MAX_NODES)).toThrow(RangeError);
    let owned = 0;
    for (const k of keys) {
      const at = expected(layout, k).nodes.indexOf(self);
      expect(t.isReplica(k.hi, k.lo)).toBe(at >= 0);
      expect(RingTable.attach(t.buffer).isReplica(k.hi, k.lo)).toBe(at >= 0);
      if (at >= 0) owned++;
    }
    expect(owned).toBeGreaterThan(0);
    // Self not in the ring: owns nothing; liveness is republished from the callback.
    t.publish(layout, -1, () => Liveness.Up);
    expect(t.selfIndex()).toBe(-1);
    expect(t.liveness(5)).toBe(Liveness.Up);
    expect(keys.some((k) => t.isReplica(k.hi, k.lo))).toBe(false);
  });

  it('validates publish input against the MAX_* limits and keeps the old layout', () => {
    const t = RingTable.create();
    const good = ring('g', 3, 4, 3, 5);
    t.publish(good, 0, () => Liveness.Up);
    const tooManyTokens = ring('t', 2, MAX_TOKENS / 2 + 1, 2, 6);
    expect(() => t.publish(tooManyTokens, 0, () => Liveness.Up)).toThrow(/MAX_TOKENS=32768/);
    expect(ringTableCapacityError(tooManyTokens)).toMatch(/32770 tokens/);
    const tooManyReplicas = ring('r', 7, 2, 6, 7);
    expect(() => t.publish(tooManyReplicas, 0, () => Liveness.Up)).toThrow(/MAX_REPLICAS=5/);
    const tooManyNodes = ring('m', MAX_NODES + 1, 1, 3, 8);
    expect(() => t.publish(tooManyNodes, 0, () => Liveness.Up)).toThrow(/MAX_NODES=2048/);
    expect(ringTableCapacityError(tooManyNodes)).toMatch(/2049 owning nodes/);
    expect(ringTableCapacityError(good)).toBeNull();
    expect(() => t.publish(good, 3, () => Liveness.Up)).toThrow(/selfIndex/);
    expect(() => t.publish(good, 0, () => 7 as Liveness)).toThrow(/liveness/);
    expect(() =>
      t.publish(good, 0, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(t.version).toBe(1);
    expect(t.tokenCount()).toBe(good.tokens.length);
    // The seqlock is not left odd by any of the failures: lookups still return.
    const nodes = new Uint16Array(MAX_REPLICAS);
    expect(t.lookup(0, 0, nodes)).toBe(3);
    expect(() => t.lookup(0, 0, new Uint16Array(2))).toThrow(/room for 3/);
    expect(() => RingTable.attach(t.buffer).lookup(0, 0, new Uint16Array(2))).toThrow(/room for 3/);
  });

  it('attach: shares the buffer, is read-only, and checks the buffer', () => {
    const w = RingTable.create();
    const r = RingTable.attach(w.buffer);
    const layout = ring('x', 4, 8, 3, 10);
    w.publish(layout, 1, () => Liveness.Up);
    expect(r.version).toBe(1);
    expect(r.selfIndex()).toBe(1);
    expect(() => r.publish(layout, 1, () => Liveness.Up)).toThrow(/read-only/);
    expect(() => r.setLiveness(0, Liveness.Down)).toThrow(/read-only/);
    expect(() => RingTable.attach(new SharedArrayBuffer(64))).toThrow(/layout mismatch/);
    expect(() => RingTable.attach(new SharedArrayBuffer(RING_TABLE_LAYOUT.TOTAL_BYTES))).toThrow(/magic/);
  });
});

// ---- real worker threads -------------------------------------------------------------------------

/**
 * Workers run plain Node (no vitest transform), so transpile the real table module (and its one
 * runtime import) into a temp dir and load it there: the worker exercises RingTable itself.
 */
let workDir = '';
async function workerDir(): Promise<string> {
  if (workDir !== '') return workDir;
  const dir = await mkdtemp(join(tmpdir(), 'ringkv-ring-table-'));
  for (const rel of ['src/ring/table.ts', 'src/util/errors.ts']) {
    const src = await readFile(join(ROOT, rel), 'utf8');
    const out = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, preserveConstEnums: true },
    }).outputText;
    await mkdir(join(dir, dirname(rel)), { recursive: true });
    await writeFile(join(dir, rel.replace(/\.ts$/, '.js')), out);
  }
  await writeFile(join(dir, 'package.json'), '{"type":"module"}');
  await writeFile(join(dir, 'worker.js'), WORKER_SOURCE);
  workDir = dir;
  return dir;
}
afterAll(async () => {
  if (workDir !== '') await rm(workDir, { recursive: true, force: true });
});

const WORKER_SOURCE = `
import { parentPort, workerData } from 'node:worker_threads';
import { RingTable, MAX_REPLICAS } from './src/ring/table.js';
const table = RingTable.attach(workerData.buffer);
const nodes = new Uint16Array(MAX_REPLICAS);
parentPort.on('message', (m) => {
  const hl = m.hl;
  const k = hl.length / 2;
  if (m.type === 'lookup') {
    const out = [];
    for (let i = 0; i < k; i++) {
      const r = table.lookup(hl[2 * i], hl[2 * i + 1], nodes);
      out.push([...nodes.subarray(0, r)].join(','));
    }
    parentPort.postMessage({ version: table.version, self: table.selfIndex(), out });
  } else if (m.type === 'stress') {
    // Every answer must be exactly layout A's or exactly layout B's answer for that key.
    const stop = new Int32Array(m.stop);
    let lookups = 0, bad = 0, sawA = 0, sawB = 0, firstBad = null;
    const versions = new Set();
    Atomics.store(stop, 1, 1); // ready
    while (Atomics.load(stop, 0) === 0) {
      for (let i = 0; i < k; i++) {
        const r = table.lookup(hl[2 * i], hl[2 * i + 1], nodes);
        const got = [...nodes.subarray(0, r)].join(',');
        lookups++;
        if (got === m.a[i]) sawA++;
        else if (got === m.b[i]) sawB++;
        else { bad++; firstBad ??= { i, got, a: m.a[i], b: m.b[i] }; }
      }
      versions.add(table.version);
      // Progress for the writer, so it keeps publishing until both layouts were really observed.
      Atomics.store(stop, 2, Math.min(sawA, 1 << 30));
      Atomics.store(stop, 3, Math.min(sawB, 1 << 30));
    }
    parentPort.postMessage({ lookups, bad, sawA, sawB, firstBad, versions: versions.size });
  }
});
`;

function encode(e: { nodes: number[] }): string {
  return e.nodes.join(',');
}

function keyWords(ks: Token[]): Uint32Array {
  const hl = new Uint32Array(ks.length * 2);
  ks.forEach((k, i) => {
    hl[2 * i] = k.hi;
    hl[2 * i + 1] = k.lo;
  });
  return hl;
}

async function withWorker<T>(buffer: SharedArrayBuffer, fn: (w: Worker) => Promise<T>): Promise<T> {
  const dir = await workerDir();
  const w = new Worker(pathToFileURL(join(dir, 'worker.js')), { workerData: { buffer } });
  const failed = new Promise<never>((_, reject) => {
    w.once('error', reject);
    w.once('exit', (code) => reject(new Error(`worker exited early with code ${code}`)));
  });
  try {
    return await Promise.race([fn(w), failed]);
  } finally {
    w.removeAllListeners('exit');
    await w.terminate();
  }
}

function request<T>(w: Worker, msg: unknown): Promise<T> {
  return new Promise<T>((resolve) => {
    w.once('message', (m: T) => resolve(m));
    w.postMessage(msg);
  });
}

describe('RingTable across worker threads', () => {
  it('a worker reading the shared buffer sees each republished layout', async () => {
    const t = RingTable.create();
    const A = ring('a', 5, 16, 3, 11);
    const B = ring('b', 9, 24, 5, 12);
    const probe = keys.slice(0, 500);
    const hl = keyWords(probe);
    await withWorker(t.buffer, async (w) => {
      for (const [v, [layout, self]] of ([[A, 2], [B, -1], [A, 4]] as const).entries()) {
        t.publish(layout, self, () => Liveness.Up);
        const res = await request<{ version: number; self: number; out: string[] }>(w, { type: 'lookup', hl });
        expect(res.version).toBe(v + 1);
        expect(res.self).toBe(self);
        expect(res.out).toEqual(probe.map((k) => encode(expected(layout, k))));
      }
    });
  });

  it('concurrent publishes never yield a torn lookup', async () => {
    const t = RingTable.create();
    // Disjoint node sets with different sizes, token counts and R, so a mix of halves is visible.
    const A = ring('a', 3, 16, 3, 21);
    const B = ring('z', 7, 40, 5, 22);
    const probe = [...keys.slice(0, 64), ...A.tokens.slice(0, 8), ...B.tokens.slice(0, 8)];
    const a = probe.map((k) => encode(expected(A, k)));
    const b = probe.map((k) => encode(expected(B, k)));
    expect(a.filter((x, i) => x === b[i])).toEqual([]);
    // Publish pattern A,B,B (period 3): with strict A/B alternation each half would always get the
    // same layout, and a torn read could never be observed.
    t.publish(A, 0, () => Liveness.Up);
    // [0] stop flag, [1] worker ready, [2]/[3] answers matching A/B so far.
    const stopBuf = new SharedArrayBuffer(16);
    const stop = new Int32Array(stopBuf);
    const res = await withWorker(t.buffer, async (w) => {
      const done = new Promise<{ lookups: number; bad: number; sawA: number; sawB: number; firstBad: unknown; versions: number }>((resolve) => w.once('message', resolve));
      w.postMessage({ type: 'stress', hl: keyWords(probe), a, b, stop: stopBuf });
      // Wait (bounded) until the worker is actually reading before hammering it.
      const readyBy = Date.now() + 10_000;
      while (Atomics.load(stop, 1) === 0 && Date.now() < readyBy) await new Promise((r) => setTimeout(r, 1));
      expect(Atomics.load(stop, 1)).toBe(1);
      // Publish in a loop, bounded by count and time (at least 400 ms, and until the reader has
      // seen both layouts a few times, at most 3 s); this loop blocks only the main thread.
      const start = Date.now();
      const enough = (): boolean => Atomics.load(stop, 2) >= 100 && Atomics.load(stop, 3) >= 100;
      let publishes = 0;
      for (let now = start; publishes < 200_000 && now - start < 3000 && (now - start < 400 || !enough()); now = Date.now()) {
        t.publish(publishes % 3 === 2 ? A : B, -1, () => Liveness.Up);
        publishes++;
      }
      Atomics.store(stop, 0, 1);
      const r = await done;
      console.log(`torn-read stress: ${publishes} publishes, ${r.lookups} worker lookups (A ${r.sawA}, B ${r.sawB}), ${r.versions} versions seen, ${r.bad} torn`);
      return r;
    });
    expect(res.firstBad).toBeNull();
    expect(res.bad).toBe(0);
    // The test only means something if the reader really overlapped both layouts.
    expect(res.sawA).toBeGreaterThan(0);
    expect(res.sawB).toBeGreaterThan(0);
    expect(res.versions).toBeGreaterThan(2);
  });
});

describe('RingTable.localRanges / rangesOfSelf', () => {
  /** Ranges computed straight from the layout: positions whose pref list holds `self`. */
  function expectedRanges(layout: RingLayout, self: number): Array<{ pos: number; start: Token; end: Token; replicas: number[] }> {
    const n = layout.tokens.length;
    const R = layout.replicas;
    const out = [];
    for (let pos = 0; pos < n; pos++) {
      const pref = [...layout.pref.subarray(pos * R, pos * R + R)];
      if (!pref.includes(self)) continue;
      out.push({ pos, start: layout.tokens[(pos + n - 1) % n]!, end: layout.tokens[pos]!, replicas: pref });
    }
    return out;
  }

  it('match the layout for every node, on the writer and on an attached reader', () => {
    const t = RingTable.create();
    const reader = RingTable.attach(t.buffer);
    for (const layout of [ring('a', 5, 16, 3, 31), ring('c', 12, 32, 5, 32)]) {
      for (let self = 0; self < layout.nodeIds.length; self++) {
        t.publish(layout, self, () => Liveness.Up);
        const exp = expectedRanges(layout, self);
        const all = reader.rangesOfSelf();
        expect(all.map((r) => ({ pos: r.pos, start: { hi: r.startHi, lo: r.startLo }, end: { hi: r.endHi, lo: r.endLo }, replicas: r.replicas }))).toEqual(exp);
        expect(t.rangesOfSelf()).toEqual(all);
        const mine = reader.localRanges();
        expect(mine.map((r) => r.pos)).toEqual(exp.map((e) => e.pos));
        // Every key this node replicates lies in one of its ranges, and only there.
        for (const k of keys.slice(0, 300)) {
          const pos = positionOf(layout, k);
          expect(mine.some((r) => r.pos === pos)).toBe(reader.isReplica(k.hi, k.lo));
        }
      }
    }
  });

  it('a 1-token ring is one whole-ring range (start == end); no self or an empty ring gives none', () => {
    const t = RingTable.create();
    expect(t.rangesOfSelf()).toEqual([]);
    const one = ring('solo', 1, 1, 3, 41);
    t.publish(one, 0, () => Liveness.Up);
    const r = t.localRanges();
    expect(r).toHaveLength(1);
    expect([r[0]!.startHi, r[0]!.startLo]).toEqual([r[0]!.endHi, r[0]!.endLo]);
    t.publish(one, -1, () => Liveness.Up);
    expect(t.localRanges()).toEqual([]);
  });
});
