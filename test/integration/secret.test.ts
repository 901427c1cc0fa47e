/**
 * Issue 10, "Doors" (item 6): protected mode without a secret, and local clusters with a secret of
 * their own. Real node processes through the CLI.
 */
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { localCluster, type LocalCluster } from '../helpers/cluster.js';
import { freePort, http, removeDir, runCli, startNodeProc, tempDir } from '../helpers/proc.js';

/** The environment without a secret in it, whatever the caller's shell has. */
function envWithoutSecret(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['RINGKV_SECRET'];
  return env;
}

describe('a node without a secret', () => {
  it('refuses a non-loopback peer or HTTP address, saying how to set a secret', async () => {
    const dir = tempDir();
    try {
      const peer = await runCli(['start', '--data', dir, '--peer', `0.0.0.0:${await freePort()}`, '--http', `127.0.0.1:${await freePort()}`], { env: envWithoutSecret() });
      expect(peer.code).toBe(2);
      expect(peer.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:\d+ \(peer port\) without a cluster secret/);
      expect(peer.stderr).toContain('`ringkv secret` prints a new one');
      expect(peer.stderr).toContain('--secret-file FILE');
      const web = await runCli(['start', '--data', dir, '--peer', `127.0.0.1:${await freePort()}`, '--http', `0.0.0.0:${await freePort()}`], { env: envWithoutSecret() });
      expect(web.code).toBe(2);
      expect(web.stderr).toMatch(/refusing to listen on 0\.0\.0\.0:\d+ \(HTTP API\) without a cluster secret/);
    } finally {
      removeDir(dir);
    }
  });

  it('runs on loopback with no secret configured (HTTP, IPC and the peer port with the CLI defaults)', async () => {
    const dir = tempDir();
    const node = await startNodeProc({ dataDir: dir, shards: 1 });
    try {
      expect((await http('PUT', `${node.url}/api/v1/store/t`, { key: 'k', value: 1 })).status).toBe(200);
      const viaPeer = await runCli(['get', 't', 'k', '--hosts', `127.0.0.1:${node.peerPort}`], { env: envWithoutSecret() });
      expect(viaPeer.code).toBe(0);
      expect(JSON.parse(viaPeer.stdout)).toMatchObject({ found: true, value: '1' });
      const viaSocket = await runCli(['get', 't', 'k', '--socket', path.join(dir, 'ringkv.sock')], { env: envWithoutSecret() });
      expect(viaSocket.code).toBe(0);
    } finally {
      await node.kill();
      removeDir(dir);
    }
  });

  it('with a secret it may listen on any address', async () => {
    const dir = tempDir();
    const node = await startNodeProc({ dataDir: dir, shards: 1, args: ['--peer', `0.0.0.0:${await freePort()}`, '--secret', 'any-address-secret'] });
    try {
      expect((await http('GET', `${node.url}/healthz`)).status).toBe(200);
    } finally {
      await node.kill();
      removeDir(dir);
    }
  });
});

describe('a local cluster has a secret of its own', () => {
  let lc: LocalCluster;
  beforeAll(async () => {
    lc = await localCluster(2);
    await lc.start();
  });
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
  });

  it('writes DIR/secret and starts every node with it; clients need it; a node with another secret cannot join', async () => {
    const file = path.join(lc.dir, 'secret');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const secret = readFileSync(file, 'utf8').trim();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const i of [1, 2]) {
      // The file, not the secret, is on the command line (visible to other local users).
      const cmdline = readFileSync(`/proc/${lc.pid(i)}/cmdline`, 'utf8').split('\0');
      expect(cmdline[cmdline.indexOf('--secret-file') + 1]).toBe(file);
      expect(cmdline.join(' ')).not.toContain(secret);
    }
    // Both nodes prove the directory's secret to a client; the development secret gets nowhere.
    const peers = [1, 2].map((i) => `127.0.0.1:${lc.peerBase + i}`);
    for (const p of peers) {
      const c = await RingkvClient.connect({ hosts: [p], secret });
      try {
        await c.put('t', `k-${p}`, 'v');
        expect((await c.get('t', `k-${p}`)).value?.toString()).toBe('v');
      } finally {
        await c.close();
      }
      await expect(RingkvClient.connect({ hosts: [p] }, { connectTimeoutMs: 2000 })).rejects.toThrow(/refused the connection: authentication failed/);
    }
    const cli = await runCli(['get', 't', `k-${peers[0]!}`, '--hosts', peers[0]!, '--secret-file', file], { env: envWithoutSecret() });
    expect(cli.code).toBe(0);

    // A node with the cluster's name but another secret is refused by the seed and exits saying why.
    const name = (JSON.parse(readFileSync(path.join(lc.dir, 'cluster.json'), 'utf8')) as { extraArgs: string[] }).extraArgs;
    const clusterName = name[name.indexOf('--cluster-name') + 1]!;
    const dir = tempDir();
    try {
      const rogue = await startNodeProc({ dataDir: dir, shards: 1, waitReady: false, args: ['--seeds', peers[0]!, '--cluster-name', clusterName, '--secret', 'another-secret-entirely'] });
      expect(await rogue.exited).toBe(2);
      expect(rogue.output()).toMatch(/rejected this node's cluster secret/);
      const view = await http<{ nodes: unknown[] }>('GET', `${lc.url(1)}/api/v1/cluster`);
      expect(view.body.nodes).toHaveLength(2);
    } finally {
      removeDir(dir);
    }
    // A node restarted from the directory reads the same secret (start waits until the ring converged).
    await lc.kill9(2);
    await lc.start();
    expect(readFileSync(file, 'utf8').trim()).toBe(secret);
  });
});
