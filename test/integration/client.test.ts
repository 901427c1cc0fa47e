import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { localCluster, type LocalCluster } from '../helpers/cluster.js';
import { http, removeDir, runCli, waitFor } from '../helpers/proc.js';

type Body = Record<string, unknown>;

async function coordinated(url: string): Promise<{ writes: number; reads: number }> {
  const m = await http('GET', `${url}/api/v1/metrics`);
  const r = m.body['router'] as Body;
  return { writes: r['coordinatedWrites'] as number, reads: r['coordinatedReads'] as number };
}

/** `ringkv ingest`'s summary: the JSON object on the last line of its stdout. */
function summaryOf(stdout: string): Record<string, unknown> {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  expect(last, stdout).toMatch(/^\{.*\}$/);
  return JSON.parse(last) as Record<string, unknown>;
}

/** The line numbers ingest reported as bad (`line N: why` on stderr), in order. */
function reportedLines(stderr: string): number[] {
  return [...stderr.matchAll(/^line (\d+): /gm)].map((m) => Number(m[1]));
}

describe('token-aware client and ingest against 3 real nodes', () => {
  let lc: LocalCluster;
  const sock = (i: number): string => path.join(lc.dir, `node${i}`, 'ringkv.sock');

  beforeAll(async () => {
    lc = await localCluster(3);
    await lc.start();
  });
  afterAll(async () => {
    await lc?.stop();
    if (lc) removeDir(lc.dir);
  });

  it('sends each key straight to one of its replicas (zero-hop)', async () => {
    // n=1: each key has exactly one replica, so the coordinator counters prove where it went.
    expect((await http('PUT', `${lc.url(1)}/api/v1/tables/single`, { conflicts: 'lww', n: 1 })).status).toBe(200);
    await waitFor('table schema gossiped', async () => {
      for (const i of [2, 3]) if ((await http('GET', `${lc.url(i)}/api/v1/tables/single`)).status !== 200) return false;
      return true;
    });
    const client = await RingkvClient.connect({ socket: sock(1) });
    try {
      const before = await Promise.all([1, 2, 3].map((i) => coordinated(lc.url(i))));
      const ring = client.currentRing!;
      const expected = [0, 0, 0];
      const KEYS = 300;
      for (let i = 0; i < KEYS; i++) {
        const key = `zk${i}`;
        const owner = ring.nodes[ring.replicasFor(key)[0]!]!.id;
        expected[Number(owner.slice(4)) - 1]!++;
        await client.put('single', key, `v${i}`);
      }
      const after = await Promise.all([1, 2, 3].map((i) => coordinated(lc.url(i))));
      const got = after.map((a, i) => a.writes - before[i]!.writes);
      expect(got).toEqual(expected);
      expect(expected.every((e) => e > 0)).toBe(true);
      for (let i = 0; i < KEYS; i += 37) expect((await client.get('single', `zk${i}`)).value?.toString()).toBe(`v${i}`);
    } finally {
      await client.close();
    }
  });

  it('routes around a node killed mid-run', async () => {
    const client = await RingkvClient.connect({ socket: sock(1) }, { timeoutMs: 3000 });
    try {
      const ok: number[] = [];
      const failed: string[] = [];
      let killedAt = -1;
      for (let i = 0; i < 600; i++) {
        if (i === 200) {
          killedAt = i;
          await lc.kill9(2);
        }
        try {
          await client.put('kv', `rk${i}`, `v${i}`, { w: 2 });
          ok.push(i);
        } catch (e) {
          failed.push(`${i}: ${(e as Error).message}`);
        }
      }
      // Only a write caught in flight on the dying connection may fail; everything after succeeds.
      expect(failed.length).toBeLessThanOrEqual(1);
      expect(failed.every((f) => f.startsWith(`${killedAt}:`))).toBe(true);
      for (const i of ok.filter((_, k) => k % 25 === 0)) {
        expect((await client.get('kv', `rk${i}`, { r: 2 })).value?.toString()).toBe(`v${i}`);
      }
    } finally {
      await client.close();
      await lc.start();
    }
  });

  it('ingests a 100k-line NDJSON file; every row is readable afterwards', async () => {
    const file = path.join(lc.dir, 'rows.ndjson');
    const ROWS = 100_000;
    const lines: string[] = [];
    for (let i = 0; i < ROWS; i++) lines.push(JSON.stringify({ key: `row${i}`, value: { i } }));
    writeFileSync(file, lines.join('\n') + '\n');
    const t0 = Date.now();
    const r = await runCli(['ingest', 'ingested', file, '--socket', sock(1), '--batch', '500', '--concurrency', '8'], { timeoutMs: 240_000 });
    const secs = (Date.now() - t0) / 1000;
    expect(r.code, r.stderr).toBe(0);
    console.log(`ingest of ${ROWS} rows into 3 nodes (N=3): ${secs.toFixed(1)} s wall; summary: ${r.stdout.trim().split('\n').at(-1)}`);
    // The summary (stdout's last line, JSON) counts every row written, none failed.
    expect(summaryOf(r.stdout)).toMatchObject({ table: 'ingested', rows: ROWS, written: ROWS, errors: 0, stopped: false });

    const client = await RingkvClient.connect({ socket: sock(2) });
    try {
      const missing: string[] = [];
      for (let start = 0; start < ROWS; start += 1000) {
        const items = Array.from({ length: 1000 }, (_, k) => ({ op: 'get' as const, table: 'ingested', key: `row${start + k}`, r: 1 }));
        const res = await client.batch(items);
        res.forEach((x, k) => {
          const ok = x.ok && 'found' in x && x.found && JSON.parse(Buffer.from((x as { value: Uint8Array }).value).toString()).i === start + k;
          if (!ok) missing.push(`row${start + k}`);
        });
      }
      expect(missing.slice(0, 10)).toEqual([]);
    } finally {
      await client.close();
    }
  });

  it('reports bad lines by number and never drops them silently', async () => {
    const file = path.join(lc.dir, 'bad.ndjson');
    writeFileSync(file, ['{"key":"a","value":1}', 'not json', '{"key":"b","value":2}', '{"value":3}', '{"key":"c","value":3}'].join('\n') + '\n');
    // Exit 1 (rows failed), not a crash: the summary is printed and counts the two bad lines.
    const skip = await runCli(['ingest', 'badfile', file, '--socket', sock(1), '--on-error', 'skip']);
    expect(skip.code, skip.stderr).toBe(1);
    expect(summaryOf(skip.stdout)).toMatchObject({ rows: 5, written: 3, errors: 2, stopped: false });
    expect(reportedLines(skip.stderr)).toEqual([2, 4]);
    for (const [k, v] of [['a', 1], ['b', 2], ['c', 3]] as const) expect((await http('GET', `${lc.url(1)}/api/v1/store/badfile/${k}`)).body['value']).toBe(v);
    const stop = await runCli(['ingest', 'badfile2', file, '--socket', sock(1), '--on-error', 'stop']);
    expect(stop.code, stop.stderr).toBe(1);
    expect(summaryOf(stop.stdout)).toMatchObject({ rows: 2, written: 0, errors: 1, stopped: true });
    expect(reportedLines(stop.stderr)).toEqual([2]);
    expect(stop.stderr).toMatch(/^stopping: 1 valid rows read before the error \(lines 1-1\) were not written$/m);
    expect((await http('GET', `${lc.url(1)}/api/v1/store/badfile2/c`)).status).toBe(404);
  });
});
