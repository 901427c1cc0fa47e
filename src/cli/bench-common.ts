/**
 * What the `ringkv bench` workloads (src/cli/bench.ts, bench-ts.ts) share: flag parsing (numbers
 * with `_`, exponents and k/m suffixes, bounds named in the message, the usage error with exit
 * status 2), the report/progress sinks, and the baseline's temporary RocksDB directory.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A flag problem: reported as `ringkv bench: <message>` with exit status 2. */
export class BenchUsageError extends Error {
  override readonly name = 'BenchUsageError';
}

/** Where a benchmark writes its report (stdout) and progress (stderr). */
export interface BenchIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Redraw the progress line in place (stderr is a terminal). */
  tty: boolean;
  signal?: AbortSignal;
}

export function str(raw: Record<string, unknown>, key: string): string | undefined {
  const v = raw[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new BenchUsageError(`--${flagName(key)} needs a value`);
  return v;
}

export function flagName(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** A number with optional `_` separators, an exponent or a k/m suffix (10_000, 1e4, 10k, 1.5m). */
function parseNumber(flag: string, v: string): number {
  const m = /^((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([kKmM]?)$/.exec(v.replace(/_/g, ''));
  if (!m) throw new BenchUsageError(`${flag} must be a number, got ${JSON.stringify(v)}`);
  const mult = m[2] === '' ? 1 : m[2]!.toLowerCase() === 'k' ? 1e3 : 1e6;
  return Number(m[1]) * mult;
}

export function intFlag(raw: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = str(raw, key);
  if (v === undefined) return undefined;
  const flag = `--${flagName(key)}`;
  const n = parseNumber(flag, v);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new BenchUsageError(`${flag} must be an integer between ${min.toLocaleString('en-US')} and ${max.toLocaleString('en-US')}, got ${JSON.stringify(v)}`);
  }
  return n;
}

export function posFlag(raw: Record<string, unknown>, key: string, opts: { max?: number; allowZero?: boolean } = {}): number | undefined {
  const v = str(raw, key);
  if (v === undefined) return undefined;
  const flag = `--${flagName(key)}`;
  const n = parseNumber(flag, v);
  const max = opts.max ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isFinite(n) || (opts.allowZero ? n < 0 : n <= 0) || n > max) {
    throw new BenchUsageError(`${flag} must be a number ${opts.allowZero ? '≥ 0' : '> 0'}${opts.max !== undefined ? ` and ≤ ${max}` : ''}, got ${JSON.stringify(v)}`);
  }
  return n;
}


/**
 * Run `fn` against a target opened in a fresh temporary directory under `parent` (default: the OS
 * temp dir), then close the target and remove the directory, whatever happens.
 */
export async function withTempTarget<T extends { close(): Promise<void> }, R>(parent: string | undefined, prefix: string, open: (dir: string) => Promise<T>, fn: (t: T) => Promise<R>): Promise<R> {
  const base = parent ?? tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(path.join(base, prefix));
  try {
    const t = await open(dir);
    try {
      return await fn(t);
    } finally {
      await t.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
