/**
 * Storage format migration on data directories written by ringkv a3f3559 (storage format 1: 32-bit
 * table ids, shards by ring position). The fixture (test/fixtures/format1, made by make-fixture.mjs
 * with that build) holds a node whose join re-dealt its ranges, so about half of its records sit in
 * shards it no longer read, 70 keys have a copy in two shards, and it keeps hints for the second node.
 *
 * Real processes through the CLI: the first node is SIGKILLed twice mid-migration (in each phase;
 * --test-mode with small batches), then started normally; every acknowledged value must read back
 * (including the ones format 1 had hidden, merged with their newer copies), deletes stay deleted,
 * the second node migrates too and receives its hints, and after repair the two nodes' Merkle roots
 * agree. The directory is then checked record by record: every key is format 2, in its placement
 * shard, nothing left in the staging area, and a record of an unknown table kept as an orphan.
 */
import { cpSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, removeDir, ROOT, startNodeProc, tempDir, waitFor, type NodeProc } from '../helpers/proc.js';
import { initHasher } from '../../dist/src/ring/hash.js';
import { openDatabase, DEFAULT_CF, HINTS_CF, shardColumn } from '../../dist/src/storage/db.js';
import { pack, unpack } from 'msgpackr';
import { MetaStore } from '../../dist/src/storage/meta.js';
import { FORMAT_KEY, MIGRATION_PHASE_KEY, ORPHAN_PREFIX, STAGE_PREFIX, STORAGE_FORMAT } from '../../dist/src/storage/migrate.js';
import { readRowsSync } from '../../dist/src/storage/rocks.js';
import { decodeKeyBody, decodeStorageKey, prefixBounds } from '../../dist/src/storage/keys.js';
import { shardOfStorageKey } from '../../dist/src/storage/placement.js';
import { legacyTableIdOf, tableIdOf } from '../../dist/src/router/tables.js';
import { decodeRecord, initVersions } from '../../dist/src/versions/index.js';

const FIXTURE = path.join(ROOT, 'test/fixtures/format1');
interface Expected {
  users: Record<string, unknown>;
  events: Record<string, unknown>;
  deleted: string[];
  hinted: string[];
}
const expected = JSON.parse(readFileSync(path.join(FIXTURE, 'expected.json'), 'utf8')) as Expected;
const SHARDS = { node1: 3, node2: 2 } as const;
/** Every key node1 stores (live, deleted = tombstones, in both tables) and the added orphan. */
const allKeys = new Set([
  ...Object.keys(expected.users).map((k) => `users/${k}`),
  ...expected.deleted.map((k) => `users/${k}`),
  ...Object.keys(expected.events).map((k) => `events/${k}`),
  'orphan',
]);
/** A format-1 key of a table no node ever named (table id 0xdeadbeef), added to node1's shard 1. */
const ORPHAN_KEY = Buffer.concat([Buffer.from('0123456789abcdef', 'hex'), Buffer.from('deadbeef', 'hex'), Buffer.from('lost'), Buffer.of(0, 0)]);
const ORPHAN_VALUE = Buffer.from('format-1 record bytes');

interface Inspection {
  format: number | undefined;
  phase: string | undefined;
  /** Rows per shard family. */
  shardRows: number[];
  staged: number;
  orphans: Array<[Buffer, Buffer]>;
  /** Every shard-family key, decoded as format 2 (with `decodeKeys`). */
  keys: Array<{ shard: number; table: string; key: string; placed: number; versions: number }>;
  /** `table/key` of every record anywhere (shard families in the phase's format, staging area), and `orphan`s. */
  distinct: Set<string>;
}

const NAMES = new Map<string, string>();
function nameOf(idHex: string): string {
  if (NAMES.size === 0) for (const t of ['users', 'events']) NAMES.set(tableIdOf(t), t);
  return NAMES.get(idHex) ?? `?${idHex}`;
}
const LEGACY = new Map<number, string>();
function legacyNameOf(id: number): string {
  if (LEGACY.size === 0) for (const t of ['users', 'events']) LEGACY.set(legacyTableIdOf(t), t);
  return LEGACY.get(id) ?? 'orphan';
}

async function inspect(dataDir: string, shards: number, decodeKeys: boolean): Promise<Inspection> {
  const odb = await openDatabase(dataDir, shards);
  try {
    const meta = new MetaStore(odb);
    const all = (column: string, bounds = {}): Buffer[] => readRowsSync(odb.db, { column: odb.column(column), ...bounds }, 1_000_000);
    const format = meta.get<number>(FORMAT_KEY);
    const phase = meta.get<string>(MIGRATION_PHASE_KEY);
    const legacy = format === undefined && phase === undefined;
    const shardRows: number[] = [];
    const keys: Inspection['keys'] = [];
    const distinct = new Set<string>();
    for (let s = 0; s < shards; s++) {
      const rows = all(shardColumn(s));
      shardRows.push(rows.length / 2);
      for (let j = 0; j < rows.length; j += 2) {
        const k = rows[j]!;
        if (legacy) {
          const t = legacyNameOf(k.readUInt32BE(8));
          distinct.add(t === 'orphan' ? 'orphan' : `${t}/${decodeKeyBody(k, 12).partitionKey.toString()}`);
        } else distinct.add(`${nameOf(decodeStorageKey(k).tableId.toString('hex'))}/${decodeStorageKey(k).partitionKey.toString()}`);
      }
      if (!decodeKeys) continue;
      for (let j = 0; j < rows.length; j += 2) {
        const d = decodeStorageKey(rows[j]!);
        keys.push({ shard: s, table: d.tableId.toString('hex'), key: d.partitionKey.toString(), placed: shardOfStorageKey(rows[j]!, shards), versions: decodeRecord(rows[j + 1]!).length });
      }
    }
    const orphanRows = all(DEFAULT_CF, prefixBounds(ORPHAN_PREFIX));
    const orphans: Array<[Buffer, Buffer]> = [];
    for (let j = 0; j < orphanRows.length; j += 2) orphans.push([orphanRows[j]!, orphanRows[j + 1]!]);
    if (orphans.length > 0) distinct.add('orphan');
    const stagedRows = all(DEFAULT_CF, prefixBounds(STAGE_PREFIX));
    for (let j = 0; j < stagedRows.length; j += 2) {
      const d = decodeStorageKey(stagedRows[j]!.subarray(STAGE_PREFIX.length));
      distinct.add(`${nameOf(d.tableId.toString('hex'))}/${d.partitionKey.toString()}`);
    }
    return { format, phase, shardRows, staged: stagedRows.length / 2, orphans, keys, distinct };
  } finally {
    await odb.db.close();
  }
}

describe('migrating format-1 data directories (a3f3559 fixture, real nodes, kill -9 midway)', () => {
  let dir: string;
  let n1: NodeProc | undefined;
  let n2: NodeProc | undefined;
  const d1 = (): string => path.join(dir, 'node1');
  const d2 = (): string => path.join(dir, 'node2');
  const get = (n: NodeProc, table: string, key: string, q: string): Promise<{ status: number; body: { value?: unknown; siblings?: unknown[] } }> =>
    http('GET', `${n.url}/api/v1/store/${table}/${key}?${q}`);

  beforeAll(async () => {
    await initHasher();
    await initVersions();
    dir = tempDir('ringkv-migrate-');
    cpSync(FIXTURE, dir, { recursive: true });
    // One record of a table nobody can name: the migration must keep it, not drop or misfile it.
    const odb = await openDatabase(d1(), SHARDS.node1);
    const { SyncWriteBatch } = await import('../../dist/src/storage/rocks.js');
    const b = new SyncWriteBatch(odb.db, odb.column(shardColumn(1)));
    b.put(ORPHAN_KEY, ORPHAN_VALUE);
    b.commit(true);
    // The fixture's hints were stored when it was made; past maxHintWindowMs (3 h) node1 would
    // expire them at start instead of replaying them. The test is about their format, not their
    // age: stamp them as stored now (the value bytes are otherwise left as format 1 wrote them).
    const hints = new SyncWriteBatch(odb.db, odb.column(HINTS_CF));
    const hintRows = readRowsSync(odb.db, { column: odb.column(HINTS_CF) }, 1_000_000);
    for (let j = 0; j < hintRows.length; j += 2) hints.put(hintRows[j]!, pack({ ...(unpack(hintRows[j + 1]!) as object), createdAt: Date.now() }));
    hints.commit(true);
    expect(hintRows.length / 2).toBe(expected.hinted.length);
    await odb.db.close();
  });
  afterAll(async () => {
    await Promise.all([n1?.kill('SIGTERM'), n2?.kill('SIGTERM')]);
    if (dir) removeDir(dir);
  });

  it('the fixture is format 1 with hidden copies: records in every shard family, no format recorded', async () => {
    const before = await inspect(d1(), SHARDS.node1, false);
    expect(before.format).toBeUndefined();
    expect(before.shardRows.every((n) => n > 0)).toBe(true);
    // 370 keys acknowledged + 70 second copies + the orphan.
    expect(before.shardRows.reduce((a, b) => a + b, 0)).toBe(441);
    expect(before.distinct).toEqual(allKeys);
  });

  it('a node killed (SIGKILL) in either phase resumes its migration and loses nothing', async () => {
    const killedAt = async (after: number): Promise<Inspection> => {
      const node = await startNodeProc({ dataDir: d1(), shards: SHARDS.node1, args: ['--test-mode'], waitReady: false, env: { RINGKV_TEST_MIGRATION_BATCH: '25', RINGKV_TEST_MIGRATION_KILL_AFTER: String(after) } });
      const code = await Promise.race([node.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000))]);
      if (code !== -1) await node.kill('SIGKILL');
      expect(code).toBe(-1); // ended by the signal, not by an error exit
      return inspect(d1(), SHARDS.node1, false);
    };
    // 441 records in batches of 25: ~18 staging batches, then ~15 placing ones.
    const inStage = await killedAt(4);
    expect(inStage.format).toBeUndefined();
    expect(inStage.phase).toBeUndefined(); // still staging
    expect(inStage.staged).toBeGreaterThan(0);
    expect(inStage.shardRows.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    // Nothing lost: every key (and the orphan) is still somewhere, in its shard family or staged.
    expect(inStage.distinct).toEqual(allKeys);

    const inPlace = await killedAt(20);
    expect(inPlace.format).toBeUndefined();
    expect(inPlace.phase).toBe('place');
    expect(inPlace.staged).toBeGreaterThan(0);
    expect(inPlace.shardRows.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(inPlace.orphans).toHaveLength(1);
    // In the place phase every copy is merged: placed + staged = the 370 distinct keys, each once.
    expect(inPlace.shardRows.reduce((a, b) => a + b, 0) + inPlace.staged).toBe(370);
    expect(inPlace.distinct).toEqual(allKeys);
  });

  it('then serves every acknowledged value, including the ones format 1 had hidden; deletes stay deleted', async () => {
    n1 = await startNodeProc({ dataDir: d1(), shards: SHARDS.node1 });
    const wrong: string[] = [];
    for (const [table, values] of [['users', expected.users], ['events', expected.events]] as const) {
      for (const [key, value] of Object.entries(values)) {
        for (const q of ['replica=local', 'consistency=ONE']) {
          const r = await get(n1, table, key, q);
          if (r.status !== 200 || JSON.stringify(r.body.value) !== JSON.stringify(value)) wrong.push(`${table}/${key}?${q}: ${r.status} ${JSON.stringify(r.body)}`);
        }
      }
    }
    for (const key of expected.deleted) if ((await get(n1, 'users', key, 'replica=local')).status !== 404) wrong.push(`users/${key} resurrected`);
    expect(wrong).toEqual([]);
    // A scan sees exactly the live keys, once each.
    const scan = await http<{ rows: Array<{ key: string }> }>('GET', `${n1.url}/api/v1/store/users?start=u-0&limit=1000&consistency=ONE`);
    expect(scan.status).toBe(200);
    expect(scan.body.rows.map((r) => r.key).sort()).toEqual(Object.keys(expected.users).sort());
  });

  it('the second node migrates too, receives the hints node1 kept for it, and repair makes the roots agree', async () => {
    n2 = await startNodeProc({ dataDir: d2(), shards: SHARDS.node2, args: ['--seeds', `127.0.0.1:${n1!.peerPort}`] });
    // Hints stored by format 1 (their values carry the old table id) replay to node2 unchanged.
    await waitFor(
      'node1 to replay its hints to node2',
      async () => {
        for (const key of expected.hinted) if ((await get(n2!, 'users', key, 'replica=local')).status !== 200) return false;
        return true;
      },
      30_000,
      200,
    );
    const rep = await http<{ errors: string[]; rangesCompared: number }>('POST', `${n1!.url}/api/v1/repair`, {});
    expect(rep.body.errors).toEqual([]);
    expect(rep.body.rangesCompared).toBeGreaterThan(0);
    await waitFor('equal roots on both nodes', async () => {
      const [a, b] = await Promise.all([n1!, n2!].map(async (n) => (await http<{ ranges: Array<{ start: string; end: string; root: string; ready: boolean }> }>('GET', `${n.url}/api/v1/ranges`)).body.ranges));
      return a!.every((r) => r.ready) && JSON.stringify(a!.map((r) => [r.start, r.end, r.root])) === JSON.stringify(b!.map((r) => [r.start, r.end, r.root]));
    });
    for (const [key, value] of Object.entries(expected.events)) {
      const r = await get(n2!, 'events', key, 'consistency=ALL');
      expect(JSON.stringify(r.body.value)).toBe(JSON.stringify(value));
    }
  });

  it('leaves every record in format 2 in its placement shard, nothing staged, the orphan kept; a restart migrates nothing', async () => {
    await Promise.all([n1!.kill('SIGTERM'), n2!.kill('SIGTERM')]);
    const after = await inspect(d1(), SHARDS.node1, true);
    expect(after.format).toBe(STORAGE_FORMAT);
    expect(after.staged).toBe(0);
    const ids = new Map([tableIdOf('users'), tableIdOf('events')].map((id, i) => [id, ['users', 'events'][i]!]));
    expect(after.keys.filter((k) => !ids.has(k.table) || k.shard !== k.placed)).toEqual([]);
    // users (live + deleted: tombstones are records too) and events, each key once.
    const seen = after.keys.map((k) => `${ids.get(k.table)}/${k.key}`);
    expect(new Set(seen).size).toBe(seen.length);
    expect(new Set(seen)).toEqual(new Set([...Object.keys(expected.users).map((k) => `users/${k}`), ...expected.deleted.map((k) => `users/${k}`), ...Object.keys(expected.events).map((k) => `events/${k}`)]));
    expect(after.orphans).toHaveLength(1);
    expect(after.orphans[0]![0].subarray(ORPHAN_PREFIX.length + 1).equals(ORPHAN_KEY)).toBe(true);
    expect(after.orphans[0]![1].equals(ORPHAN_VALUE)).toBe(true);

    n1 = await startNodeProc({ dataDir: d1(), shards: SHARDS.node1, args: ['--log-level', 'info'] });
    expect((await get(n1, 'users', 'n-7', 'replica=local')).status).toBe(200);
    expect(n1.output()).not.toMatch(/migrating the data directory/);
  });
});
