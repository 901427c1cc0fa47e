/**
 * The on-disk storage format, and the migration of data directories written by an older format.
 * Runs at open, on the main thread, before the shard workers and the hints actor start (nothing
 * else touches the families while it runs).
 *
 * Format 1 (ringkv up to a3f3559): shard-family keys `token | table id (uint32 BE: the low 32 bits
 * of xxh64 of the name) | escaped partition key | 0x00 0x00 | clustering`, placed in the shard the
 * ring layout assigned to the key's range (round-robin per node). Two table names could share an
 * id (`cfyd` and `c161t`), and a ring change re-dealt ranges to other shards, so a key's records
 * may sit in any shard family, and after a join in two (the older copy unreadable).
 * Format 2: 16-byte table ids (tableIdOf), and every key in the family of its token's placement
 * shard (placement.ts). Recorded in `meta` as `storage/format`; a directory without it that holds
 * data is format 1.
 *
 * The migration rewrites every record in two phases, each in bounded batches that RocksDB commits
 * atomically across families (WAL fsynced per batch):
 *   1. `stage`: every format-1 key of every shard family is decoded, given its table's new id and
 *      staged under STAGE_PREFIX in the default family, and deleted from its shard family in the
 *      same batch. Two staged copies of one key (the same key in two shard families) are merged
 *      with the table's conflict mode, so data hidden by an earlier ring change is found again. A
 *      key whose table this node cannot name (no definition in `meta`, none gossiped by a known
 *      member) cannot get a new id: it is kept, bytes unchanged, under ORPHAN_PREFIX in the default
 *      family (logged with its old id) rather than dropped.
 *   2. `place`: every staged key moves into the family of its placement shard, deleted from the
 *      staging area in the same batch. Then `storage/format` becomes 2.
 * Why staging: format-1 and format-2 keys cannot be told apart by their bytes (a 16-byte id may
 * look like a 4-byte id followed by a partition key), so they must never share a family. With the
 * staging area, a shard family holds only format-1 keys during phase 1 and only format-2 keys in
 * phase 2, and the phase is recorded in `meta` (`storage/migration`) before phase 2 starts. A kill
 * at any point leaves every record in exactly one place (each batch moves records atomically), and
 * the next start resumes the recorded phase from the start of each family: what was done is gone
 * from the source, so it is not redone.
 *
 * Hints need nothing: hint keys are `target \0 seq` and hint values name their table by name (the
 * id is derived again at replay; the 32-bit id old values carry is ignored).
 *
 * Table definitions in `meta` still carry their format-1 numeric id; TableRegistry.load recomputes
 * ids from names. Merkle trees are in memory only and rebuilt at start.
 */
import type { Logger } from '../log/logger.js';
import { legacyTableIdOf, tableIdOf } from '../router/tables.js';
import { invariant } from '../util/errors.js';
import { decodeRecord, encodeRecord, mergeVersions, type MergeMode } from '../versions/index.js';
import { DEFAULT_CF, HINTS_CF, shardColumn, StorageError, type OpenedDatabase } from './db.js';
import { decodeKeyBody, encodeStorageKey, prefixBounds } from './keys.js';
import type { MetaStore } from './meta.js';
import { shardOfStorageKey } from './placement.js';
import { readRowsSync, SyncWriteBatch, type ColumnHandle } from './rocks.js';

export const STORAGE_FORMAT = 2;
export const FORMAT_KEY = 'storage/format';
export const MIGRATION_PHASE_KEY = 'storage/migration';
/** Staged format-2 keys during a migration (default family). */
export const STAGE_PREFIX = Buffer.from('ringkv-migrate-v2\0', 'latin1');
/** Format-1 records whose table could not be named: kept as they were (default family). */
export const ORPHAN_PREFIX = Buffer.from('ringkv-orphan-v1\0', 'latin1');
/** Format-1 storage keys: 8-byte token + 4-byte table id. */
const V1_HEADER_BYTES = 12;

export interface MigrationOptions {
  shards: number;
  maxSiblings: number;
  log: Logger;
  /** Records per atomic batch (default 2,000). */
  batchRecords?: number;
  /** Key + value bytes per batch (default 4 MiB; a single larger record still goes alone). */
  batchBytes?: number;
  /** Called after every committed batch: tests stop a migration midway here. */
  afterBatch?: (phase: MigrationPhase, batches: number) => void;
}

export type MigrationPhase = 'stage' | 'place';

export interface MigrationReport {
  fromFormat: number;
  /** Format-1 records rewritten (each staged, then placed). */
  records: number;
  /** Keys found in more than one shard family, whose copies were merged. */
  merged: number;
  /** Records kept under ORPHAN_PREFIX because their table could not be named. */
  orphans: number;
  batches: number;
  durationMs: number;
}


interface NamedTable {
  name: string;
  /** Format 1 predates crdt tables: its tables hold version records only. */
  conflicts: MergeMode;
}

/**
 * Bring the data directory to STORAGE_FORMAT: record it on a fresh directory, migrate a format-1
 * one (resuming an interrupted migration), refuse a newer one. Returns the report of a migration
 * that ran, else null.
 */
export async function prepareStorage(odb: OpenedDatabase, meta: MetaStore, opts: MigrationOptions): Promise<MigrationReport | null> {
  const format = meta.get<number>(FORMAT_KEY);
  if (format === STORAGE_FORMAT) return null;
  if (format !== undefined && (!Number.isInteger(format) || format > STORAGE_FORMAT || format < 1)) {
    throw new StorageError(`data directory ${odb.dir} has storage format ${String(format)}, written by a newer ringkv than this one (format ${STORAGE_FORMAT}); run that version, or start with a new data directory`);
  }
  if (format === undefined && meta.get('node/id') === undefined && isFresh(odb)) {
    meta.set(FORMAT_KEY, STORAGE_FORMAT);
    return null;
  }
  const { own, gossiped } = await tablesFromMeta(meta);
  return migrateFromV1(odb, meta, legacyTableMap(own, gossiped), opts);
}

function isFresh(odb: OpenedDatabase): boolean {
  const empty = (c: ColumnHandle): boolean => readRowsSync(odb.db, { column: c }, 1).length === 0;
  for (let i = 0; i < odb.shards; i++) if (!empty(odb.column(shardColumn(i)))) return false;
  return empty(odb.column(HINTS_CF)) && empty(odb.column(DEFAULT_CF));
}

/**
 * Format-1 table id -> the table. Names come from this node's definitions (`table/*`) and from the
 * schemas of the members it last knew (`cluster/members`): a replica may hold keys of a table it
 * learned of only through gossip. When two names share a format-1 id (the collision format 2
 * removes), this node's own definition names it; between two gossiped names it cannot choose, and
 * the id's records are kept as orphans.
 */
export function legacyTableMap(own: ReadonlyArray<NamedTable>, gossiped: ReadonlyArray<NamedTable>): Map<number, NamedTable | null> {
  const out = new Map<number, NamedTable | null>();
  for (const t of own) out.set(legacyTableIdOf(t.name), { name: t.name, conflicts: t.conflicts });
  const fromGossip = new Map<number, NamedTable | null>();
  for (const t of gossiped) {
    const id = legacyTableIdOf(t.name);
    if (out.has(id)) continue;
    const seen = fromGossip.get(id);
    if (seen === undefined) fromGossip.set(id, { name: t.name, conflicts: t.conflicts });
    else if (seen !== null && seen.name !== t.name) fromGossip.set(id, null); // ambiguous
  }
  for (const [id, t] of fromGossip) out.set(id, t);
  return out;
}

function isNamedTable(x: unknown): x is NamedTable {
  const t = x as Partial<NamedTable> | null;
  return t !== null && typeof t === 'object' && typeof t.name === 'string' && (t.conflicts === 'vclock' || t.conflicts === 'lww');
}

async function tablesFromMeta(meta: MetaStore): Promise<{ own: NamedTable[]; gossiped: NamedTable[] }> {
  const own = (await meta.list<unknown>('table/')).map(([, t]) => t).filter(isNamedTable);
  const gossiped: NamedTable[] = [];
  const members = meta.get<Array<{ info?: { schema?: unknown } }>>('cluster/members') ?? [];
  for (const m of Array.isArray(members) ? members : []) {
    const schema = m?.info?.schema;
    if (typeof schema !== 'string') continue;
    try {
      const defs = JSON.parse(schema) as unknown;
      if (Array.isArray(defs)) for (const d of defs) if (isNamedTable(d)) gossiped.push(d);
    } catch {
      // An unreadable gossiped schema names nothing; its tables' keys (if any) become orphans.
    }
  }
  return { own, gossiped };
}

function migrateFromV1(odb: OpenedDatabase, meta: MetaStore, tables: Map<number, NamedTable | null>, opts: MigrationOptions): MigrationReport {
  const t0 = performance.now();
  invariant(opts.shards === odb.shards, 'migration runs with the directory\'s shard count');
  const batchRecords = opts.batchRecords ?? 2000;
  const batchBytes = opts.batchBytes ?? 4 * 1024 * 1024;
  invariant(batchRecords >= 1 && batchBytes >= 1, 'migration batch bounds must be positive');
  const report: MigrationReport = { fromFormat: 1, records: 0, merged: 0, orphans: 0, batches: 0, durationMs: 0 };
  const staging = odb.column(DEFAULT_CF);
  const batch = new SyncWriteBatch(odb.db, staging);
  const commit = (phase: MigrationPhase): void => {
    batch.commit(true);
    report.batches++;
    if (report.batches % 100 === 0) opts.log.info({ phase, batches: report.batches, records: report.records }, 'storage migration progress');
    opts.afterBatch?.(phase, report.batches);
  };
  let phase = meta.get<MigrationPhase>(MIGRATION_PHASE_KEY) ?? 'stage';
  opts.log.warn({ dir: odb.dir, phase, from: 1, to: STORAGE_FORMAT }, 'migrating the data directory to the current storage format (do not start an older ringkv on it afterwards)');

  if (phase === 'stage') {
    const newIds = new Map<string, Buffer>();
    const newIdOf = (name: string): Buffer => {
      let id = newIds.get(name);
      if (id === undefined) newIds.set(name, (id = Buffer.from(tableIdOf(name), 'hex')));
      return id;
    };
    const orphanIds = new Set<number>();
    for (let i = 0; i < odb.shards; i++) {
      const column = odb.column(shardColumn(i));
      let after: Buffer | null = null;
      for (;;) {
        const chunk = readBounded(odb, column, after, batchRecords, batchBytes);
        if (chunk.length === 0) break;
        // Staged state of this batch: staged key (latin1) -> record bytes, read once per key.
        const staged = new Map<string, { key: Buffer; record: Buffer }>();
        const pendingGets: Buffer[] = [];
        const decodedRows: Array<{ oldKey: Buffer; value: Buffer; stageKey: Buffer | null; mode: MergeMode }> = [];
        for (let j = 0; j < chunk.length; j += 2) {
          const oldKey = chunk[j]!;
          const value = chunk[j + 1]!;
          after = oldKey;
          const t = oldKey.length >= V1_HEADER_BYTES ? tables.get(oldKey.readUInt32BE(8)) : undefined;
          if (t === undefined || t === null) {
            if (oldKey.length >= V1_HEADER_BYTES) orphanIds.add(oldKey.readUInt32BE(8));
            decodedRows.push({ oldKey, value, stageKey: null, mode: 'vclock' });
            continue;
          }
          const { partitionKey, clustering } = decodeKeyBody(oldKey, V1_HEADER_BYTES);
          const newKey = encodeStorageKey(oldKey.readUInt32BE(0), oldKey.readUInt32BE(4), newIdOf(t.name), partitionKey, clustering);
          const stageKey = Buffer.concat([STAGE_PREFIX, newKey]);
          decodedRows.push({ oldKey, value, stageKey, mode: t.conflicts });
          pendingGets.push(stageKey);
        }
        const existing = pendingGets.length > 0 ? odb.db._getManySync(pendingGets, { column: staging }) : [];
        pendingGets.forEach((k, j) => {
          const v = existing[j];
          if (v !== undefined) staged.set(k.toString('latin1'), { key: k, record: v });
        });
        for (const r of decodedRows) {
          if (r.stageKey === null) {
            batch.putIn(staging, Buffer.concat([ORPHAN_PREFIX, Buffer.from([i]), r.oldKey]), r.value);
            batch.delIn(column, r.oldKey);
            report.orphans++;
            continue;
          }
          const s = r.stageKey.toString('latin1');
          const prev = staged.get(s);
          let record = r.value;
          if (prev !== undefined) {
            // The same key in two shard families: keep what both copies hold.
            record = Buffer.from(encodeRecord(mergeVersions(r.mode, decodeRecord(prev.record), decodeRecord(r.value), opts.maxSiblings)));
            report.merged++;
          }
          staged.set(s, { key: r.stageKey, record });
          batch.delIn(column, r.oldKey);
          report.records++;
        }
        for (const v of staged.values()) batch.putIn(staging, v.key, v.record);
        commit('stage');
      }
    }
    if (orphanIds.size > 0) {
      opts.log.error(
        { orphans: report.orphans, oldTableIds: [...orphanIds].slice(0, 20) },
        `storage migration: ${report.orphans} records of tables this node cannot name were kept under the prefix ${JSON.stringify(ORPHAN_PREFIX.toString('latin1'))} in the default column family; they are not served`,
      );
    }
    meta.set(MIGRATION_PHASE_KEY, 'place');
    phase = 'place';
  }

  invariant(phase === 'place', `unknown storage migration phase ${String(phase)}`);
  const bounds = prefixBounds(STAGE_PREFIX);
  let after: Buffer | null = null;
  for (;;) {
    const chunk = readBoundedRange(odb, staging, bounds, after, batchRecords, batchBytes);
    if (chunk.length === 0) break;
    for (let j = 0; j < chunk.length; j += 2) {
      const stageKey = chunk[j]!;
      after = stageKey;
      const key = stageKey.subarray(STAGE_PREFIX.length);
      batch.putIn(odb.column(shardColumn(shardOfStorageKey(key, odb.shards))), key, chunk[j + 1]!);
      batch.delIn(staging, stageKey);
    }
    commit('place');
  }
  meta.set(FORMAT_KEY, STORAGE_FORMAT);
  meta.set(MIGRATION_PHASE_KEY, 'done');
  report.durationMs = Math.round(performance.now() - t0);
  opts.log.warn({ report }, 'storage migration done');
  return report;
}

/** Up to `records` rows (and about `bytes`) of a whole family after `after`, read in small chunks. */
function readBounded(odb: OpenedDatabase, column: ColumnHandle, after: Buffer | null, records: number, bytes: number): Buffer[] {
  return readBoundedRange(odb, column, {}, after, records, bytes);
}

function readBoundedRange(odb: OpenedDatabase, column: ColumnHandle, bounds: { gte?: Buffer; lt?: Buffer }, after: Buffer | null, records: number, bytes: number): Buffer[] {
  const out: Buffer[] = [];
  let size = 0;
  let cursor = after;
  while (out.length / 2 < records && (out.length === 0 || size < bytes)) {
    const want = Math.min(256, records - out.length / 2);
    const range = { column, ...(cursor !== null ? { gt: cursor } : bounds.gte ? { gte: bounds.gte } : {}), ...(bounds.lt ? { lt: bounds.lt } : {}) };
    const rows = readRowsSync(odb.db, range, want);
    for (let j = 0; j + 1 < rows.length; j += 2) {
      out.push(rows[j]!, rows[j + 1]!);
      size += rows[j]!.length + rows[j + 1]!.length;
      cursor = rows[j]!;
      if (size >= bytes) break;
    }
    if (rows.length / 2 < want || size >= bytes) break;
  }
  return out;
}
