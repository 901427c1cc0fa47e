import type { Command } from 'commander';
import type { ReplayProgress } from '../hints/service.js';
import { memberStateCode } from '../cluster/member-state.js';
import { clusterViewOf, isObject, NodeHttpError } from './node-http.js';
import { formatBytes, formatMovement, movementOf } from './movements.js';

interface NodeRow {
  id: string;
  status: string;
  liveness: string;
  peer: string;
  http: string;
  rack: string;
  load: number;
  tokens: number;
  owned: number;
  hints: number;
}

/** What one holder node reported about its hints, or why it could not be asked. */
export type HolderHints = { holder: string; replay: Record<string, ReplayProgress> } | { holder: string; error: string };

const fmt = new Intl.NumberFormat('en-US');

function num(v: unknown): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

function numOrNull(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** Read `hints.replay` out of a cluster view. */
export function replayOf(body: Record<string, unknown>): Record<string, ReplayProgress> {
  const out: Record<string, ReplayProgress> = {};
  const hints = body['hints'];
  const replay = isObject(hints) ? hints['replay'] : undefined;
  if (!isObject(replay)) return out;
  for (const [t, v] of Object.entries(replay)) {
    if (!isObject(v)) continue;
    out[t] = {
      pending: num(v['pending']),
      targetUp: v['targetUp'] === true,
      replaying: v['replaying'] === true,
      sent: num(v['sent']),
      failed: num(v['failed']),
      expired: num(v['expired']),
      startedAt: numOrNull(v['startedAt']),
      finishedAt: numOrNull(v['finishedAt']),
      perSecond: num(v['perSecond']),
      lastError: typeof v['lastError'] === 'string' ? v['lastError'] : null,
    };
  }
  return out;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** One line per (holder, target): e.g. `node1 → node3: 1,234 pending, replaying 410/s, 800 sent, 0 failed (for 2.0 s)`. */
export function formatHintLines(holders: readonly HolderHints[], nowMs: number): string[] {
  const lines: string[] = [];
  for (const h of holders) {
    if ('error' in h) {
      lines.push(`  ${h.holder}: hints unknown (${h.error})`);
      continue;
    }
    for (const [target, r] of Object.entries(h.replay).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const parts = [`${fmt.format(r.pending)} pending`];
      if (r.replaying) {
        parts.push(`replaying ${fmt.format(r.perSecond)}/s`, `${fmt.format(r.sent)} sent`, `${fmt.format(r.failed)} failed`);
        if (r.startedAt !== null) parts.push(`for ${seconds(nowMs - r.startedAt)}`);
      } else {
        if (r.pending > 0) parts.push(r.targetUp ? 'waiting to replay' : `waiting: ${target} is down`);
        if (r.startedAt !== null && r.finishedAt !== null && (r.sent > 0 || r.failed > 0)) {
          parts.push(
            `last pass ${fmt.format(r.sent)} sent in ${seconds(r.finishedAt - r.startedAt)} (${fmt.format(r.perSecond)}/s), ${fmt.format(r.failed)} failed, ended ${seconds(nowMs - r.finishedAt)} ago`,
          );
        }
      }
      if (r.expired > 0) parts.push(`${fmt.format(r.expired)} expired`);
      if (r.lastError !== null && !r.replaying && r.pending > 0) parts.push(`last attempt: ${r.lastError.length > 200 ? `${r.lastError.slice(0, 200)}…` : r.lastError}`);
      lines.push(`  ${h.holder} → ${target}: ${parts.join(', ')}`);
    }
  }
  return lines;
}

function nodeRows(body: Record<string, unknown>): NodeRow[] {
  const nodes = body['nodes'] as unknown[];
  return nodes.filter(isObject).map((n) => ({
    id: String(n['id'] ?? '?'),
    status: String(n['status'] ?? '?'),
    liveness: String(n['liveness'] ?? '?'),
    peer: String(n['peer'] ?? ''),
    http: String(n['http'] ?? ''),
    rack: String(n['rack'] ?? ''),
    load: num(n['load']),
    tokens: num(n['tokens']),
    owned: num(n['owned']),
    hints: num(n['hints']),
  }));
}

/** Ask every other up node for its replay progress (the asked node only knows the others' counts). */
async function holderHints(self: string, selfBody: Record<string, unknown>, rows: NodeRow[]): Promise<HolderHints[]> {
  const out: HolderHints[] = [{ holder: self, replay: replayOf(selfBody) }];
  const others = rows.filter((n) => n.id !== self);
  const answers = await Promise.all(
    others.map(async (n): Promise<HolderHints> => {
      if (n.liveness !== 'up') return n.hints > 0 ? { holder: n.id, error: `${fmt.format(n.hints)} held, node is down` } : { holder: n.id, replay: {} };
      try {
        return { holder: n.id, replay: replayOf(await clusterViewOf(n.http, 2000)) };
      } catch (e) {
        return { holder: n.id, error: (e as Error).message };
      }
    }),
  );
  return [...out, ...answers].sort((a, b) => (a.holder < b.holder ? -1 : a.holder > b.holder ? 1 : 0));
}

/** Range movements under way (as gossiped by their drivers), and the one this node drives. */
export function movementLines(body: Record<string, unknown>): string[] {
  const lines: string[] = [];
  const all = Array.isArray(body['movements']) ? (body['movements'] as unknown[]).filter(isObject) : [];
  if (all.length > 0) {
    lines.push('', 'Range movements:');
    for (const m of all) {
      const what = m['kind'] === 'replace' ? `replace ${String(m['replaces'])} by ${String(m['node'])}` : `${String(m['kind'])} ${String(m['node'])}`;
      const prog = typeof m['rangesTotal'] === 'number' ? `, ${num(m['rangesDone'])}/${num(m['rangesTotal'])} ranges, ${fmt.format(num(m['keys']))} keys, ${formatBytes(num(m['bytes']))}` : '';
      lines.push(`  ${what} (run by ${String(m['driver'])}): ${String(m['state'])}${prog}`);
    }
  }
  const own = movementOf(body);
  if (own !== null) lines.push('', `This node's ${own.state === 'done' || own.state === 'failed' ? 'last ' : ''}movement: ${formatMovement(own, false)}`);
  return lines;
}

/** `ringkv status`: a `nodetool status`-like table of how one node sees the cluster, then hint replay. */
export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the cluster as one node sees it (like nodetool status), with hints and their replay')
    .option('--host <host:port>', 'HTTP address of the node to ask', '127.0.0.1:7070')
    .option('--json', 'print the raw JSON')
    .action(async (o: { host: string; json?: boolean }) => {
      try {
        const body = await clusterViewOf(o.host, 5000);
        if (o.json) {
          console.log(JSON.stringify(body, null, 2));
          return;
        }
        const nodes = nodeRows(body);
        const self = String(body['self']);
        console.log(`Ring digest ${String(body['ringDigest'])}   as seen by ${self}`);
        console.log('Status=Up/Down  State=Normal/Joining/Leaving');
        const rows = [['--', 'Node', 'Address', 'Load(keys)', 'Tokens', 'Owns', 'Hints', 'Rack']];
        // Nodes that left the ring (decommissioned, removed, replaced) stay in gossip; list them apart.
        const gone = nodes.filter((n) => n.status === 'left').map((n) => n.id);
        for (const n of nodes.filter((x) => x.status !== 'left')) {
          rows.push([
            memberStateCode(n.liveness === 'up', n.status),
            n.id,
            n.peer,
            String(n.load),
            String(n.tokens),
            `${(n.owned * 100).toFixed(1)}%`,
            fmt.format(n.hints),
            n.rack,
          ]);
        }
        const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
        for (const r of rows) console.log(r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd());
        if (gone.length > 0) console.log(`Left the ring: ${gone.join(', ')}`);
        for (const l of movementLines(body)) console.log(l);
        const lines = formatHintLines(await holderHints(self, body, nodes), Date.now());
        console.log('');
        if (lines.length === 0) console.log('Hints: none held');
        else {
          console.log('Hints (held on → for):');
          for (const l of lines) console.log(l);
        }
      } catch (e) {
        if (!(e instanceof NodeHttpError)) throw e;
        process.stderr.write(`ringkv status: ${e.message}\n`);
        process.exitCode = 1;
      }
    });
}
