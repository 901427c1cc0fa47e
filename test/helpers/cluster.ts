import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freePortBase, http, runCli, tempDir, waitFor } from './proc.js';

export interface LocalCluster {
  dir: string;
  k: number;
  httpBase: number;
  peerBase: number;
  url(i: number): string;
  pid(i: number): number;
  kill9(i: number): Promise<void>;
  start(): Promise<string>;
  stop(): Promise<void>;
}

/** Drive `ringkv local-cluster` exactly as a user would. */
export async function localCluster(k: number, extra: string[] = []): Promise<LocalCluster> {
  const dir = tempDir('ringkv-cluster-');
  const httpBase = await freePortBase(k);
  let peerBase = await freePortBase(k);
  while (Math.abs(peerBase - httpBase) <= k) peerBase = await freePortBase(k);
  const lc: LocalCluster = {
    dir,
    k,
    httpBase,
    peerBase,
    url: (i) => `http://127.0.0.1:${httpBase + i}`,
    pid: (i) => Number(readFileSync(path.join(dir, `node${i}`, 'ringkv.pid'), 'utf8')),
    async kill9(i) {
      const pid = lc.pid(i);
      process.kill(pid, 'SIGKILL');
      await waitFor(`node${i} (pid ${pid}) to die`, () => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      });
    },
    async start() {
      const r = await runCli(
        ['local-cluster', 'start', '--nodes', String(k), '--dir', dir, '--http-base', String(httpBase), '--peer-base', String(peerBase), ...extra],
        { timeoutMs: 90_000 },
      );
      if (r.code !== 0) throw new Error(`local-cluster start failed (${r.code}): ${r.stderr}${r.stdout}`);
      return r.stdout;
    },
    async stop() {
      await runCli(['local-cluster', 'stop', '--dir', dir], { timeoutMs: 60_000 });
    },
  };
  return lc;
}

export async function clusterView(url: string): Promise<Array<{ id: string; liveness: string; status: string }>> {
  const r = await http<{ nodes: Array<{ id: string; liveness: string; status: string }> }>('GET', `${url}/api/v1/cluster`);
  return r.body.nodes;
}
