import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { freePort, http, removeDir, runCli, startNodeProc, tempDir, waitFor, type NodeProc } from '../helpers/proc.js';

type Body = Record<string, unknown>;

/** The JSON object a data command printed on stdout. */
function out(r: { stdout: string }): Body {
  return JSON.parse(r.stdout.trim()) as Body;
}

/** No uncaught exception reached the terminal (a stack trace has "    at " frames). */
function noStackTrace(s: string): void {
  expect(s).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
}

describe('ringkv put/get/del/repair against a real node', () => {
  let dir: string;
  let node: NodeProc;
  let socket: string;

  beforeAll(async () => {
    dir = tempDir();
    socket = path.join(dir, 'ringkv.sock');
    node = await startNodeProc({ dataDir: dir, shards: 2, args: ['--ipc', socket] });
  });
  afterAll(async () => {
    await node?.kill('SIGTERM');
    removeDir(dir);
  });

  it('put / get / del through --socket; del without a context really deletes', async () => {
    const put = await runCli(['put', 'cli', 'k1', 'hello', '--socket', socket]);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);
    expect(out(put)).toMatchObject({ table: 'cli', key: 'k1' });
    expect(typeof out(put)['context']).toBe('string');

    const get = await runCli(['get', 'cli', 'k1', '--socket', socket]);
    expect(get.code).toBe(0);
    expect(out(get)).toMatchObject({ key: 'k1', found: true, value: 'hello' });

    // No --context: the delete must still hide the value (vclock table, the default).
    const del = await runCli(['del', 'cli', 'k1', '--socket', socket]);
    expect(del.code).toBe(0);
    expect(out(del)).toMatchObject({ key: 'k1', deleted: true });

    const gone = await runCli(['get', 'cli', 'k1', '--socket', socket]);
    expect(gone.code).toBe(3);
    expect(out(gone)).toMatchObject({ key: 'k1', found: false });
    expect((await http('GET', `${node.url}/api/v1/store/cli/k1`)).status).toBe(404);
  });

  it('put / get / del through --host (the HTTP address, as for status and repair) and --hosts (peer addresses)', async () => {
    const host = `127.0.0.1:${node.httpPort}`;
    const put = await runCli(['put', 'cli', 'k2', 'via-host', '--host', host, '--w', '1']);
    expect(put.stderr).toBe('');
    expect(put.code).toBe(0);

    const get = await runCli(['get', 'cli', 'k2', '--host', host, '--r', '1']);
    expect(get.code).toBe(0);
    expect(out(get)).toMatchObject({ found: true, value: 'via-host' });

    const viaPeer = await runCli(['get', 'cli', 'k2', '--hosts', `127.0.0.1:${node.peerPort}`]);
    expect(viaPeer.code).toBe(0);
    expect(out(viaPeer)).toMatchObject({ found: true, value: 'via-host' });

    const del = await runCli(['del', 'cli', 'k2', '--host', host]);
    expect(del.code).toBe(0);
    const gone = await runCli(['get', 'cli', 'k2', '--host', host]);
    expect(gone.code).toBe(3);
    expect(out(gone)['found']).toBe(false);
  });

  it('--host that is not a ringkv node fails with one clear line and exit 1', async () => {
    const port = await freePort();
    const r = await runCli(['get', 'cli', 'k', '--host', `127.0.0.1:${port}`, '--timeout', '2000']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach/);
    noStackTrace(r.stderr);
  });

  it('values read the same way everywhere: raw strings over HTTP as strings, HTTP JSON round-trips exactly, binary as $base64', async () => {
    expect((await runCli(['put', 'vals', 'text', 'hello', '--socket', socket])).code).toBe(0);
    expect((await runCli(['put', 'vals', 'num', '42', '--socket', socket])).code).toBe(0);
    const text = await http('GET', `${node.url}/api/v1/store/vals/text`);
    expect(text.status).toBe(200);
    expect(text.body['value']).toBe('hello');
    expect((await http('GET', `${node.url}/api/v1/store/vals/num`)).body['value']).toBe(42);

    const json = { a: [1, 'é', null, { b: true }], s: 'x' };
    expect((await http('PUT', `${node.url}/api/v1/store/vals`, { key: 'json', value: json })).status).toBe(200);
    expect((await http('GET', `${node.url}/api/v1/store/vals/json`)).body['value']).toEqual(json);
    expect((await http('PUT', `${node.url}/api/v1/store/vals`, { key: 'str', value: 'hello' })).status).toBe(200);
    expect((await http('GET', `${node.url}/api/v1/store/vals/str`)).body['value']).toBe('hello');
    // The CLI prints the stored bytes as text: an HTTP-written string is its JSON text.
    expect(out(await runCli(['get', 'vals', 'str', '--socket', socket]))['value']).toBe('"hello"');

    const client = await RingkvClient.connect({ socket });
    try {
      await client.put('vals', 'bin', new Uint8Array([0x00, 0xff, 0x01]));
      // Invalid UTF-8 between quotes must not be "repaired" into a parseable JSON string.
      await client.put('vals', 'badutf8', new Uint8Array([0x22, 0xff, 0x22]));
    } finally {
      await client.close();
    }
    expect((await http('GET', `${node.url}/api/v1/store/vals/bin`)).body['value']).toEqual({ $base64: Buffer.from([0x00, 0xff, 0x01]).toString('base64') });
    expect((await http('GET', `${node.url}/api/v1/store/vals/badutf8`)).body['value']).toEqual({ $base64: Buffer.from([0x22, 0xff, 0x22]).toString('base64') });
  });

  it('a 20 KB key can be PUT, read and deleted over HTTP; longer keys get 413 in the error shape', async () => {
    const key = `k-${'x'.repeat(20_000)}`;
    const url = `${node.url}/api/v1/store/big/${encodeURIComponent(key)}`;
    const put = await http('PUT', `${node.url}/api/v1/store/big`, { key, value: { n: 1 } });
    expect(put.status).toBe(200);
    const get = await http('GET', url);
    expect(get.status).toBe(200);
    expect(get.body['value']).toEqual({ n: 1 });
    expect(get.body['key']).toBe(key);
    const del = await http('DELETE', url);
    expect(del.status).toBe(200);
    expect((await http('GET', url)).status).toBe(404);

    // A 64 KiB key of 2-byte characters is 192 KiB URL-encoded: still readable.
    const wide = 'é'.repeat(32 * 1024);
    expect((await http('PUT', `${node.url}/api/v1/store/big`, { key: wide, value: 2 })).status).toBe(200);
    expect((await http('GET', `${node.url}/api/v1/store/big/${encodeURIComponent(wide)}`)).body['value']).toBe(2);

    // Over the key limit but within the request-line limit: the key check answers.
    const over = await http<{ error: { code: string; message: string } }>('GET', `${node.url}/api/v1/store/big/${'y'.repeat(70_000)}`);
    expect(over.status).toBe(413);
    expect(over.body.error.code).toBe('too_large');
    // Far past it: Node's parser rejects the request line; still 413 in the same shape, not a bare 431.
    const huge = await http<{ error: { code: string; message: string } }>('GET', `${node.url}/api/v1/store/big/${'z'.repeat(300_000)}`);
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe('too_large');
    expect(huge.body.error.message).toMatch(/keys are limited to 65536 bytes/);
    // The node still serves.
    expect((await http('GET', `${node.url}/healthz`)).status).toBe(200);
  });

  it('ringkv repair on a single node reports the session and exits 0', async () => {
    const r = await runCli(['repair', '--host', `127.0.0.1:${node.httpPort}`, '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = out({ stdout: r.stdout });
    expect(typeof report['rangesCompared']).toBe('number');
    expect(report['peers']).toEqual([]);
    expect(report['errors'] ?? []).toEqual([]);

    const text = await runCli(['repair', '--host', `127.0.0.1:${node.httpPort}`, '--table', 'cli']);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ranges {3}compared \d+/m);
  });

  it('ringkv repair: bad input, an unreachable node and a non-ringkv answer each give one clear line and exit 1', async () => {
    const bad = await runCli(['repair', '--host', `127.0.0.1:${node.httpPort}`, '--table', 'no spaces allowed']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^ringkv repair: .*answered HTTP 400: /m);

    const port = await freePort();
    const down = await runCli(['repair', '--host', `127.0.0.1:${port}`]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^ringkv repair: cannot reach 127\.0\.0\.1:\d+: ECONNREFUSED/m);
    noStackTrace(down.stderr);

    const srv: Server = createServer((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>bad gateway</html>');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    try {
      const addr = srv.address();
      const p = typeof addr === 'object' && addr ? addr.port : 0;
      const proxy = await runCli(['repair', '--host', `127.0.0.1:${p}`]);
      expect(proxy.code).toBe(1);
      expect(proxy.stderr).toMatch(/answered HTTP 502: <html>bad gateway<\/html>/);
      noStackTrace(proxy.stderr);
    } finally {
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });

  it('a second node on the same --ipc path is refused with one line and exit 2, before it opens storage', async () => {
    const dir2 = tempDir();
    try {
      const second = await startNodeProc({ dataDir: dir2, shards: 1, args: ['--ipc', socket], waitReady: false });
      const code = await second.exited;
      expect(code).toBe(2);
      expect(second.output()).toMatch(/^ringkv: another ringkv node owns .*ringkv\.sock$/m);
      noStackTrace(second.output());
      // It stopped before opening RocksDB (so it allocated no tokens and joined nothing).
      expect(existsSync(path.join(dir2, 'db'))).toBe(false);
      // The first node still owns and serves its socket.
      expect(existsSync(socket)).toBe(true);
      const get = await runCli(['get', 'cli', 'nothing', '--socket', socket]);
      expect(get.code).toBe(3);
    } finally {
      removeDir(dir2);
    }
  });
});

describe('ringkv start: seeds and signals', () => {
  it('a SIGINT while the node waits for its seeds exits 0 at once and removes its socket', async () => {
    const dir = tempDir();
    try {
      const deadSeed = `127.0.0.1:${await freePort()}`;
      const node = await startNodeProc({ dataDir: dir, shards: 1, args: ['--seeds', deadSeed, '--log-level', 'info'], waitReady: false });
      const sock = path.join(dir, 'ringkv.sock');
      await waitFor('the node to wait for its seeds', () => node.output().includes('discovering the cluster through the seeds'), 30_000);
      expect(existsSync(sock)).toBe(true);
      const t0 = Date.now();
      const code = await node.kill('SIGINT');
      expect(code).toBe(0);
      // Sooner than the 10 s discovery window: the wait was interrupted, not run out.
      expect(Date.now() - t0).toBeLessThan(8_000);
      expect(node.output()).toMatch(/startup interrupted \(SIGINT\)/);
      noStackTrace(node.output());
      expect(existsSync(sock)).toBe(false);
    } finally {
      removeDir(dir);
    }
  });

  it('a new node whose seeds never answer refuses to start instead of founding its own cluster', async () => {
    const dir = tempDir();
    try {
      const deadSeed = `127.0.0.1:${await freePort()}`;
      const node = await startNodeProc({ dataDir: dir, shards: 1, args: ['--seeds', deadSeed], waitReady: false });
      const code = await node.exited;
      expect(code).toBe(2);
      expect(node.output()).toContain(`ringkv: no seed answered within 10 s (seeds: ${deadSeed}); refusing to start a new cluster`);
      noStackTrace(node.output());
      expect(existsSync(path.join(dir, 'ringkv.sock'))).toBe(false);
    } finally {
      removeDir(dir);
    }
  }, 60_000);

  it('a node of another cluster name is refused by the seed and says why; the cluster stays as it was', async () => {
    const d1 = tempDir();
    const d2 = tempDir();
    let a: NodeProc | undefined;
    try {
      const peerA = await freePort();
      a = await startNodeProc({ dataDir: d1, shards: 1, peerPort: peerA, args: ['--seeds', `127.0.0.1:${peerA}`, '--cluster-name', 'blue'] });
      const c = await http<{ cluster: string; nodes: unknown[] }>('GET', `${a.url}/api/v1/cluster`);
      expect(c.body.cluster).toBe('blue');
      const b = await startNodeProc({ dataDir: d2, shards: 1, waitReady: false, args: ['--seeds', `127.0.0.1:${peerA}`, '--cluster-name', 'green'] });
      expect(await b.exited).toBe(2);
      expect(b.output()).toMatch(/seed 127\.0\.0\.1:\d+ refused this node: wrong cluster: node \S+ is in cluster "blue", the connecting node said "green"/);
      noStackTrace(b.output());
      expect((await http<{ nodes: unknown[] }>('GET', `${a.url}/api/v1/cluster`)).body.nodes).toHaveLength(1);
      // A bad name is a config error, before anything starts.
      const bad = await runCli(['start', '--data', d2, '--cluster-name', 'no spaces', '--http', '127.0.0.1:0', '--peer', '127.0.0.1:0']);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/cluster\.name: expected \[A-Za-z0-9_.-\]\{1,64\}/);
    } finally {
      await a?.kill('SIGTERM');
      removeDir(d1);
      removeDir(d2);
    }
  }, 60_000);

  it('a node seeded by itself founds a cluster; a second joins it and sees its key count (load) refreshed', async () => {
    const d1 = tempDir();
    const d2 = tempDir();
    let a: NodeProc | undefined;
    let b: NodeProc | undefined;
    try {
      const peerA = await freePort();
      a = await startNodeProc({ dataDir: d1, shards: 1, peerPort: peerA, args: ['--seeds', `127.0.0.1:${peerA}`] });
      b = await startNodeProc({ dataDir: d2, shards: 1, args: ['--seeds', `127.0.0.1:${peerA}`] });
      const nodesOf = async (n: NodeProc): Promise<Array<{ id: string; load: number; liveness: string }>> =>
        (await http<{ nodes: Array<{ id: string; load: number; liveness: string }> }>('GET', `${n.url}/api/v1/cluster`)).body.nodes;
      await waitFor('both nodes to see each other up', async () => (await nodesOf(a!)).filter((n) => n.liveness === 'up').length === 2 && (await nodesOf(b!)).length === 2);
      const aId = (await http<{ self: string }>('GET', `${a.url}/api/v1/cluster`)).body.self;
      // n=1: every key lives on exactly one of the two nodes.
      expect((await http('PUT', `${a.url}/api/v1/tables/loadt`, { conflicts: 'vclock', n: 1 })).status).toBe(200);
      for (let i = 0; i < 50; i++) expect((await http('PUT', `${a.url}/api/v1/store/loadt`, { key: `k${i}`, value: i })).status).toBe(200);
      const aOwn = await waitFor('node A to count its keys', async () => {
        const self = (await nodesOf(a!)).find((n) => n.id === aId);
        return self && self.load > 0 ? self.load : undefined;
      });
      expect(aOwn).toBeLessThanOrEqual(50);
      // B learns A's count only through gossip: it must be refreshed after startup (it was 0 then).
      await waitFor('node B to see node A\'s load through gossip', async () => (await nodesOf(b!)).find((n) => n.id === aId)?.load === aOwn, 30_000);
    } finally {
      await b?.kill('SIGTERM');
      await a?.kill('SIGTERM');
      removeDir(d1);
      removeDir(d2);
    }
  }, 90_000);
});
