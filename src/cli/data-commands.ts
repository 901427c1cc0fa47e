/**
 * Data commands of the CLI: `put`, `get`, `del` (one request, JSON on stdout) and `ingest` (bulk
 * load of NDJSON or CSV through the token-aware client, batched and pipelined).
 *
 * Exit status: 0 success; 1 any error (for ingest: any bad or failed row); 3 `get` of a missing key.
 * Errors go to stderr (as JSON for put/get/del) so stdout stays machine-readable.
 */
import { createReadStream, statSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { RingkvClient, type ClientBatchItem, type ConnectTarget, type ConsistencyLevel } from '../client/index.js';
import { readSecretFile, SECRET_ENV } from '../config/secret.js';
import { RingkvError } from '../util/errors.js';
import { MAX_TTL_SECONDS } from '../versions/index.js';
import { pooledRows } from './ingest-pool.js';
import { csvHeaderOf, csvRow, ndjsonRow, parseCsvRecord, type CsvHeader, type Row } from './ingest-rows.js';
import { clusterViewOf, isObject, NodeHttpError } from './node-http.js';

const LEVELS = ['ONE', 'TWO', 'QUORUM', 'ALL', 'ANY'];
export const EXIT_NOT_FOUND = 3;

export function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new InvalidArgumentError(`${name} must be an integer between ${min} and ${max}`);
    return Number(v);
  };
}

export interface ConnOpts {
  socket: string;
  host?: string;
  hosts?: string[];
  secret?: string;
  secretFile?: string;
  consistency?: string;
  w?: number;
  r?: number;
  timeout?: number;
}

export function addConnOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'IPC socket of the local node', './data/ringkv.sock')
    .option('--host <host:port>', "a node's HTTP address (as for `ringkv status`): the CLI asks it for its peer address and connects there")
    .option('--hosts <list>', 'peer-port addresses HOST:PORT,... instead of the socket', (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean))
    .option('--secret <secret>', 'cluster secret for --hosts (default: --secret-file, $RINGKV_SECRET, or the development secret of a node started without one)')
    .option('--secret-file <file>', 'read the cluster secret for --hosts from this file (e.g. DIR/secret of a local cluster)')
    .addOption(new Option('--consistency <level>', 'consistency level').choices([...LEVELS, ...LEVELS.map((l) => l.toLowerCase())]))
    .option('--timeout <ms>', 'request deadline in ms', intArg('--timeout', 1, 600_000));
}

/**
 * Where the client connects: `--hosts` (peer addresses), else `--host` (an HTTP address, resolved
 * to that node's peer address through GET /api/v1/cluster), else the IPC `--socket`.
 */
async function targetOf(o: ConnOpts): Promise<ConnectTarget> {
  const hosts = [...(o.hosts ?? [])];
  if (o.host !== undefined) hosts.push(await peerAddressOf(o.host, o.timeout ?? 5000));
  if (hosts.length > 0) {
    const secret = o.secret ?? (o.secretFile !== undefined ? secretFrom(o.secretFile) : undefined) ?? process.env[SECRET_ENV];
    return secret !== undefined ? { hosts, secret } : { hosts };
  }
  return { socket: o.socket };
}

function secretFrom(file: string): string {
  try {
    return readSecretFile(file);
  } catch (e) {
    throw new RingkvError('bad_request', (e as Error).message, { field: 'secretFile' });
  }
}

/** The peer address a node advertises, asked of its HTTP API. */
export async function peerAddressOf(httpHost: string, timeoutMs: number): Promise<string> {
  let body: Record<string, unknown>;
  try {
    body = await clusterViewOf(httpHost, timeoutMs);
  } catch (e) {
    if (!(e instanceof NodeHttpError)) throw e;
    throw new RingkvError('unavailable', `${e.message} (--host is the node's HTTP address)`);
  }
  const self = (body['nodes'] as unknown[]).find((n) => isObject(n) && n['id'] === body['self']) as Record<string, unknown> | undefined;
  if (!self || typeof self['peer'] !== 'string' || self['peer'] === '') throw new RingkvError('internal', `node at ${httpHost} did not report its peer address`);
  return self['peer'];
}

export function levelOf(o: ConnOpts): ConsistencyLevel | undefined {
  return o.consistency === undefined ? undefined : (o.consistency.toUpperCase() as ConsistencyLevel);
}

export function defined<T extends Record<string, unknown>>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}

/** Value bytes as printed: the UTF-8 text when they are valid UTF-8, else `{ "$base64": ... }` (same as the HTTP API). */
export function displayValue(b: Uint8Array): unknown {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(b);
  } catch {
    return { $base64: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') };
  }
}

export function fail(e: unknown): void {
  const err = e instanceof RingkvError ? e : new RingkvError('internal', e instanceof Error ? e.message : String(e));
  process.stderr.write(`${JSON.stringify({ error: err.toJSON() })}\n`);
  process.exitCode = 1;
}

export async function withClient(o: ConnOpts, fn: (c: RingkvClient) => Promise<void>): Promise<void> {
  let client: RingkvClient | undefined;
  try {
    client = await RingkvClient.connect(await targetOf(o), o.timeout !== undefined ? { timeoutMs: o.timeout + 1000 } : {});
    await fn(client);
  } catch (e) {
    fail(e);
  } finally {
    await client?.close();
  }
}

export function registerDataCommands(program: Command): void {
  addConnOptions(
    program
      .command('put')
      .description('write VALUE (stored as its UTF-8 bytes) under KEY; prints the new context as JSON')
      .argument('<table>')
      .argument('<key>')
      .argument('<value>')
      .option('--context <ctx>', 'context from a previous get (supersedes what that read saw)')
      .option('--w <n>', 'acks required', intArg('--w', 1, 5))
      .option('--ttl <seconds>', 'the value expires after this many seconds', intArg('--ttl', 1, MAX_TTL_SECONDS)),
  ).action(async (table: string, key: string, value: string, o: ConnOpts & { context?: string; ttl?: number }) => {
    await withClient(o, async (c) => {
      const res = await c.put(table, key, value, defined({ context: o.context, w: o.w, consistency: levelOf(o), timeoutMs: o.timeout, ttl: o.ttl }));
      process.stdout.write(`${JSON.stringify({ table, key, context: res.context, consistency: res.consistency })}\n`);
    });
  });

  addConnOptions(
    program
      .command('get')
      .description(`read KEY; prints {found, value | siblings, context} as JSON (exit status ${EXIT_NOT_FOUND} when not found)`)
      .argument('<table>')
      .argument('<key>')
      .option('--r <n>', 'replies required', intArg('--r', 1, 5)),
  ).action(async (table: string, key: string, o: ConnOpts) => {
    await withClient(o, async (c) => {
      const res = await c.get(table, key, defined({ r: o.r, consistency: levelOf(o), timeoutMs: o.timeout }));
      const out: Record<string, unknown> = { table, key, found: res.found };
      if (res.value) out['value'] = displayValue(res.value);
      if (res.siblings) out['siblings'] = res.siblings.map(displayValue);
      out['context'] = res.context;
      out['consistency'] = res.consistency;
      process.stdout.write(`${JSON.stringify(out)}\n`);
      if (!res.found) process.exitCode = EXIT_NOT_FOUND;
    });
  });

  addConnOptions(
    program
      .command('del')
      .description('delete KEY (writes a tombstone); prints the new context as JSON')
      .argument('<table>')
      .argument('<key>')
      .option('--context <ctx>', 'context from a previous get')
      .option('--w <n>', 'acks required', intArg('--w', 1, 5)),
  ).action(async (table: string, key: string, o: ConnOpts & { context?: string }) => {
    await withClient(o, async (c) => {
      const res = await c.delete(table, key, defined({ context: o.context, w: o.w, consistency: levelOf(o), timeoutMs: o.timeout }));
      process.stdout.write(`${JSON.stringify({ table, key, deleted: true, context: res.context, consistency: res.consistency })}\n`);
    });
  });

  addConnOptions(
    program
      .command('ingest')
      .description(
        'bulk-load FILE (NDJSON lines {"key":..., "value":...}, or CSV with a key,value header; "-" = stdin) into TABLE. ' +
          'String values are stored as their UTF-8 bytes, {"$base64": "..."} as the decoded bytes, other JSON values as JSON text. ' +
          'Bad rows are reported with their line number; the exit status is 1 if any row failed.',
      )
      .argument('<table>')
      .argument('<file>')
      .addOption(new Option('--format <fmt>', 'input format (default: from the extension, .csv = csv, else ndjson)').choices(['ndjson', 'csv']))
      .option('--batch <n>', 'rows per batch', intArg('--batch', 1, 100_000), 500)
      .option('--concurrency <n>', 'batches in flight', intArg('--concurrency', 1, 1024), 8)
      .addOption(new Option('--on-error <mode>', 'skip bad rows or stop at the first').choices(['skip', 'stop']).default('skip'))
      .option('--w <n>', 'acks required per row', intArg('--w', 1, 5))
      .option('--progress-every <s>', 'seconds between progress lines when stderr is not a TTY', intArg('--progress-every', 1, 3600), 5)
      .option('--threads <k>', 'parse and encode rows in a pool of K threads (1..16; default 1: on the main thread)', intArg('--threads', 1, 16), 1),
  ).action(async (table: string, file: string, o: ConnOpts & { format?: 'ndjson' | 'csv'; batch: number; concurrency: number; onError: 'skip' | 'stop'; progressEvery: number; threads: number }) => {
    await withClient(o, async (c) => {
      const summary = await runIngest({
        client: c,
        table,
        file,
        format: o.format ?? (/\.csv$/i.test(file) ? 'csv' : 'ndjson'),
        batchSize: o.batch,
        concurrency: o.concurrency,
        onError: o.onError,
        writeOptions: defined({ w: o.w, consistency: levelOf(o), timeoutMs: o.timeout }),
        progress: process.stderr.isTTY ? 'bar' : 'lines',
        progressEveryMs: o.progressEvery * 1000,
        threads: o.threads,
        err: (s) => process.stderr.write(s),
      });
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      if (summary.errors > 0 || summary.stopped) process.exitCode = 1;
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Ingest

export interface IngestOptions {
  client: Pick<RingkvClient, 'batch'>;
  table: string;
  /** Path, or '-' for stdin. */
  file: string;
  format: 'ndjson' | 'csv';
  batchSize: number;
  concurrency: number;
  onError: 'skip' | 'stop';
  writeOptions?: { w?: number; consistency?: ConsistencyLevel; timeoutMs?: number };
  /** 'bar': redrawn TTY progress bar; 'lines': a plain line every progressEveryMs; 'none'. */
  progress: 'bar' | 'lines' | 'none';
  progressEveryMs?: number;
  /** Where progress and row errors go (stderr in the CLI). */
  err: (s: string) => void;
  /** Longest accepted line (or CSV record) in bytes (default 64 MiB); longer ones are row errors. */
  maxLineBytes?: number;
  /** Parse threads (a piscina pool, ingest-pool.ts); 1 (default): parse on this thread. */
  threads?: number;
}

export interface IngestSummary {
  table: string;
  file: string;
  /** Data rows read (header and blank lines excluded). */
  rows: number;
  written: number;
  errors: number;
  /** True when --on-error stop ended the run early. */
  stopped: boolean;
  seconds: number;
  rowsPerSec: number;
}

/**
 * Splits a byte stream into lines with their 1-based numbers, and tracks bytes consumed for the
 * progress fraction. A line longer than `maxBytes` is reported (as `tooLong`) and skipped up to its
 * newline without being buffered, so memory stays bounded whatever the input.
 */
async function* lines(stream: AsyncIterable<Buffer>, maxBytes: number, onBytes: (n: number) => void): AsyncGenerator<{ line: number; text: string; tooLong: boolean }> {
  const dec = new StringDecoder('utf8');
  let partial = '';
  let partialBytes = 0;
  let lineNo = 0;
  let skipping = false;
  for await (const chunk of stream) {
    onBytes(chunk.length);
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const piece = nl < 0 ? chunk.subarray(start) : chunk.subarray(start, nl);
      if (!skipping) {
        if (partialBytes + piece.length > maxBytes) {
          skipping = true;
          partial = '';
          partialBytes = 0;
          dec.end();
        } else {
          partial += dec.write(piece);
          partialBytes += piece.length;
        }
      }
      if (nl < 0) break;
      lineNo++;
      if (skipping) {
        yield { line: lineNo, text: '', tooLong: true };
        skipping = false;
      } else {
        partial += dec.end();
        yield { line: lineNo, text: partial.endsWith('\r') ? partial.slice(0, -1) : partial, tooLong: false };
      }
      partial = '';
      partialBytes = 0;
      start = nl + 1;
    }
  }
  if (skipping) yield { line: lineNo + 1, text: '', tooLong: true };
  else {
    partial += dec.end();
    if (partial.length > 0) yield { line: lineNo + 1, text: partial.endsWith('\r') ? partial.slice(0, -1) : partial, tooLong: false };
  }
}

async function* ndjsonRows(src: AsyncIterable<{ line: number; text: string; tooLong: boolean }>, maxBytes: number): AsyncGenerator<Row> {
  let first = true;
  for await (const l of src) {
    let text = l.text;
    if (first && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    first = false;
    if (l.tooLong) {
      yield { line: l.line, error: `line is longer than ${maxBytes} bytes` };
      continue;
    }
    const row = ndjsonRow(l.line, text);
    if (row) yield row;
  }
}

async function* csvRows(src: AsyncIterable<{ line: number; text: string; tooLong: boolean }>, maxBytes: number): AsyncGenerator<Row | { fatal: string }> {
  let header: CsvHeader | undefined;
  let pending: { line: number; text: string } | undefined;
  for await (const l of src) {
    if (l.tooLong) {
      yield { line: pending?.line ?? l.line, error: `record is longer than ${maxBytes} bytes` };
      pending = undefined;
      continue;
    }
    let text = l.text;
    let startLine = l.line;
    if (pending) {
      text = `${pending.text}\n${text}`;
      startLine = pending.line;
      if (Buffer.byteLength(text) > maxBytes) {
        yield { line: startLine, error: `record is longer than ${maxBytes} bytes` };
        pending = undefined;
        continue;
      }
    }
    if (!header && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    const fields = parseCsvRecord(text);
    if (fields === null) {
      pending = { line: startLine, text };
      continue;
    }
    pending = undefined;
    if (!header) {
      const h = csvHeaderOf(fields, startLine);
      if ('fatal' in h) {
        yield h;
        return;
      }
      header = h;
      continue;
    }
    const row = csvRow(startLine, fields, header);
    if (row) yield row;
  }
  if (pending) yield { line: pending.line, error: 'unterminated quoted field at end of input' };
  if (!header) yield { fatal: 'the input is empty: expected a CSV header line with "key" and "value" columns' };
}

function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '--:--';
  const t = Math.round(s);
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  const sec = t % 60;
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}` : `${m}:${String(sec).padStart(2, '0')}`;
}

/**
 * The ingest pipeline: parse rows, group them into batches of `batchSize`, keep up to
 * `concurrency` batches in flight (reading pauses while that many are outstanding, so memory is
 * bounded by concurrency x batchSize rows), and report every bad or failed row by line number.
 */
export async function runIngest(opts: IngestOptions): Promise<IngestSummary> {
  const maxLine = opts.maxLineBytes ?? 64 * 1024 * 1024;
  const started = Date.now();
  let totalBytes = 0;
  if (opts.file !== '-') {
    try {
      totalBytes = statSync(opts.file).size;
    } catch (e) {
      throw new RingkvError('bad_request', `cannot read ${opts.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  const stream: AsyncIterable<Buffer> = opts.file === '-' ? (process.stdin as AsyncIterable<Buffer>) : createReadStream(opts.file);
  let bytesRead = 0;
  let rows = 0;
  let written = 0;
  let errors = 0;
  let stopped = false;
  let fatal: string | undefined;

  // Progress rendering (timer-driven so a slow cluster still shows a moving rate).
  let barShown = false;
  const render = (final: boolean): void => {
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    const rate = written / secs;
    const frac = totalBytes > 0 ? Math.min(bytesRead / totalBytes, 1) : undefined;
    const eta = frac !== undefined && frac > 0 ? (secs / frac) * (1 - frac) : NaN;
    if (opts.progress === 'bar') {
      const width = 30;
      const filled = frac !== undefined ? Math.round(frac * width) : 0;
      const bar = frac !== undefined ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(1).padStart(5)}%` : '[streaming]';
      opts.err(`\r\x1b[K${bar}  ${written.toLocaleString()} rows  ${Math.round(rate).toLocaleString()} rows/s  ETA ${fmtDuration(eta)}  errors ${errors}${final ? '\n' : ''}`);
      barShown = !final;
    } else if (opts.progress === 'lines') {
      const pct = frac !== undefined ? ` ${(frac * 100).toFixed(1)}%` : '';
      opts.err(`progress:${pct} rows=${rows} written=${written} errors=${errors} rate=${Math.round(rate)} rows/s eta=${fmtDuration(eta)}\n`);
    }
  };
  const report = (line: number, msg: string): void => {
    errors++;
    // Clear the bar first so error lines are not glued to it.
    opts.err(`${barShown ? '\r\x1b[K' : ''}line ${line}: ${msg}\n`);
    barShown = false;
    if (opts.onError === 'stop') stopped = true;
  };
  const every = opts.progress === 'bar' ? 200 : (opts.progressEveryMs ?? 5000);
  const timer = opts.progress === 'none' ? undefined : setInterval(() => render(false), every);
  timer?.unref();

  const inflight = new Set<Promise<void>>();
  const send = (batch: Row[]): void => {
    const items: ClientBatchItem[] = batch.map((r) => ({ op: 'put', table: opts.table, key: r.key!, value: r.value!, ...(opts.writeOptions ?? {}) }));
    const p: Promise<void> = opts.client.batch(items).then(
      (results) => {
        results.forEach((res, i) => {
          if (res.ok) written++;
          else report(batch[i]!.line, `${res.code}: ${res.message}`);
        });
      },
      (e: unknown) => {
        for (const r of batch) report(r.line, `${e instanceof RingkvError ? e.code : 'internal'}: ${(e as Error).message}`);
      },
    );
    const tracked = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
  };

  const src = lines(stream, maxLine, (n) => (bytesRead += n));
  const parsed: AsyncIterable<Row | { fatal: string }> =
    (opts.threads ?? 1) > 1 ? pooledRows(src, opts.format, maxLine, opts.threads!) : opts.format === 'csv' ? csvRows(src, maxLine) : ndjsonRows(src, maxLine);
  let batch: Row[] = [];
  try {
    for await (const r of parsed) {
      if ('fatal' in r) {
        fatal = r.fatal;
        break;
      }
      rows++;
      if (r.error !== undefined) report(r.line, r.error);
      else batch.push(r);
      if (stopped) break;
      if (batch.length >= opts.batchSize) {
        send(batch);
        batch = [];
        // Backpressure: stop reading while `concurrency` batches are outstanding.
        while (inflight.size >= opts.concurrency) await Promise.race(inflight);
        if (stopped) break;
      }
    }
    if (!stopped && !fatal && batch.length > 0) send(batch);
    else if (stopped && batch.length > 0) {
      // Say so rather than drop them quietly: these parsed fine but were never sent.
      opts.err(`${barShown ? '\r\x1b[K' : ''}stopping: ${batch.length} valid rows read before the error (lines ${batch[0]!.line}-${batch[batch.length - 1]!.line}) were not written\n`);
      barShown = false;
    }
    await Promise.all(inflight);
  } finally {
    if (timer) clearInterval(timer);
    if (stream !== process.stdin) (stream as { destroy?: () => void }).destroy?.();
  }
  if (opts.progress !== 'none') render(true);
  if (fatal !== undefined) throw new RingkvError('bad_request', fatal);
  const seconds = (Date.now() - started) / 1000;
  return { table: opts.table, file: opts.file, rows, written, errors, stopped, seconds, rowsPerSec: Math.round(written / Math.max(seconds, 0.001)) };
}
