/**
 * Deterministic inputs shared by the suites: keys, ring layouts, versions.
 */
import { allocateTokens } from '../../src/ring/tokens.js';
import { buildRing, type RingLayout } from '../../src/ring/builder.js';
import type { Token } from '../../src/ring/hash.js';

/** Small, fast, seeded PRNG (mulberry32) so every run builds the same rings and keys. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `count` distinct keys shaped like "user:00012345" (13 bytes), as the router sees them (bytes). */
export function makeKeys(count: number, prefix = 'user:', seed = 42): Buffer[] {
  const rand = seededRandom(seed);
  const keys: Buffer[] = [];
  const seen = new Set<number>();
  while (keys.length < count) {
    const n = Math.floor(rand() * 1e8);
    if (seen.has(n)) continue;
    seen.add(n);
    keys.push(Buffer.from(prefix + String(n).padStart(8, '0'), 'utf8'));
  }
  return keys;
}

/**
 * A ring of `nodes` members joined one by one with allocateTokens (as real joins do), `vnodes`
 * tokens each, R = 3.
 */
export function makeLayout(nodes: number, vnodes: number, seed = 7): RingLayout {
  const rand = seededRandom(seed);
  const existing: Token[][] = [];
  for (let i = 0; i < nodes; i++) existing.push(allocateTokens(existing, vnodes, rand));
  return buildRing(
    existing.map((tokens, i) => ({ id: `node-${String(i).padStart(4, '0')}`, tokens, status: 'normal' as const })),
    { maxReplicas: 3 },
  );
}

/** A value of `n` pseudo-random bytes (incompressible, like an opaque client payload). */
export function makeValue(n: number, seed = 3): Uint8Array {
  const rand = seededRandom(seed);
  const v = new Uint8Array(n);
  for (let i = 0; i < n; i++) v[i] = Math.floor(rand() * 256);
  return v;
}
