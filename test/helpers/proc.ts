import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE_PROCESS_FLAGS } from '../../src/cli/process-flags.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'bin', 'ringkv.js');

export function tempDir(prefix = 'ringkv-test-'): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/** Removes a test directory; with RINGKV_KEEP_TEST_DIRS=1 it is kept (node logs) and named instead. */
export function removeDir(dir: string): void {
  if (process.env['RINGKV_KEEP_TEST_DIRS']) {
    console.log(`kept test directory ${dir}`);
    return;
  }
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A port base B such that B+1..B+k are free on 127.0.0.1 (checked by binding them). Drawn below
 * Linux's ephemeral range (32768-60999): there, an outgoing connection of some other test's node can
 * take the port between this check and the node's own bind.
 */
export async function freePortBase(k: number): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 10_000 + Math.floor(Math.random() * 22_000);
    let ok = true;
    for (let i = 1; i <= k && ok; i++) {
      ok = await new Promise<boolean>((resolve) => {
        const s = createServer();
        s.once('error', () => resolve(false));
        s.listen(base + i, '127.0.0.1', () => s.close(() => resolve(true)));
      });
    }
    if (ok) return base;
  }
  throw new Error('no free port range found');
}

/** A free loopback TCP port, from the same range as freePortBase. */
export async function freePort(): Promise<number> {
  return (await freePortBase(1)) + 1;
}

/** Poll `fn` until it returns a truthy value or the deadline passes (no fixed sleeps). */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run the ringkv CLI to completion. */
export function runCli(args: string[], opts: { timeoutMs?: number; input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? ROOT, stdio: ['pipe', 'pipe', 'pipe'], ...(opts.env ? { env: opts.env } : {}) });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`ringkv ${args.join(' ')} timed out; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    p.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
    if (opts.input !== undefined) p.stdin.end(opts.input);
    else p.stdin.end();
  });
}

export interface NodeProc {
  proc: ChildProcess;
  dataDir: string;
  httpPort: number;
  peerPort: number;
  url: string;
  output: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface StartOpts {
  dataDir: string;
  httpPort?: number;
  peerPort?: number;
  shards?: number;
  args?: string[];
  waitReady?: boolean;
  /** Extra environment variables for the node process. */
  env?: Record<string, string>;
}

/** Start `ringkv start` as a real child process and wait until its HTTP API answers. */
export async function startNodeProc(o: StartOpts): Promise<NodeProc> {
  const httpPort = o.httpPort ?? (await freePort());
  const peerPort = o.peerPort ?? (await freePort());
  const args = [
    ...NODE_PROCESS_FLAGS,
    CLI,
    'start',
    '--data',
    o.dataDir,
    '--http',
    `127.0.0.1:${httpPort}`,
    '--peer',
    `127.0.0.1:${peerPort}`,
    '--shards',
    String(o.shards ?? 2),
    '--log-format',
    'json',
    '--log-level',
    'warn',
    ...(o.args ?? []),
  ];
  const proc = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], ...(o.env ? { env: { ...process.env, ...o.env } } : {}) });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  proc.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-20_000)));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code, sig) => resolve(code ?? (sig ? -1 : null))));
  let done = false;
  void exited.then(() => (done = true));
  const url = `http://127.0.0.1:${httpPort}`;
  const node: NodeProc = {
    proc,
    dataDir: o.dataDir,
    httpPort,
    peerPort,
    url,
    output: () => out,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) proc.kill(signal);
      return exited;
    },
  };
  if (o.waitReady !== false) {
    await waitFor(
      `node on ${url} to answer /healthz`,
      async () => {
        if (done) throw new Error(`node exited early: ${out}`);
        const r = await fetch(`${url}/healthz`);
        return r.ok;
      },
      30_000,
    );
  }
  return node;
}

export interface HttpResult<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export async function http<T = Record<string, unknown>>(method: string, url: string, body?: unknown, headers: Record<string, string> = {}): Promise<HttpResult<T>> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: r.status, body: parsed as T };
}
