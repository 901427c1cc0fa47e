/**
 * CQL end to end on 3 real nodes (`ringkv local-cluster`), R=2/W=2 (QUORUM of N=3): the seed's
 * query verbatim, paging a 20k-row partition, ORDER BY DESC, token scans and IN, deletes that a
 * replica missed not coming back after repair, TTL expiry and purge, per-cell last-write-wins,
 * bad input, and the IPC, client and CLI paths.
 *
 * One cluster for the file. Hints are off (a 0 ms window) and read repair is off, so what brings a
 * replica that missed a delete up to date is the anti-entropy repair under test; periodic repair
 * and sweeps are off too.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { clusterView, localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, runCli, tempDir, waitFor } from '../helpers/proc.js';

type Row = Record<string, unknown>;
const NODES = [1, 2, 3] as const;
const SEED_QUERY = "SELECT * FROM users WHERE user_id = '123' AND timestamp > '2023-01-01'";

describe('CQL on 3 nodes (R=2, W=2)', () => {
  let lc: LocalCluster;
  let cfgDir: string;
  let client: RingkvClient;

  beforeAll(async () => {
    cfgDir = tempDir('ringkv-cql-cfg-');
    const cfg = path.join(cfgDir, 'cql.json');
    writeFileSync(cfg, JSON.stringify({ merkleDepth: 8, antiEntropyIntervalMs: 0, maxHintWindowMs: 0, readRepair: 'off', tombstoneSweepIntervalMs: 86_400_000 }));
    lc = await localCluster(3, ['--test-mode', '--config', cfg]);
    expect(await lc.start()).toMatch(/converged: 3 nodes/);
    client = await RingkvClient.connect({ socket: path.join(lc.dir, 'node1', 'ringkv.sock') });
  }, 120_000);
  afterAll(async () => {
    await client?.close();
    await lc?.stop();
    if (lc) removeDir(lc.dir);
    if (cfgDir) removeDir(cfgDir);
  });

  /** POST /api/v1/query with a JSON body on node i. */
  async function q<T = Row[]>(i: number, query: string, params?: unknown[], extra: Record<string, unknown> = {}): Promise<{ status: number; body: T; paging: string | null }> {
    const r = await fetch(`${lc.url(i)}/api/v1/query`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query, ...(params ? { params } : {}), ...extra }) });
    return { status: r.status, body: (await r.json()) as T, paging: r.headers.get('x-ringkv-paging-state') };
  }

  /** A statement that must succeed. */
  async function ok<T = Row[]>(i: number, query: string, params?: unknown[], extra: Record<string, unknown> = {}): Promise<T> {
    const r = await q<T>(i, query, params, extra);
    expect(r.status, `${query}: ${JSON.stringify(r.body)}`).toBe(200);
    return r.body;
  }

  it("answers the seed's query verbatim, sent as curl -d sends it", async () => {
    await ok(1, 'CREATE TABLE users (user_id text, timestamp timestamp, event text, PRIMARY KEY ((user_id), timestamp))');
    // The table reached every node before the DDL answered: a write through another node finds it.
    await ok(2, "INSERT INTO users (user_id, timestamp, event) VALUES ('123', '2023-01-02T10:00:00Z', 'login')");
    await ok(3, "INSERT INTO users (user_id, timestamp, event) VALUES ('123', '2022-12-31T23:00:00Z', 'old')");
    await ok(2, "INSERT INTO users (user_id, timestamp, event) VALUES ('456', '2023-01-05', 'other user')");
    for (const contentType of ['application/x-www-form-urlencoded', 'text/plain', 'application/cql']) {
      const r = await fetch(`${lc.url(1)}/api/v1/query`, { method: 'POST', headers: { 'content-type': contentType }, body: SEED_QUERY });
      expect(r.status).toBe(200);
      expect(await r.json()).toEqual([{ user_id: '123', timestamp: '2023-01-02T10:00:00.000Z', event: 'login' }]);
    }
    // A write answers { applied: true }.
    const w = await fetch(`${lc.url(3)}/api/v1/query`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: "INSERT INTO users (user_id, timestamp, event) VALUES ('123', '2023-02-01', 'logout')" });
    expect(await w.json()).toEqual({ applied: true });
  });

  it('pages a 20,000-row partition to the end, in clustering order and with ORDER BY DESC', async () => {
    await client.query('CREATE TABLE events (user text, ts bigint, event text, PRIMARY KEY ((user), ts))');
    const N = 20_000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 48 }, async () => {
        while (next < N) {
          const i = next++;
          await client.query('INSERT INTO events (user, ts, event) VALUES (?, ?, ?)', ['wide', i, `e${i}`], { consistency: 'TWO' });
        }
      }),
    );
    for (const [order, first] of [['ASC', 0], ['DESC', N - 1]] as const) {
      let expected = first;
      let pages = 0;
      let state: string | null = null;
      do {
        const r: { status: number; body: Row[]; paging: string | null } = await q(1 + (pages % 3), `SELECT ts, event FROM events WHERE user = ? ORDER BY ts ${order}`, ['wide'], { consistency: 'TWO', pageSize: 3000, ...(state ? { pagingState: state } : {}) });
        expect(r.status).toBe(200);
        for (const row of r.body) {
          expect(row).toEqual({ ts: expected, event: `e${expected}` });
          expected += order === 'ASC' ? 1 : -1;
        }
        state = r.paging;
        pages++;
      } while (state !== null);
      expect(expected).toBe(order === 'ASC' ? N : -1);
      expect(pages).toBe(7);
    }
    expect(await ok(2, 'SELECT COUNT(*) FROM events WHERE user = ?', ['wide'])).toEqual([{ count: N }]);
    expect(await ok(3, 'SELECT ts FROM events WHERE user = ? AND ts >= 100 AND ts < 103 ORDER BY ts DESC', ['wide'])).toEqual([{ ts: 102 }, { ts: 101 }, { ts: 100 }]);
  }, 120_000);

  it('reads IN lists of partitions and scans every partition once by token, across pages', async () => {
    await ok(1, 'CREATE TABLE kvs (k int, c int, v text, PRIMARY KEY ((k), c))');
    for (let k = 0; k < 60; k++) await ok(1 + (k % 3), 'INSERT INTO kvs (k, c, v) VALUES (?, ?, ?)', [k, 1, `v${k}`]);
    expect(await ok(2, 'SELECT k, v FROM kvs WHERE k IN (7, 3, 7, 55)')).toEqual([
      { k: 7, v: 'v7' },
      { k: 3, v: 'v3' },
      { k: 55, v: 'v55' },
    ]);
    const seen: number[] = [];
    let state: string | null = null;
    do {
      const r: { status: number; body: Row[]; paging: string | null } = await q(3, 'SELECT k FROM kvs', undefined, { pageSize: 7, ...(state ? { pagingState: state } : {}) });
      expect(r.status).toBe(200);
      seen.push(...r.body.map((x) => x['k'] as number));
      state = r.paging;
    } while (state !== null);
    expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    // token() bounds split the ring: the two halves hold every partition once.
    const lower = await ok(1, 'SELECT k FROM kvs WHERE token(k) <= 0');
    const upper = await ok(2, 'SELECT k FROM kvs WHERE token(k) > 0');
    expect([...lower, ...upper].map((x) => x['k'] as number).sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    expect(lower.length).toBeGreaterThan(0);
    expect(upper.length).toBeGreaterThan(0);
    // ALLOW FILTERING: a bounded scan with a row filter.
    expect(await ok(1, "SELECT k FROM kvs WHERE v = 'v42' ALLOW FILTERING")).toEqual([{ k: 42 }]);
  });

  it('per-cell last-write-wins: two columns written by two writes both survive; an older timestamp loses', async () => {
    await ok(1, 'CREATE TABLE profile (id text PRIMARY KEY, name text, city text)');
    await ok(1, "UPDATE profile SET name = 'ann' WHERE id = 'p1'");
    await ok(2, "UPDATE profile SET city = 'oslo' WHERE id = 'p1'");
    expect(await ok(3, "SELECT * FROM profile WHERE id = 'p1'")).toEqual([{ id: 'p1', city: 'oslo', name: 'ann' }]);
    await ok(1, "UPDATE profile USING TIMESTAMP 2000 SET name = 'new' WHERE id = 'p2'");
    await ok(2, "UPDATE profile USING TIMESTAMP 1000 SET name = 'old', city = 'rome' WHERE id = 'p2'");
    expect(await ok(3, "SELECT name, city FROM profile WHERE id = 'p2'", undefined, { consistency: 'ALL' })).toEqual([{ name: 'new', city: 'rome' }]);
  });

  it('row and range deletes a replica missed do not come back after a repair', async () => {
    await ok(1, 'CREATE TABLE timeline (u text, n int, v text, PRIMARY KEY ((u), n))');
    for (let n = 0; n < 10; n++) await ok(1, 'INSERT INTO timeline (u, n, v) VALUES (?, ?, ?)', ['t', n, `v${n}`], { consistency: 'ALL' });
    // Cut node3 off; node1 and node2 still make QUORUM.
    const cut: Record<number, string[]> = { 1: ['node3'], 2: ['node3'], 3: ['node1', 'node2'] };
    for (const i of NODES) expect((await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: cut[i] })).status).toBe(200);
    await waitFor('node1 to see node3 down', async () => (await clusterView(lc.url(1))).find((n) => n.id === 'node3')?.liveness === 'down', 30_000);
    await ok(1, 'DELETE FROM timeline WHERE u = ? AND n = 1', ['t']);
    await ok(1, 'DELETE FROM timeline WHERE u = ? AND n >= 5 AND n < 8', ['t']);
    await ok(2, "DELETE v FROM timeline WHERE u = 't' AND n = 9");
    const expected = [0, 2, 3, 4, 8, 9].map((n) => ({ n, v: n === 9 ? null : `v${n}` }));
    expect(await ok(1, "SELECT n, v FROM timeline WHERE u = 't'")).toEqual(expected);
    for (const i of NODES) expect((await http('PUT', `${lc.url(i)}/api/v1/test/partition`, { blocked: [] })).status).toBe(200);
    await waitFor('every node to see every node up', async () => {
      for (const i of NODES) if ((await clusterView(lc.url(i))).some((n) => n.liveness !== 'up')) return false;
      return true;
    }, 30_000);
    // node3 read alone (ONE, coordinated by node3: its own replica) still has what it missed.
    expect((await ok(3, "SELECT n FROM timeline WHERE u = 't'", undefined, { consistency: 'ONE' })).length).toBe(10);
    const report = await http<{ errors: string[]; keysReceived: number }>('POST', `${lc.url(3)}/api/v1/repair`, { table: 'timeline' });
    expect(report.status, JSON.stringify(report.body)).toBe(200);
    expect(report.body.errors).toEqual([]);
    expect(report.body.keysReceived).toBeGreaterThan(0);
    expect(await ok(3, "SELECT n, v FROM timeline WHERE u = 't'", undefined, { consistency: 'ONE' })).toEqual(expected);
    expect(await ok(2, "SELECT n, v FROM timeline WHERE u = 't'", undefined, { consistency: 'ALL' })).toEqual(expected);
    // Every replica now holds the same cells and tombstones: the ranges' Merkle roots agree.
    await waitFor('Merkle roots to agree on every node', async () => {
      const views = await Promise.all(NODES.map(async (i) => (await http<{ ranges: Array<{ start: string; root: string; ready: boolean }> }>('GET', `${lc.url(i)}/api/v1/ranges`)).body.ranges));
      const sig = views.map((v) => v.map((r) => `${r.start}:${r.ready ? r.root : '-'}`).join(','));
      return sig.every((s) => s === sig[0]);
    }, 20_000);
  }, 90_000);

  it('TTL: expired cells read as absent at once and the sweep purges them after gc grace; key-value TTL too', async () => {
    await ok(1, 'CREATE TABLE sessions (id text, n int, tok text, PRIMARY KEY ((id), n)) WITH gc_grace_seconds = 0');
    await ok(1, "INSERT INTO sessions (id, n, tok) VALUES ('s', 1, 'short') USING TTL 1");
    await ok(1, "INSERT INTO sessions (id, n, tok) VALUES ('s', 2, 'long')");
    expect((await ok(2, "SELECT n FROM sessions WHERE id = 's'")).length).toBe(2);
    await waitFor('the TTL cell to expire', async () => (await ok(2, "SELECT n, tok FROM sessions WHERE id = 's'")).length === 1, 10_000, 100);
    expect(await ok(3, "SELECT n, tok FROM sessions WHERE id = 's'", undefined, { consistency: 'ALL' })).toEqual([{ n: 2, tok: 'long' }]);
    // gc_grace_seconds = 0: the expired marker and cell go at the next sweep, once their write is a second old.
    await waitFor('the sweep to purge the expired cells on every node', async () => {
      let purged = 0;
      for (const i of NODES) purged += (await http<{ purged: number }>('POST', `${lc.url(i)}/api/v1/gc`)).body.purged;
      return purged >= 2;
    }, 10_000, 250);
    expect(await ok(3, "SELECT n, tok FROM sessions WHERE id = 's'", undefined, { consistency: 'ALL' })).toEqual([{ n: 2, tok: 'long' }]);

    expect((await http('PUT', `${lc.url(1)}/api/v1/store/kvttl`, { key: 'a', value: 1, ttl: 1 })).status).toBe(200);
    expect((await http('PUT', `${lc.url(1)}/api/v1/store/kvttl`, { key: 'b', value: 2 })).status).toBe(200);
    expect((await http('GET', `${lc.url(2)}/api/v1/store/kvttl/a`)).status).toBe(200);
    await waitFor('the key-value TTL to expire', async () => (await http('GET', `${lc.url(2)}/api/v1/store/kvttl/a`)).status === 404, 10_000, 100);
    expect((await http('GET', `${lc.url(3)}/api/v1/store/kvttl/b`)).body['value']).toBe(2);
    expect((await http('PUT', `${lc.url(1)}/api/v1/store/kvttl`, { key: 'c', value: 1, ttl: -1 })).status).toBe(400);
  });

  it('answers bad input with 400 (syntax position, unknown table or column, type, full scan) or 413, and changes nothing', async () => {
    const syntax = await q<{ error: { message: string; details: Record<string, unknown> } }>(1, 'SELECT * FORM users');
    expect(syntax.status).toBe(400);
    expect(syntax.body.error.message).toMatch(/line 1:10: .*expected FROM/);
    expect(syntax.body.error.details).toMatchObject({ line: 1, column: 10 });
    const unknown = await q<{ error: { message: string } }>(2, 'SELECT * FROM nosuch');
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.message).toMatch(/unconfigured table nosuch/);
    expect((await q<{ error: { message: string } }>(1, 'SELECT nope FROM users')).body.error.message).toMatch(/Undefined column name nope/);
    const type = await q<{ error: { message: string } }>(1, "INSERT INTO users (user_id, timestamp, event) VALUES ('1', 'not a date', 'x')");
    expect(type.status).toBe(400);
    expect(type.body.error.message).toMatch(/"timestamp" of type timestamp/);
    const scan = await q<{ error: { message: string } }>(3, "SELECT * FROM users WHERE event = 'login'");
    expect(scan.status).toBe(400);
    expect(scan.body.error.message).toMatch(/ALLOW FILTERING/);
    expect((await q(1, 'INSERT INTO users (user_id, timestamp, event) VALUES (?, 1, ?)', ['k'.repeat(70_000), 'x'])).status).toBe(413);
    expect((await q(1, "INSERT INTO users (user_id, timestamp, event) VALUES ('big', 1, ?)", ['x'.repeat(1024 * 1024 + 1)])).status).toBe(413);
    expect((await q(1, "UPDATE users SET event = 'x' WHERE user_id = '1' AND timestamp = 1 IF EXISTS")).status).toBe(400);
    expect((await q(1, 'CREATE TABLE c (k int PRIMARY KEY, n counter, v text)')).status).toBe(400);
    // Nothing of the refused statements was written.
    expect(await ok(2, "SELECT * FROM users WHERE user_id IN ('1', 'big')")).toEqual([]);
    // One name space: a wide table's name is not a key-value table, and the other way round.
    expect((await http('PUT', `${lc.url(1)}/api/v1/store/users`, { key: 'a', value: 1 })).status).toBe(409);
    expect((await http('PUT', `${lc.url(1)}/api/v1/store/plainkv`, { key: 'a', value: 1 })).status).toBe(200);
    expect((await q(1, 'CREATE TABLE plainkv (k int PRIMARY KEY)')).status).toBe(409);
  });

  it('a dropped and re-created table shows none of the old rows', async () => {
    await ok(1, 'CREATE TABLE reborn (k int PRIMARY KEY, v text)');
    await ok(1, "INSERT INTO reborn (k, v) VALUES (1, 'old')");
    await ok(2, 'DROP TABLE reborn');
    expect((await q(3, 'SELECT * FROM reborn')).status).toBe(400);
    await ok(3, 'CREATE TABLE reborn (k int PRIMARY KEY, v text)');
    expect(await ok(1, 'SELECT * FROM reborn')).toEqual([]);
  });

  it('IPC query through the client: rows, pages as an async iterator, routing by partition key', async () => {
    await client.query('CREATE TABLE IF NOT EXISTS clientt (k text, c int, v double, b blob, big bigint, PRIMARY KEY ((k), c))');
    for (let c = 0; c < 25; c++) {
      const r = await client.query('INSERT INTO clientt (k, c, v, b, big) VALUES (?, ?, ?, ?, ?)', ['a', c, c + 0.5, Buffer.from([c]), 2n ** 60n + BigInt(c)]);
      expect(r.applied).toBe(true);
    }
    const one = await client.query('SELECT * FROM clientt WHERE k = ? AND c = ?', ['a', 3]);
    expect(one.columns).toEqual(['k', 'c', 'b', 'big', 'v']);
    expect(one.rows).toEqual([{ k: 'a', c: 3, b: '0x03', big: String(2n ** 60n + 3n), v: 3.5 }]);
    const seen: number[] = [];
    let pages = 0;
    for await (const page of client.queryPages('SELECT c FROM clientt WHERE k = ?', ['a'], { pageSize: 10 })) {
      pages++;
      seen.push(...page.rows.map((r) => r['c'] as number));
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => i));
    await expect(client.query('SELECT * FROM clientt WHERE k = ? AND c = ?', ['a', 'x'])).rejects.toMatchObject({ code: 'bad_request' });
  });

  it('ringkv query prints a table (or JSON) and reports errors', async () => {
    const socket = path.join(lc.dir, 'node2', 'ringkv.sock');
    const r = await runCli(['query', '--socket', socket, SEED_QUERY]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(
      [
        ' user_id | timestamp                | event',
        '---------+--------------------------+--------',
        ' 123     | 2023-01-02T10:00:00.000Z | login',
        ' 123     | 2023-02-01T00:00:00.000Z | logout',
        '',
        '(2 rows)',
        '',
      ].join('\n'),
    );
    const j = await runCli(['query', '--socket', socket, '--json', "SELECT event FROM users WHERE user_id = '123'"]);
    expect(j.code, j.stderr).toBe(0);
    expect(JSON.parse(j.stdout)).toEqual([{ event: 'old' }, { event: 'login' }, { event: 'logout' }]);
    const bad = await runCli(['query', '--socket', socket, 'SELECT * FROM nosuch']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stderr).error.message).toMatch(/unconfigured table nosuch/);
    const sh = await runCli(['shell', '--socket', socket, '--history', ''], {
      input: "INSERT INTO users (user_id, timestamp, event)\n  VALUES ('sh', 7, 'x;y');\nSELECT event FROM users\n WHERE user_id = 'sh';\nexit\n",
    });
    expect(sh.code, sh.stderr).toBe(0);
    expect(sh.stdout).toBe(['(applied)', ' event', '-------', ' x;y', '', '(1 row)', ''].join('\n'));
  });
});
