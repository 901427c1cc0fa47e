import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync, closeSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { generateSecret } from '../config/secret.js';
import { nodeJson } from './node-http.js';
import { movementOf, watchMovement } from './movements.js';
import { NODE_PROCESS_FLAGS } from './process-flags.js';

/**
 * `ringkv local-cluster`: K real node processes on loopback, like Cassandra's ccm. Node i (1-based)
 * gets data DIR/node<i>, HTTP port B+i, peer port P+i, IPC socket DIR/node<i>/ringkv.sock, node id
 * `node<i>`, and node 1 as seed. The layout is kept in DIR/cluster.json so restarts reuse it, and
 * the cluster's secret in DIR/secret (mode 600), which every node it starts reads (--secret-file).
 */
interface ClusterFile {
  /** Nodes ever added: node i is 1..nodes. */
  nodes: number;
  httpBase: number;
  peerBase: number;
  shards: number;
  extraArgs: string[];
  /** Nodes that were decommissioned (they left the ring for good: never restarted). */
  decommissioned?: number[];
}

/** Nodes of the cluster that have not left it. */
function activeNodes(cf: ClusterFile): number[] {
  const gone = new Set(cf.decommissioned ?? []);
  return Array.from({ length: cf.nodes }, (_, k) => k + 1).filter((i) => !gone.has(i));
}

function readClusterFile(dir: string): ClusterFile {
  return JSON.parse(readFileSync(path.join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
}

function writeClusterFile(dir: string, cf: ClusterFile): void {
  writeFileSync(path.join(dir, 'cluster.json'), JSON.stringify(cf, null, 2));
}

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/ringkv.js');

function nodeDir(dir: string, i: number): string {
  return path.join(dir, `node${i}`);
}

/** The cluster's secret file, DIR/secret: every node of the directory proves this secret. */
export function clusterSecretFile(dir: string): string {
  return path.join(dir, 'secret');
}

/** Create DIR/secret with a new random secret unless the directory has one. */
function ensureClusterSecret(dir: string): string {
  const file = clusterSecretFile(dir);
  try {
    // 'wx': never overwrite the secret the cluster's nodes already share.
    writeFileSync(file, `${generateSecret()}\n`, { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  return file;
}

function pidOf(dir: string, i: number): number | undefined {
  const f = path.join(nodeDir(dir, i), 'ringkv.pid');
  if (!existsSync(f)) return undefined;
  const pid = Number(readFileSync(f, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function getJson(url: string, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!r.ok) return undefined;
    return (await r.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

async function waitUntil(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function startOne(dir: string, cf: ClusterFile, i: number, seed = activeNodes(cf)[0] ?? 1): number {
  const nd = nodeDir(dir, i);
  mkdirSync(nd, { recursive: true });
  const logFd = openSync(path.join(nd, 'node.log'), 'a');
  const args = [
    CLI,
    'start',
    '--data',
    nd,
    '--node-id',
    `node${i}`,
    '--http',
    `127.0.0.1:${cf.httpBase + i}`,
    '--peer',
    `127.0.0.1:${cf.peerBase + i}`,
    '--ipc',
    path.join(nd, 'ringkv.sock'),
    '--seeds',
    `127.0.0.1:${cf.peerBase + seed}`,
    '--shards',
    String(cf.shards),
    '--log-format',
    'json',
    // The file, not the secret: a flag's value is visible to every local user in the process list.
    '--secret-file',
    ensureClusterSecret(dir),
    ...cf.extraArgs,
  ];
  const child = spawn(process.execPath, [...NODE_PROCESS_FLAGS, ...args], { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  writeFileSync(path.join(nd, 'ringkv.pid'), String(child.pid));
  return child.pid!;
}

/** The last lines of a node's log, so a failed start says why without another command. */
function logTail(dir: string, i: number, lines = 15): string {
  try {
    return readFileSync(path.join(nodeDir(dir, i), 'node.log'), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Converged: every running active node answers, sees every running active node up and normal,
 * and all report the same ring digest. (A node killed on purpose may be down; decommissioned
 * nodes show as left.)
 */
async function converged(cf: ClusterFile, dir: string): Promise<boolean> {
  const digests = new Set<string>();
  const running = activeNodes(cf).filter((i) => alive(pidOf(dir, i)));
  for (const i of running) {
    const c = await getJson(`http://127.0.0.1:${cf.httpBase + i}/api/v1/cluster`);
    if (!c) return false;
    const nodes = c['nodes'] as Array<{ id: string; liveness: string; status: string }>;
    for (const k of running) {
      const n = nodes.find((x) => x.id === `node${k}`);
      if (!n || n.liveness !== 'up' || n.status !== 'normal') return false;
    }
    digests.add(String(c['ringDigest']));
  }
  return digests.size === 1;
}

/** Wait until node i answers HTTP (or fail with its log when the process exits). */
async function waitAnswering(dir: string, cf: ClusterFile, i: number, pid: number, timeout: number): Promise<void> {
  await waitUntil(
    `node${i} to answer on 127.0.0.1:${cf.httpBase + i}`,
    async () => {
      if (!alive(pid)) throw new Error(`node${i} exited; see ${path.join(nodeDir(dir, i), 'node.log')}:\n${logTail(dir, i)}`);
      const c = await getJson(`http://127.0.0.1:${cf.httpBase + i}/api/v1/cluster`);
      return c !== undefined;
    },
    timeout,
  );
}

export function registerLocalCluster(program: Command): void {
  const lc = program.command('local-cluster').description('run a cluster of real node processes on this machine (like ccm)');
  lc.command('start')
    .description('start K nodes (or restart the stopped nodes of an existing DIR) and wait until the ring converges')
    .requiredOption('--dir <dir>', 'cluster directory')
    .option('--nodes <k>', 'number of nodes', '3')
    .option('--http-base <port>', 'HTTP port base: node i listens on base+i', '7070')
    .option('--peer-base <port>', 'peer port base: node i listens on base+i', '7000')
    .option('--shards <n>', 'shards per node (default: this machine\'s cores / K, at least 1: the K nodes share them)')
    .option('--test-mode', 'start nodes with fault-injection endpoints')
    .option('--config <file>', 'config file every node starts with')
    .option('--cluster-name <name>', 'cluster name of every node (default: lc-<random>, kept in DIR/cluster.json)')
    .option('--timeout <ms>', 'how long to wait for convergence', '60000')
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const dir = path.resolve(String(o['dir']));
      mkdirSync(dir, { recursive: true });
      const file = path.join(dir, 'cluster.json');
      let cf: ClusterFile;
      if (existsSync(file)) cf = JSON.parse(readFileSync(file, 'utf8')) as ClusterFile;
      else {
        const nodes = Number(o['nodes']);
        if (!Number.isInteger(nodes) || nodes < 1 || nodes > 50) throw new Error('--nodes must be an integer between 1 and 50');
        cf = {
          nodes,
          httpBase: Number(o['httpBase']),
          peerBase: Number(o['peerBase']),
          // K nodes on one machine: more shard threads than cores only adds context switches
          // (measured on 2 cores, 3 nodes, YCSB A: 1 shard per node 7.4k ops/s, 2 shards 4.4k).
          shards: o['shards'] !== undefined ? Number(o['shards']) : Math.max(1, Math.floor(availableParallelism() / nodes)),
          extraArgs: [
            ...(o['testMode'] ? ['--test-mode'] : []),
            ...(typeof o['config'] === 'string' ? ['--config', path.resolve(o['config'])] : []),
            // A name of its own as well as a secret: a node of one local cluster must never gossip
            // with a node of another that reuses a freed port, even if both had the same secret.
            '--cluster-name',
            typeof o['clusterName'] === 'string' ? o['clusterName'] : `lc-${randomBytes(4).toString('hex')}`,
          ],
        };
        if (!Number.isInteger(cf.shards) || cf.shards < 1 || cf.shards > 64) throw new Error('--shards must be an integer between 1 and 64');
        writeFileSync(file, JSON.stringify(cf, null, 2));
      }
      const timeout = Number(o['timeout']);
      // One node at a time (as Cassandra recommends for bootstrap): each joiner sees the tokens of
      // those before it, so token allocation can balance against them.
      for (const i of activeNodes(cf)) {
        if (alive(pidOf(dir, i))) continue;
        const pid = startOne(dir, cf, i);
        await waitAnswering(dir, cf, i, pid, timeout);
      }
      const t0 = Date.now();
      await waitUntil('the ring to converge', () => converged(cf, dir), timeout);
      for (const i of activeNodes(cf)) {
        console.log(`node${i}  pid ${pidOf(dir, i)}  http 127.0.0.1:${cf.httpBase + i}  peer 127.0.0.1:${cf.peerBase + i}  ipc ${path.join(nodeDir(dir, i), 'ringkv.sock')}`);
      }
      console.log(`converged: ${cf.nodes} nodes agree on the ring (waited ${Date.now() - t0} ms after the last start)`);
      const name = cf.extraArgs[cf.extraArgs.indexOf('--cluster-name') + 1];
      const secretFile = clusterSecretFile(dir);
      if (cf.extraArgs.includes('--cluster-name') && name) {
        console.log(`cluster name: ${name} (another node joins with --seeds 127.0.0.1:${cf.peerBase + 1} --cluster-name ${name} --secret-file ${secretFile})`);
      }
      console.log(`cluster secret: ${secretFile} (peer-port clients: --hosts 127.0.0.1:${cf.peerBase + 1} --secret-file ${secretFile})`);
    });

  lc.command('stop')
    .description('stop the nodes of a local cluster (SIGTERM, then SIGKILL after 10 s)')
    .requiredOption('--dir <dir>', 'cluster directory')
    .action(async (o: Record<string, string>) => {
      const dir = path.resolve(o['dir']!);
      const cf = readClusterFile(dir);
      await Promise.all(
        Array.from({ length: cf.nodes }, async (_, k) => {
          const i = k + 1;
          const pid = pidOf(dir, i);
          if (!alive(pid)) return;
          process.kill(pid!, 'SIGTERM');
          try {
            await waitUntil(`node${i} to stop`, async () => !alive(pid), 10_000);
          } catch {
            process.kill(pid!, 'SIGKILL');
          }
          try {
            unlinkSync(path.join(nodeDir(dir, i), 'ringkv.pid'));
          } catch {
            /* already gone */
          }
          console.log(`node${i} stopped`);
        }),
      );
    });

  lc.command('status')
    .description('show which nodes of a local cluster are running and how they see each other')
    .requiredOption('--dir <dir>', 'cluster directory')
    .action(async (o: Record<string, string>) => {
      const dir = path.resolve(o['dir']!);
      const cf = readClusterFile(dir);
      for (const i of activeNodes(cf)) {
        const pid = pidOf(dir, i);
        const c = alive(pid) ? await getJson(`http://127.0.0.1:${cf.httpBase + i}/api/v1/cluster`) : undefined;
        const view = c ? (c['nodes'] as Array<{ id: string; liveness: string }>).map((n) => `${n.id}:${n.liveness}`).join(' ') : '';
        console.log(`node${i}  ${alive(pid) ? `running (pid ${pid})` : 'stopped'}  http 127.0.0.1:${cf.httpBase + i}  ${c ? `ring ${String(c['ringDigest']).slice(0, 12)}  sees ${view}` : ''}`);
      }
    });

  lc.command('add')
    .description('add node K+1 (same port scheme, cluster name and secret): it joins, streams its ranges, and this returns once it is normal')
    .requiredOption('--dir <dir>', 'cluster directory')
    .option('--timeout <ms>', 'how long to wait for the join', '600000')
    .action(async (o: Record<string, string>) => {
      const dir = path.resolve(o['dir']!);
      const cf = readClusterFile(dir);
      const timeout = Number(o['timeout']);
      const seed = activeNodes(cf).find((k) => alive(pidOf(dir, k)));
      if (seed === undefined) throw new Error('no node of this local cluster is running; start it first');
      const i = cf.nodes + 1;
      cf.nodes = i;
      writeClusterFile(dir, cf);
      const pid = startOne(dir, cf, i, seed);
      await waitAnswering(dir, cf, i, pid, timeout);
      const host = `127.0.0.1:${cf.httpBase + i}`;
      const done = await watchMovement({
        host,
        node: `node${i}`,
        kind: 'join',
        timeoutMs: timeout,
        tty: process.stderr.isTTY === true,
        err: (s) => process.stderr.write(s),
        gone: () => (alive(pid) ? null : `node${i} exited; see ${path.join(nodeDir(dir, i), 'node.log')}:\n${logTail(dir, i)}`),
      });
      await waitUntil('the ring to converge', () => converged(cf, dir), timeout);
      const took = done ? ` (${done.rangesTotal} ranges, ${done.keys.toLocaleString()} keys streamed)` : '';
      console.log(`node${i}  pid ${pid}  http ${host}  peer 127.0.0.1:${cf.peerBase + i}  ipc ${path.join(nodeDir(dir, i), 'ringkv.sock')}`);
      console.log(`node${i} joined and is normal${took}`);
    });

  lc.command('decommission')
    .description('decommission node I: it streams its ranges to their new replicas, leaves the ring and stops')
    .argument('<i>', 'node number')
    .requiredOption('--dir <dir>', 'cluster directory')
    .option('--timeout <ms>', 'how long to wait for it', '600000')
    .action(async (iArg: string, o: Record<string, string>) => {
      const dir = path.resolve(o['dir']!);
      const cf = readClusterFile(dir);
      const i = Number(iArg);
      if (!activeNodes(cf).includes(i)) throw new Error(`node ${iArg} is not an active node of this local cluster (nodes: ${activeNodes(cf).join(', ')})`);
      const pid = pidOf(dir, i);
      if (!alive(pid)) throw new Error(`node${i} is not running`);
      const host = `127.0.0.1:${cf.httpBase + i}`;
      const timeout = Number(o['timeout']);
      const r = await nodeJson({ host, path: '/api/v1/decommission', method: 'POST', timeoutMs: 10_000, expect: { what: 'a movement', ok: (b) => movementOf(b) !== null } });
      console.log(`decommission of ${movementOf(r)!.node} started`);
      await watchMovement({ host, node: `node${i}`, kind: 'leave', exitsWhenDone: true, timeoutMs: timeout, tty: process.stderr.isTTY === true, err: (s) => process.stderr.write(s), gone: () => (alive(pid) ? null : '') });
      await waitUntil(`node${i} to stop`, async () => !alive(pid), timeout);
      cf.decommissioned = [...(cf.decommissioned ?? []), i];
      writeClusterFile(dir, cf);
      await waitUntil('the ring to converge', () => converged(cf, dir), timeout);
      console.log(`node${i} left the ring and stopped; ${activeNodes(cf).length} nodes remain`);
    });
}
