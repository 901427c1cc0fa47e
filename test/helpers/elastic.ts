/**
 * Helpers of the elasticity tests: W=2 writers that record what was acknowledged, reads of every
 * acknowledged key at R=2 through one node, and per-range Merkle root comparisons.
 */
import { RingkvClient } from '../../src/client/index.js';
import { compareTokens, tokenFromHex, tokenOf, type Token } from '../../src/ring/hash.js';
import { http, waitFor } from './proc.js';

export type Body = Record<string, unknown>;

/** Concurrent writers of fresh keys at W=2 through HTTP; `acked` holds every acknowledged key -> value. */
export class Writers {
  readonly acked = new Map<string, string>();
  failures = 0;
  private running = false;
  private loops: Array<Promise<void>> = [];
  private seq = 0;

  constructor(
    private readonly table: string,
    private readonly prefix: string,
  ) {}

  start(urls: () => string[], concurrency = 6): void {
    this.running = true;
    this.loops = Array.from({ length: concurrency }, async (_, w) => {
      while (this.running) {
        const key = `${this.prefix}-${w}-${this.seq++}`;
        const value = `v-${key}`;
        const targets = urls();
        const url = targets[Math.floor(Math.random() * targets.length)]!;
        try {
          const r = await http('PUT', `${url}/api/v1/store/${this.table}?w=2`, { key, value });
          if (r.status === 200) this.acked.set(key, JSON.stringify(value));
          else this.failures++;
        } catch {
          this.failures++;
        }
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/**
 * Read every key at R=2 through the node behind `socket` (not token-aware: that node coordinates
 * every read); returns the keys whose answer differs from `expected` (undefined = must be absent).
 */
export async function mismatchesAtR2(socket: string, table: string, expected: ReadonlyMap<string, string | undefined>): Promise<string[]> {
  const client = await RingkvClient.connect({ socket }, { tokenAware: false, timeoutMs: 10_000 });
  const bad: string[] = [];
  try {
    const keys = [...expected.keys()];
    const chunks: string[][] = [];
    for (let i = 0; i < keys.length; i += 500) chunks.push(keys.slice(i, i + 500));
    // A few batches in flight: the node coordinates them concurrently.
    const answers = await inParallel(chunks, 4, (chunk) => client.batch(chunk.map((key) => ({ op: 'get' as const, table, key, r: 2 }))));
    answers.forEach((res, c) => {
      const chunk = chunks[c]!;
      res.forEach((r, j) => {
        const key = chunk[j]!;
        const want = expected.get(key);
        if (!r.ok) return void bad.push(`${key}: ${r.code} ${r.message}`);
        const g = r as { found: boolean; value?: Uint8Array; siblings?: unknown[] };
        if (want === undefined) {
          if (g.found) bad.push(`${key}: deleted but found`);
        } else if (!g.found) bad.push(`${key}: missing`);
        else if (g.siblings !== undefined) bad.push(`${key}: siblings`);
        else if (Buffer.from(g.value!).toString() !== want) bad.push(`${key}: ${Buffer.from(g.value!).toString()} != ${want}`);
      });
    });
  } finally {
    await client.close();
  }
  return bad;
}

/** Map `items` through `f` with at most `width` calls outstanding; results in item order. */
async function inParallel<T, R>(items: readonly T[], width: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await f(items[i]!);
      }
    }),
  );
  return out;
}

export interface RangeRow {
  start: string;
  end: string;
  replicas: string[];
  root: string;
  ready: boolean;
}

/**
 * Every range's Merkle root on each of its first `n` replicas, once every node's trees are built:
 * the ranges whose replicas disagree (an empty list when all agree), and how many were compared.
 */
export async function rootDisagreements(urls: ReadonlyMap<string, string>, n: number): Promise<{ compared: number; differing: string[] }> {
  const byNode = new Map<string, Map<string, RangeRow>>();
  for (const [id, url] of urls) {
    const r = await http<{ ranges: RangeRow[] }>('GET', `${url}/api/v1/ranges`);
    if (r.status !== 200) throw new Error(`ranges of ${id}: ${r.status}`);
    if (!r.body.ranges.every((x) => x.ready)) throw new Error(`${id}: trees not built yet`);
    byNode.set(id, new Map(r.body.ranges.map((x) => [`${x.start}-${x.end}`, x])));
  }
  const differing: string[] = [];
  let compared = 0;
  const seen = new Set<string>();
  for (const rows of byNode.values()) {
    for (const [key, row] of rows) {
      if (seen.has(key)) continue;
      seen.add(key);
      const roots = row.replicas.slice(0, n).map((id) => byNode.get(id)?.get(key)?.root ?? `(${id}: no tree)`);
      compared++;
      if (new Set(roots).size !== 1) differing.push(`${key}: ${row.replicas.slice(0, n).map((id, i) => `${id}=${roots[i]}`).join(' ')}`);
    }
  }
  return { compared, differing };
}

/** Wait until no node holds hints (they are delivered, or dropped as obsolete). */
export async function hintsDrained(urls: Iterable<string>, timeoutMs = 60_000): Promise<void> {
  const list = [...urls];
  await waitFor(
    'every hint delivered',
    async () => {
      for (const u of list) {
        const c = await http<{ nodes: Array<{ id: string; hints: number }>; self: string }>('GET', `${u}/api/v1/cluster`);
        const me = c.body.nodes.find((x) => x.id === c.body.self);
        if (!me || me.hints !== 0) return false;
      }
      return true;
    },
    timeoutMs,
    200,
  );
}

export async function clusterBody(url: string): Promise<Body> {
  return (await http<Body>('GET', `${url}/api/v1/cluster`)).body;
}

/** Keys stored on the node (all shards, tombstones included). */
export async function storedKeys(url: string): Promise<number> {
  const b = await clusterBody(url);
  return (b['shards'] as Array<{ keys: number }>).reduce((a, s) => a + s.keys, 0);
}

/** The ring as the nodes report their ranges (union over nodes): (start, end] -> preference list. */
export async function ringRanges(urls: Iterable<string>): Promise<Array<{ start: Token; end: Token; replicas: string[] }>> {
  const seen = new Map<string, { start: Token; end: Token; replicas: string[] }>();
  for (const u of urls) {
    const r = await http<{ ranges: RangeRow[] }>('GET', `${u}/api/v1/ranges`);
    for (const x of r.body.ranges) seen.set(`${x.start}-${x.end}`, { start: tokenFromHex(x.start), end: tokenFromHex(x.end), replicas: x.replicas });
  }
  return [...seen.values()];
}

/** The first n replicas of a key (the hasher must be loaded: initHasher). */
export function replicasOfKey(ranges: ReadonlyArray<{ start: Token; end: Token; replicas: string[] }>, key: string, n: number): string[] {
  const t = tokenOf(key);
  for (const r of ranges) {
    const c = compareTokens(r.start, r.end);
    const inside = c === 0 || (c < 0 ? compareTokens(t, r.start) > 0 && compareTokens(t, r.end) <= 0 : compareTokens(t, r.start) > 0 || compareTokens(t, r.end) <= 0);
    if (inside) return r.replicas.slice(0, n);
  }
  throw new Error(`no range holds key ${key}`);
}

/** What a node's own replica holds for a key: a value, a tombstone (404 with a context), or nothing. */
export async function localReplica(url: string, table: string, key: string): Promise<'value' | 'tombstone' | 'absent'> {
  const r = await http<{ error?: unknown; context?: string }>('GET', `${url}/api/v1/store/${table}/${key}?replica=local`);
  if (r.status === 200) return 'value';
  if (r.status !== 404) throw new Error(`local read of ${key}: ${r.status}`);
  return r.body.context ? 'tombstone' : 'absent';
}
