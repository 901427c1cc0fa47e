/**
 * ringkv as a BenchTarget: over the token-aware client (IPC socket or peer port), or over the
 * HTTP API with `fetch`, so the same driver and op stream that run against the RocksDB baseline
 * can run against a node or a cluster.
 *
 * Error kinds are the server's (or client's) error codes: 'timeout', 'unavailable',
 * 'overloaded', 'too_large', 'bad_request', … A read of an absent key is not an error.
 */
import { RingkvClient, type BatchItemResult, type ClientBatchItem, type ConsistencyLevel } from '../client/index.js';
import { validateTableName } from '../router/tables.js';
import { RingkvError } from '../util/errors.js';
import type { BenchTarget, OpResult, PutItem } from './target.js';

/** Consistency applied to every op: a level, or explicit W (writes) / R (reads). */
export interface BenchConsistency {
  consistency?: ConsistencyLevel;
  w?: number;
  r?: number;
}

export interface RingkvTargetOptions extends BenchConsistency {
  /** The local node's IPC socket. Exactly one of `socket` / `hosts`. */
  socket?: string;
  /** Peer-port addresses HOST:PORT of one or more nodes. */
  hosts?: string[];
  /** Cluster secret for `hosts` (default: the development secret). */
  secret?: string;
  table: string;
  /** Per-request deadline in ms, enforced by the server (and by the client a little later). */
  timeoutMs: number;
  /** Connections per node (default 1): that many independent clients, a call's lane picks one. */
  connections?: number;
  /** Name in reports (default 'ringkv'). */
  name?: string;
}

export interface RingkvBenchTarget extends BenchTarget {
  /** The underlying client (e.g. to read the ring), closed by `close()`. */
  readonly client: RingkvClient;
}

function itemKind(r: BatchItemResult | undefined): OpResult {
  if (r === undefined) return 'bad-response';
  return r.ok ? null : r.code;
}

function thrownKind(e: unknown): string {
  return e instanceof RingkvError ? e.code : 'exception';
}

const okOne = (): OpResult[] => [null];
const failOne = (e: unknown): OpResult[] => [thrownKind(e)];

/**
 * Connect to ringkv through `RingkvClient`. `put(items)` is one client `batch` of puts (a batch
 * of one is a single put; the client splits it per replica and per frame), `get(keys)` likewise.
 */
export async function openRingkvTarget(opts: RingkvTargetOptions): Promise<RingkvBenchTarget> {
  const table = validateTableName(opts.table);
  const hasSocket = opts.socket !== undefined;
  const hasHosts = opts.hosts !== undefined;
  if (hasSocket === hasHosts) throw new RingkvError('bad_request', 'give exactly one of socket or hosts');
  if (!(Number.isInteger(opts.timeoutMs) && opts.timeoutMs >= 1)) throw new RingkvError('bad_request', `timeoutMs must be a positive integer, got ${opts.timeoutMs}`);
  const connections = opts.connections ?? 1;
  if (!(Number.isInteger(connections) && connections >= 1)) throw new RingkvError('bad_request', `connections must be a positive integer, got ${connections}`);
  const target = hasSocket
    ? { socket: opts.socket as string }
    : opts.secret !== undefined
      ? { hosts: opts.hosts as string[], secret: opts.secret }
      : { hosts: opts.hosts as string[] };
  // One client per connection, so a lane (a closed-loop worker) owns its connection and its
  // single calls coalesce only with its own (none, one call in flight): `--connections C
  // --concurrency C` then offers what C independent application connections would.
  const clients: RingkvClient[] = [];
  try {
    for (let i = 0; i < connections; i++) {
      clients.push(
        await RingkvClient.connect(target, {
          // The server gets `timeoutMs` as its deadline; the client waits a little longer (see batch).
          timeoutMs: opts.timeoutMs + 1000,
          connectionsPerNode: 1,
        }),
      );
    }
  } catch (e) {
    await Promise.all(clients.map((c) => c.close()));
    throw e;
  }
  const client = clients[0]!;
  const pick = (lane: number | undefined): RingkvClient => (connections === 1 ? client : clients[(lane ?? 0) % connections]!);

  const putOpts: { consistency?: ConsistencyLevel; w?: number } = {};
  const getOpts: { consistency?: ConsistencyLevel; r?: number } = {};
  if (opts.consistency !== undefined) {
    putOpts.consistency = opts.consistency;
    // ANY is a write-only level; reads then use the table's default.
    if (opts.consistency !== 'ANY') getOpts.consistency = opts.consistency;
  }
  if (opts.w !== undefined) putOpts.w = opts.w;
  if (opts.r !== undefined) getOpts.r = opts.r;
  const batchOpts = { timeoutMs: opts.timeoutMs };
  // Merged once, not spread per op: the generator's own CPU shares the cores with the node.
  const putCallOpts = { ...putOpts, ...batchOpts };
  const getCallOpts = { ...getOpts, ...batchOpts };
  let closed = false;

  const run = async (items: ClientBatchItem[], lane: number | undefined): Promise<OpResult[]> => {
    try {
      const res = await pick(lane).batch(items, batchOpts);
      const out = new Array<OpResult>(items.length);
      for (let i = 0; i < items.length; i++) out[i] = itemKind(res[i]);
      return out;
    } catch (e) {
      const kind = thrownKind(e);
      return items.map(() => kind);
    }
  };

  return {
    name: opts.name ?? 'ringkv',
    client,
    // One key: a single client call, which the client coalesces with the other calls of the same
    // tick into batch frames (what an application issuing concurrent single calls gets).
    put(items: ReadonlyArray<PutItem>, lane?: number): Promise<OpResult[]> {
      if (items.length === 1) return pick(lane).put(table, items[0]!.key, items[0]!.value, putCallOpts).then(okOne, failOne);
      return run(
        items.map((it) => ({ op: 'put', table, key: it.key, value: it.value, consistency: putOpts.consistency, w: putOpts.w })),
        lane,
      );
    },
    get(keys: readonly string[], lane?: number): Promise<OpResult[]> {
      if (keys.length === 1) return pick(lane).get(table, keys[0]!, getCallOpts).then(okOne, failOne);
      return run(
        keys.map((key) => ({ op: 'get', table, key, consistency: getOpts.consistency, r: getOpts.r })),
        lane,
      );
    },
    // YCSB's Cassandra binding: token(key) >= token(start) LIMIT count (token order, not key order).
    scan(startKey: string, count: number): Promise<OpResult> {
      return client.scan(table, startKey, count, getCallOpts).then(
        () => null,
        (e: unknown) => thrownKind(e),
      );
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

// --- HTTP ------------------------------------------------------------------------------

export interface HttpTargetOptions extends BenchConsistency {
  /** Base URL of a node's HTTP API, e.g. http://127.0.0.1:7070. */
  url: string;
  table: string;
  /** Per-request deadline in ms (client side; the request is aborted after it). */
  timeoutMs: number;
  /** Name in reports (default 'ringkv-http'). */
  name?: string;
}

/** Normalise `host:port` or a URL to an origin-like base without a trailing slash. */
export function httpBaseUrl(url: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? url : `http://${url}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    throw new RingkvError('bad_request', `not a valid URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new RingkvError('bad_request', `URL must be http(s), got ${JSON.stringify(url)}`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}`;
}

function fetchErrorKind(e: unknown): string {
  const name = (e as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError' || name === 'AbortError') return 'timeout';
  // undici: TypeError('fetch failed') with the socket error as cause.
  return 'unavailable';
}

async function responseKind(res: Response, missingIsOk: boolean): Promise<OpResult> {
  // Always consume the body so the keep-alive connection is reused.
  const text = await res.text();
  if (res.ok) return null;
  let code: unknown;
  try {
    code = (JSON.parse(text) as { error?: { code?: unknown } }).error?.code;
  } catch {
    code = undefined;
  }
  if (missingIsOk && res.status === 404 && code === 'not_found') return null;
  return typeof code === 'string' ? code : `http-${res.status}`;
}

/**
 * ringkv over its HTTP API: one request per op, a batch is that many parallel requests. Values
 * go as base64 JSON strings (the HTTP API stores JSON text), so a stored value is ~4/3 of
 * `valueSize` plus 2 bytes.
 */
export async function openHttpTarget(opts: HttpTargetOptions): Promise<BenchTarget> {
  const table = validateTableName(opts.table);
  const base = httpBaseUrl(opts.url);
  if (!(Number.isInteger(opts.timeoutMs) && opts.timeoutMs >= 1)) throw new RingkvError('bad_request', `timeoutMs must be a positive integer, got ${opts.timeoutMs}`);
  try {
    const h = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(Math.min(opts.timeoutMs, 5000)) });
    await h.text();
    if (!h.ok) throw new Error(`HTTP ${h.status}`);
  } catch (e) {
    throw new RingkvError('unavailable', `cannot reach ringkv at ${base}/healthz: ${(e as Error).message} (is the node running?)`);
  }

  const wq = new URLSearchParams();
  const rq = new URLSearchParams();
  if (opts.consistency !== undefined) {
    wq.set('consistency', opts.consistency);
    if (opts.consistency !== 'ANY') rq.set('consistency', opts.consistency);
  }
  if (opts.w !== undefined) wq.set('w', String(opts.w));
  if (opts.r !== undefined) rq.set('r', String(opts.r));
  const putUrl = `${base}/api/v1/store/${table}${wq.size ? `?${wq.toString()}` : ''}`;
  const getSuffix = rq.size ? `?${rq.toString()}` : '';
  const getBase = `${base}/api/v1/store/${table}/`;
  const scanBase = `${base}/api/v1/store/${table}?${rq.size ? `${rq.toString()}&` : ''}`;
  // The driver reuses a small pool of value buffers; encode each once.
  const b64 = new WeakMap<Uint8Array, string>();
  const encode = (v: Uint8Array): string => {
    let s = b64.get(v);
    if (s === undefined) {
      s = Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
      b64.set(v, s);
    }
    return s;
  };

  const putOne = async (it: PutItem): Promise<OpResult> => {
    try {
      const res = await fetch(putUrl, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: `{"key":${JSON.stringify(it.key)},"value":"${encode(it.value)}"}`,
        signal: AbortSignal.timeout(opts.timeoutMs),
      });
      return await responseKind(res, false);
    } catch (e) {
      return fetchErrorKind(e);
    }
  };
  const getOne = async (key: string): Promise<OpResult> => {
    try {
      const res = await fetch(`${getBase}${encodeURIComponent(key)}${getSuffix}`, { signal: AbortSignal.timeout(opts.timeoutMs) });
      return await responseKind(res, true);
    } catch (e) {
      return fetchErrorKind(e);
    }
  };

  const scanOne = async (startKey: string, count: number): Promise<OpResult> => {
    try {
      const res = await fetch(`${scanBase}start=${encodeURIComponent(startKey)}&limit=${count}`, { signal: AbortSignal.timeout(opts.timeoutMs) });
      return await responseKind(res, false);
    } catch (e) {
      return fetchErrorKind(e);
    }
  };

  return {
    name: opts.name ?? 'ringkv-http',
    put: (items) => Promise.all(items.map(putOne)),
    get: (keys) => Promise.all(keys.map(getOne)),
    scan: scanOne,
    async close(): Promise<void> {
      // fetch's pooled keep-alive sockets don't hold the process open.
    },
  };
}
