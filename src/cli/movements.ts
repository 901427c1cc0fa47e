/**
 * CLI commands of range movements: `ringkv decommission`, `ringkv removenode`, `ringkv cleanup`,
 * and the progress display they share with `local-cluster add / decommission` (a bar redrawn in
 * place on a terminal, a plain line every few seconds otherwise).
 */
import type { Command } from 'commander';
import { describeMovement } from '../streaming/membership.js';
import type { MovementSummary } from '../streaming/progress.js';
import { clusterViewOf, isObject, nodeJson, NodeHttpError } from './node-http.js';

const fmt = new Intl.NumberFormat('en-US');

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** One line: what, state, ranges, keys, bytes, rate, ETA (and the error of a stalled movement). */
export function formatMovement(m: MovementSummary, bar: boolean): string {
  const pct = `${(m.fraction * 100).toFixed(1).padStart(5)}%`;
  const width = 24;
  const filled = Math.round(m.fraction * width);
  const head = bar ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}` : pct.trim();
  const eta = m.etaSeconds === null ? '?' : `${m.etaSeconds} s`;
  const parts = [
    `${describeMovement(m)}: ${m.state}`,
    head,
    `${m.rangesDone}/${m.rangesTotal} ranges`,
    `${fmt.format(m.keys)} keys`,
    formatBytes(m.bytes),
    `${formatBytes(m.bytesPerSecond)}/s`,
    `${fmt.format(m.keysPerSecond)} keys/s`,
    `ETA ${eta}`,
  ];
  if (m.sources > 0) parts.push(`${m.sources} sources`);
  if (m.error !== undefined && m.state !== 'done') parts.push(`(${m.error})`);
  return parts.join('  ');
}

export function movementOf(body: Record<string, unknown>): MovementSummary | null {
  const m = body['movement'];
  return isObject(m) && typeof m['id'] === 'string' ? (m as unknown as MovementSummary) : null;
}

export interface WatchOptions {
  /** HTTP address of the node driving the movement. */
  host: string;
  /** The movement to follow (its id changes once a join has tokens: then any movement of that node and kind). */
  node: string;
  kind: MovementSummary['kind'];
  /**
   * A node that exits when done (decommission): once it stops answering, the others are asked
   * whether it left the ring.
   */
  exitsWhenDone?: boolean;
  timeoutMs: number;
  tty: boolean;
  err: (s: string) => void;
  /** Seconds between plain progress lines (not a terminal). */
  everyS?: number;
  /** Why the driver is known to be gone (its process exited: local-cluster knows), or null. */
  gone?: () => string | null;
}

/** HTTP addresses of the nodes but `self` in a cluster view (to ask about a node that stopped). */
function otherHosts(body: Record<string, unknown>, self: string): string[] {
  const nodes = Array.isArray(body['nodes']) ? (body['nodes'] as unknown[]) : [];
  return nodes.filter(isObject).filter((n) => n['id'] !== self && n['status'] !== 'left' && typeof n['http'] === 'string').map((n) => String(n['http']));
}

/** Does any of `hosts` see `node` as left? */
async function seenLeft(hosts: readonly string[], node: string): Promise<boolean> {
  for (const h of hosts) {
    try {
      const v = await clusterViewOf(h, 3000);
      const n = (v['nodes'] as unknown[]).filter(isObject).find((x) => x['id'] === node);
      if (n && n['status'] === 'left') return true;
    } catch {
      /* ask the next one */
    }
  }
  return false;
}

/** Follow a movement on its driver until done; throws with the reason when it fails or times out. */
export async function watchMovement(o: WatchOptions): Promise<MovementSummary | null> {
  const deadline = Date.now() + o.timeoutMs;
  let last: MovementSummary | null = null;
  let others: string[] = [];
  let lastLine = 0;
  let shown = false;
  const clear = (): void => {
    if (shown) o.err('\n');
    shown = false;
  };
  for (;;) {
    let body: Record<string, unknown> | undefined;
    try {
      body = await clusterViewOf(o.host, 3000);
      if (others.length === 0) others = otherHosts(body, o.node);
    } catch (e) {
      if (!(e instanceof NodeHttpError) || Date.now() > deadline) throw e;
      if (o.exitsWhenDone && last !== null && (await seenLeft(others, o.node))) {
        clear();
        return { ...last, state: 'done', fraction: 1 };
      }
      const gone = o.gone?.() ?? null;
      if (gone !== null && !o.exitsWhenDone) {
        clear();
        throw new NodeHttpError(`${o.node} stopped answering during its ${o.kind}: ${gone}`);
      }
    }
    const m = body ? movementOf(body) : null;
    if (m !== null && m.node === o.node && m.kind === o.kind) {
      last = m;
      const now = Date.now();
      if (o.tty) {
        o.err(`\r\x1b[K${formatMovement(m, true)}`);
        shown = true;
      } else if (now - lastLine >= (o.everyS ?? 2) * 1000 || m.state === 'done') {
        o.err(`${formatMovement(m, false)}\n`);
        lastLine = now;
      }
      if (m.state === 'done') {
        clear();
        return m;
      }
      if (m.state === 'failed') {
        clear();
        throw new NodeHttpError(`${describeMovement(m)} failed: ${m.error ?? 'no reason given'}`);
      }
    }
    if (Date.now() > deadline) {
      clear();
      throw new NodeHttpError(`timed out after ${o.timeoutMs} ms following the ${o.kind} of ${o.node} on ${o.host}${last ? ` (last state: ${last.state})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

function fail(cmd: string, e: unknown): void {
  if (!(e instanceof NodeHttpError)) throw e;
  process.stderr.write(`ringkv ${cmd}: ${e.message}\n`);
  process.exitCode = 1;
}

export function registerMovementCommands(program: Command): void {
  program
    .command('decommission')
    .description('the node leaves the ring: it streams each range it holds to its new replica, then stops')
    .option('--host <host:port>', 'HTTP address of the node to decommission', '127.0.0.1:7070')
    .option('--no-wait', 'return once the decommission has started')
    .option('--timeout <ms>', 'how long to follow it', '3600000')
    .action(async (o: { host: string; wait: boolean; timeout: string }) => {
      try {
        const r = await nodeJson({ host: o.host, path: '/api/v1/decommission', method: 'POST', timeoutMs: 10_000, expect: { what: 'a movement', ok: (b) => movementOf(b) !== null } });
        const m = movementOf(r)!;
        console.log(`decommission of ${m.node} started`);
        if (!o.wait) return;
        await watchMovement({ host: o.host, node: m.node, kind: 'leave', exitsWhenDone: true, timeoutMs: Number(o.timeout), tty: process.stderr.isTTY === true, err: (s) => process.stderr.write(s) });
        console.log(`${m.node} has left the ring`);
      } catch (e) {
        fail('decommission', e);
      }
    });

  program
    .command('removenode')
    .description('remove a dead node from the ring; the ranges it held are re-replicated from the surviving replicas')
    .argument('<node-id>', 'the dead node')
    .option('--host <host:port>', 'HTTP address of a live node to run it', '127.0.0.1:7070')
    .option('--no-wait', 'return once the removal has started')
    .option('--timeout <ms>', 'how long to follow it', '3600000')
    .action(async (id: string, o: { host: string; wait: boolean; timeout: string }) => {
      try {
        const r = await nodeJson({ host: o.host, path: '/api/v1/removenode', method: 'POST', body: { node: id }, timeoutMs: 10_000, expect: { what: 'a movement', ok: (b) => movementOf(b) !== null } });
        console.log(`removal of ${movementOf(r)!.node} started`);
        if (!o.wait) return;
        await watchMovement({ host: o.host, node: id, kind: 'remove', timeoutMs: Number(o.timeout), tty: process.stderr.isTTY === true, err: (s) => process.stderr.write(s) });
        console.log(`${id} is removed; its ranges have their replicas again`);
      } catch (e) {
        fail('removenode', e);
      }
    });

  program
    .command('cleanup')
    .description('delete the data of ranges this node no longer replicates (after joins and moves)')
    .option('--host <host:port>', 'HTTP address of the node', '127.0.0.1:7070')
    .option('--json', 'print the raw JSON report')
    .action(async (o: { host: string; json?: boolean }) => {
      try {
        const r = await nodeJson({ host: o.host, path: '/api/v1/cleanup', method: 'POST', timeoutMs: 3_600_000, expect: { what: 'a cleanup report', ok: (b) => typeof b['removed'] === 'number' } });
        if (o.json) console.log(JSON.stringify(r, null, 2));
        else console.log(`cleanup: ${fmt.format(r['removed'] as number)} keys removed of ${fmt.format(r['scanned'] as number)} examined in ${String(r['durationMs'])} ms`);
      } catch (e) {
        fail('cleanup', e);
      }
    });
}
