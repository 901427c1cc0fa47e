/**
 * Redis as a BenchTarget (`ringkv bench --baseline redis`): the same driver and op stream as the
 * ringkv and RocksDB targets, through a Node Redis client, so the Redis ratio comes from the same
 * harness, the same client language and the same process as the ringkv figure (issue 12).
 *
 * Client: ioredis (chosen over node-redis: a small dependency set, no native code, and a plain
 * one-command-per-write mode, `enableAutoPipelining: false`, that matches redis-benchmark's
 * "50 connections, no pipelining" when each worker owns a connection).
 *
 * Connections: `connections` separate Redis connections; a call made with lane `i` goes to
 * connection `i mod connections` (the driver gives each closed-loop worker its own lane), so
 * `--concurrency 50 --connections 50` is one request in flight per connection, as redis-benchmark
 * -c 50 does. Single ops are SET / GET with binary values; a batch of puts is one MSET, a batch of
 * gets one MGET (what a batched client gets from Redis). Scans are not offered: Redis keeps no key
 * order (workload E refuses this target).
 *
 * Keys live under a per-run prefix, deleted again (SCAN + UNLINK) when the target closes; use a
 * throwaway server anyway (bench/compare.sh starts its own).
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { asBuffer } from '../util/bytes.js';
import { RingkvError } from '../util/errors.js';
import type { BenchTarget, OpResult, PutItem } from './target.js';

// ioredis is a devDependency loaded on demand (only `--baseline redis` needs it). Described here
// by the calls we make so no implicit `any` leaks into the harness.
interface RedisConn {
  connect(): Promise<void>;
  set(key: string, value: Buffer): Promise<unknown>;
  getBuffer(key: string): Promise<Buffer | null>;
  mset(...args: Array<string | Buffer>): Promise<unknown>;
  mgetBuffer(...keys: string[]): Promise<Array<Buffer | null>>;
  scan(cursor: string, ...args: Array<string | number>): Promise<[string, string[]]>;
  unlink(...keys: string[]): Promise<number>;
  info(section: string): Promise<string>;
  quit(): Promise<unknown>;
  disconnect(): void;
}
interface RedisCtor {
  new (url: string, options: Record<string, unknown>): RedisConn;
}

const requireCjs = createRequire(import.meta.url);

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
/** Keys deleted per UNLINK at close. */
const CLEANUP_KEYS_PER_CALL = 1000;

export interface RedisTargetOptions {
  url?: string;
  /** Separate connections (default 1); a call's lane picks one. */
  connections?: number;
  timeoutMs?: number;
  /** Name in reports (default 'redis'). */
  name?: string;
}

function errorKind(err: unknown): string {
  const e = err as { name?: unknown; message?: unknown } | null;
  if (e && typeof e.message === 'string') {
    const m = /^([A-Z]+) /.exec(e.message);
    if (m) return `redis:${m[1]!.toLowerCase()}`;
    if (/timed? ?out/i.test(e.message)) return 'timeout';
  }
  return 'redis-error';
}

/** Connect `connections` clients to `url`; fails with `unavailable` when the server does not answer. */
export async function openRedisTarget(opts: RedisTargetOptions = {}): Promise<BenchTarget & { readonly redisVersion: string; readonly aof: string }> {
  const url = opts.url ?? DEFAULT_REDIS_URL;
  const n = opts.connections ?? 1;
  if (!(Number.isInteger(n) && n >= 1)) throw new RingkvError('bad_request', `connections must be a positive integer, got ${n}`);
  let Redis: RedisCtor;
  try {
    const mod = requireCjs('ioredis') as { default?: RedisCtor } & RedisCtor;
    Redis = mod.default ?? mod;
  } catch (e) {
    throw new RingkvError('unavailable', `--baseline redis needs the ioredis package (a devDependency of ringkv: npm install): ${(e as Error).message}`);
  }
  const conns: RedisConn[] = [];
  const prefix = `rkb:${randomBytes(4).toString('hex')}:`;
  try {
    for (let i = 0; i < n; i++) {
      const c = new Redis(url, {
        lazyConnect: true,
        enableAutoPipelining: false,
        maxRetriesPerRequest: 0,
        enableOfflineQueue: false,
        connectTimeout: opts.timeoutMs ?? 5000,
        commandTimeout: opts.timeoutMs ?? 5000,
        retryStrategy: () => null,
      });
      conns.push(c);
      await c.connect();
    }
  } catch (e) {
    for (const c of conns) c.disconnect();
    throw new RingkvError('unavailable', `cannot reach redis at ${url}: ${(e as Error).message} (start one: see bench/README.md)`);
  }
  const info = await conns[0]!.info('server').catch(() => '');
  const persistence = await conns[0]!.info('persistence').catch(() => '');
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const aof = /aof_enabled:(\d)/.exec(persistence)?.[1] === '1' ? 'on' : 'off';
  const pick = (lane: number | undefined): RedisConn => conns[(lane ?? 0) % n]!;
  let closed = false;

  return {
    name: opts.name ?? 'redis',
    redisVersion,
    aof,
    async put(items: ReadonlyArray<PutItem>, lane?: number): Promise<OpResult[]> {
      const c = pick(lane);
      try {
        if (items.length === 1) await c.set(prefix + items[0]!.key, asBuffer(items[0]!.value));
        else {
          const args: Array<string | Buffer> = [];
          for (const it of items) args.push(prefix + it.key, asBuffer(it.value));
          await c.mset(...args);
        }
        return items.map(() => null);
      } catch (e) {
        const kind = errorKind(e);
        return items.map(() => kind);
      }
    },
    async get(keys: readonly string[], lane?: number): Promise<OpResult[]> {
      const c = pick(lane);
      try {
        // Absent keys answer nil: not an error, as for the other targets.
        if (keys.length === 1) await c.getBuffer(prefix + keys[0]!);
        else await c.mgetBuffer(...keys.map((k) => prefix + k));
        return keys.map(() => null);
      } catch (e) {
        const kind = errorKind(e);
        return keys.map(() => kind);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      // Remove this run's keys (bounded calls: SCAN pages, UNLINK per page).
      const c = conns[0]!;
      try {
        let cursor = '0';
        do {
          const [next, keys] = await c.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', CLEANUP_KEYS_PER_CALL);
          if (keys.length > 0) await c.unlink(...keys);
          cursor = next;
        } while (cursor !== '0');
      } catch {
        // Best effort: a throwaway server is what the README asks for.
      }
      await Promise.all(conns.map((x) => x.quit().catch(() => x.disconnect())));
    },
  };
}
