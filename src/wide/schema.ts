/**
 * Wide-column table schemas: built from CREATE TABLE, changed by ALTER TABLE ADD and DROP
 * TABLE, serialized for gossip and the meta family, and merged so that concurrent schema
 * changes converge on every node whatever order gossip delivers them in.
 *
 * Incarnations. A table name can be dropped and created again; each CREATE makes a new
 * incarnation named by (generation, createdAt, createdBy). Storage must key data by the
 * incarnation (incarnationKey), not by the name alone, or a re-created table would show the
 * dropped table's rows (Cassandra gives each incarnation a new table id for the same reason).
 *
 * Convergence (mergeSchemas), consistent with the key-value rule in src/router/tables.ts
 * ("earliest creation wins, it defined how the first data was written; then the later update"):
 *  1. the higher generation wins outright (a CREATE after a DROP supersedes what was dropped);
 *  2. in one generation, concurrent CREATEs: the earlier createdAt wins, then the smaller
 *     createdBy (node id), so one incarnation survives everywhere;
 *  3. in one incarnation, changes join: the added columns are a union (one name added twice
 *     concurrently with different types: the earlier addedAt wins, then the type name), the
 *     drop flag is sticky, updatedAt is the maximum.
 * Rule 3 is a join-semilattice and 1-2 a total order on incarnations, so merge is
 * commutative, associative and idempotent (property-tested). Columns added to an incarnation
 * that loses rule 2 are lost with it; the CREATE that lost is told so on its next read.
 *
 * Pure module: no I/O. The caller supplies clocks and the node id.
 */
import type { AlterTableAdd, CqlType, CreateTable, DropTable, Order } from '../cql/ast.js';
import { CQL_TYPES } from '../cql/ast.js';
import { badRequest, RingkvError } from '../util/errors.js';
import type { ClusteringColumn } from './order-encoding.js';
import type { KeyColumn } from './partition-key.js';

export const SCHEMA_FORMAT = 1;

export const WIDE_LIMITS = Object.freeze({
  /** Columns of one table (partition key, clustering and regular). */
  maxColumnsPerTable: 512,
  /** Cassandra's table-name rule: letters, digits and underscores, at most 48. */
  tableNameRe: /^[A-Za-z0-9_]{1,48}$/,
  /** Cassandra's maximum TTL (20 years). */
  maxTtlSeconds: 630_720_000,
  /** Replication factor range (as for key-value tables). */
  maxN: 5,
});

export interface RegularColumn {
  name: string;
  type: CqlType;
  /** When ALTER TABLE ADD (or CREATE) defined it (ms); orders concurrent adds of one name. */
  addedAt: number;
}

export interface WideTableSchema {
  format: typeof SCHEMA_FORMAT;
  name: string;
  /** 1 for the first CREATE of the name; a CREATE after a DROP takes the dropped generation + 1. */
  generation: number;
  createdAt: number;
  createdBy: string;
  partitionKey: KeyColumn[];
  clustering: ClusteringColumn[];
  /** Sorted by name (canonical). */
  regular: RegularColumn[];
  defaultTtlSeconds: number;
  n: number;
  gcGraceSeconds: number;
  dropped: boolean;
  updatedAt: number;
}

export type ColumnKind = 'partition' | 'clustering' | 'regular';

export interface ResolvedColumn {
  name: string;
  type: CqlType;
  kind: ColumnKind;
  /** Index within its kind (partition key / clustering position). */
  position: number;
}

/** Every column in CQL's `SELECT *` order: partition key, clustering, then regular columns by name. */
export function allColumns(s: WideTableSchema): ResolvedColumn[] {
  return [
    ...s.partitionKey.map((c, i) => ({ name: c.name, type: c.type, kind: 'partition' as const, position: i })),
    ...s.clustering.map((c, i) => ({ name: c.name, type: c.type, kind: 'clustering' as const, position: i })),
    ...s.regular.map((c, i) => ({ name: c.name, type: c.type, kind: 'regular' as const, position: i })),
  ];
}

/** The column named `name`, or a 400 with Cassandra's message. */
export function columnOf(s: WideTableSchema, name: string): ResolvedColumn {
  const i = s.partitionKey.findIndex((c) => c.name === name);
  if (i >= 0) return { name, type: s.partitionKey[i]!.type, kind: 'partition', position: i };
  const j = s.clustering.findIndex((c) => c.name === name);
  if (j >= 0) return { name, type: s.clustering[j]!.type, kind: 'clustering', position: j };
  const k = s.regular.findIndex((c) => c.name === name);
  if (k >= 0) return { name, type: s.regular[k]!.type, kind: 'regular', position: k };
  throw badRequest(`Undefined column name ${name} in table ${s.name}`, { column: name, table: s.name });
}

export function isCounterTable(s: WideTableSchema): boolean {
  return s.regular.some((c) => c.type === 'counter');
}

/** The storage identity of an incarnation: derive the table's storage id from this, not from the name. */
export function incarnationKey(s: WideTableSchema): string {
  return `${s.name}\u0000${s.generation}\u0000${s.createdAt}\u0000${s.createdBy}`;
}

export function unconfiguredTable(name: string): RingkvError {
  return badRequest(`unconfigured table ${name}`, { table: name });
}

export interface SchemaClock {
  nowMs: number;
  nodeId: string;
}

const KNOWN_OPTIONS = ['default_time_to_live', 'n', 'gc_grace_seconds'] as const;

export interface SchemaDefaults {
  n: number;
  gcGraceSeconds: number;
}

/**
 * A new incarnation from CREATE TABLE (validated as Cassandra does). `previous` is the current
 * schema of the name, if any: live → an error unless IF NOT EXISTS (then `applied: false`);
 * dropped → the new incarnation takes the next generation.
 */
export function createTableSchema(
  stmt: CreateTable,
  previous: WideTableSchema | undefined,
  clock: SchemaClock,
  defaults: SchemaDefaults,
): { schema: WideTableSchema; applied: boolean } {
  if (!WIDE_LIMITS.tableNameRe.test(stmt.table)) {
    throw badRequest(`table name must be 1-48 letters, digits or underscores, got ${JSON.stringify(stmt.table)}`, { table: stmt.table });
  }
  if (previous !== undefined && !previous.dropped) {
    if (stmt.ifNotExists) return { schema: previous, applied: false };
    throw new RingkvError('conflict', `Cannot add already existing table "${stmt.table}"`, { table: stmt.table });
  }
  if (stmt.columns.length > WIDE_LIMITS.maxColumnsPerTable) throw badRequest(`a table has at most ${WIDE_LIMITS.maxColumnsPerTable} columns`);
  const types = new Map<string, CqlType>();
  for (const c of stmt.columns) {
    if (types.has(c.name)) throw badRequest(`Multiple definition of identifier ${c.name}`, { column: c.name });
    if (!(CQL_TYPES as readonly string[]).includes(c.type)) throw badRequest(`unsupported type ${c.type} for ${c.name}`);
    types.set(c.name, c.type);
  }
  const keyCols = [...stmt.partitionKey, ...stmt.clustering];
  const seen = new Set<string>();
  for (const k of keyCols) {
    if (!types.has(k)) throw badRequest(`Unknown definition ${k} referenced in PRIMARY KEY`, { column: k });
    if (seen.has(k)) throw badRequest(`Multiple definition of identifier ${k} in PRIMARY KEY`, { column: k });
    seen.add(k);
    if (types.get(k) === 'counter') throw badRequest(`counter type is not supported for PRIMARY KEY column '${k}'`, { column: k });
  }
  if (stmt.partitionKey.length === 0) throw badRequest('a PRIMARY KEY needs at least one partition key column');
  const orders = new Map<string, Order>();
  let last = -1;
  for (const o of stmt.clusteringOrder) {
    const idx = stmt.clustering.indexOf(o.column);
    if (idx < 0) throw badRequest(`Only clustering key columns can be defined in CLUSTERING ORDER directive (${o.column} is not one)`, { column: o.column });
    if (idx <= last) throw badRequest(`The order of columns in the CLUSTERING ORDER directive must be the one of the clustering key (${o.column} is out of order or repeated)`, { column: o.column });
    last = idx;
    orders.set(o.column, o.order);
  }
  const regular = stmt.columns
    .filter((c) => !seen.has(c.name))
    .map((c) => ({ name: c.name, type: c.type, addedAt: clock.nowMs }))
    .sort((a, b) => compareNames(a.name, b.name));
  const counters = regular.filter((c) => c.type === 'counter').length;
  if (counters > 0 && counters < regular.length) throw badRequest('Cannot mix counter and non counter columns in the same table');
  const opts = new Map<string, number>();
  for (const o of stmt.options) {
    if (!(KNOWN_OPTIONS as readonly string[]).includes(o.name)) {
      throw badRequest(`Unknown property '${o.name}' (supported: ${KNOWN_OPTIONS.join(', ')}, CLUSTERING ORDER BY)`, { option: o.name });
    }
    if (opts.has(o.name)) throw badRequest(`Multiple definition for property ${o.name}`, { option: o.name });
    opts.set(o.name, o.value);
  }
  const defaultTtlSeconds = opts.get('default_time_to_live') ?? 0;
  if (!Number.isSafeInteger(defaultTtlSeconds) || defaultTtlSeconds < 0 || defaultTtlSeconds > WIDE_LIMITS.maxTtlSeconds) {
    throw badRequest(`default_time_to_live must be between 0 and ${WIDE_LIMITS.maxTtlSeconds}, got ${defaultTtlSeconds}`, { option: 'default_time_to_live' });
  }
  if (defaultTtlSeconds > 0 && counters > 0) throw badRequest('Cannot set default_time_to_live on a table with counters');
  const n = opts.get('n') ?? defaults.n;
  if (!Number.isInteger(n) || n < 1 || n > WIDE_LIMITS.maxN) throw badRequest(`n must be an integer between 1 and ${WIDE_LIMITS.maxN}, got ${n}`, { option: 'n' });
  const gcGraceSeconds = opts.get('gc_grace_seconds') ?? defaults.gcGraceSeconds;
  if (!Number.isSafeInteger(gcGraceSeconds) || gcGraceSeconds < 0) throw badRequest(`gc_grace_seconds must be a non-negative integer, got ${gcGraceSeconds}`, { option: 'gc_grace_seconds' });
  const schema: WideTableSchema = {
    format: SCHEMA_FORMAT,
    name: stmt.table,
    generation: previous === undefined ? 1 : previous.generation + 1,
    createdAt: clock.nowMs,
    createdBy: clock.nodeId,
    partitionKey: stmt.partitionKey.map((name) => ({ name, type: types.get(name)! })),
    clustering: stmt.clustering.map((name) => ({ name, type: types.get(name)!, order: orders.get(name) ?? 'asc' })),
    regular,
    defaultTtlSeconds,
    n,
    gcGraceSeconds,
    dropped: false,
    updatedAt: clock.nowMs,
  };
  return { schema, applied: true };
}

/** DROP TABLE: the dropped incarnation (kept as a tombstone so the drop converges). */
export function dropTableSchema(stmt: DropTable, current: WideTableSchema | undefined, clock: SchemaClock): { schema: WideTableSchema | undefined; applied: boolean } {
  if (current === undefined || current.dropped) {
    if (stmt.ifExists) return { schema: current, applied: false };
    throw unconfiguredTable(stmt.table);
  }
  return { schema: { ...current, dropped: true, updatedAt: Math.max(clock.nowMs, current.updatedAt) }, applied: true };
}

/** ALTER TABLE ADD: the incarnation with the new regular columns. */
export function alterTableAddSchema(stmt: AlterTableAdd, current: WideTableSchema | undefined, clock: SchemaClock): WideTableSchema {
  if (current === undefined || current.dropped) throw unconfiguredTable(stmt.table);
  const names = new Set(allColumns(current).map((c) => c.name));
  const added: RegularColumn[] = [];
  for (const c of stmt.add) {
    if (names.has(c.name)) throw badRequest(`Invalid column name ${c.name} because it conflicts with an existing column`, { column: c.name });
    names.add(c.name);
    added.push({ name: c.name, type: c.type, addedAt: clock.nowMs });
  }
  const regular = [...current.regular, ...added].sort((a, b) => compareNames(a.name, b.name));
  if (names.size > WIDE_LIMITS.maxColumnsPerTable) throw badRequest(`a table has at most ${WIDE_LIMITS.maxColumnsPerTable} columns`);
  const counters = regular.filter((c) => c.type === 'counter').length;
  if (counters > 0 && counters < regular.length) throw badRequest('Cannot mix counter and non counter columns in the same table');
  return { ...current, regular, updatedAt: Math.max(clock.nowMs, current.updatedAt) };
}

function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Positive when incarnation a wins over b (rules 1-2 of the module comment), 0 for the same incarnation. */
function compareIncarnations(a: WideTableSchema, b: WideTableSchema): number {
  if (a.generation !== b.generation) return a.generation - b.generation;
  if (a.createdAt !== b.createdAt) return b.createdAt - a.createdAt;
  return compareStrings(b.createdBy, a.createdBy);
}

/** The fields one incarnation fixes at CREATE (equal in honest copies of one incarnation). */
function fixedPart(s: WideTableSchema): string {
  return JSON.stringify([s.partitionKey, s.clustering, s.defaultTtlSeconds, s.n, s.gcGraceSeconds]);
}

/**
 * The converged schema of two copies of one table name (see the module comment). Commutative,
 * associative, idempotent.
 */
export function mergeSchemas(a: WideTableSchema, b: WideTableSchema): WideTableSchema {
  if (a.name !== b.name) throw new Error(`mergeSchemas: different tables ${a.name} and ${b.name}`);
  const c = compareIncarnations(a, b);
  if (c !== 0) return c > 0 ? a : b;
  // One incarnation. Its CREATE-time fields should agree; if a bug made them differ, pick one
  // deterministically so replicas still converge.
  const fa = fixedPart(a);
  const fb = fixedPart(b);
  const base = fa <= fb ? a : b;
  const byName = new Map<string, RegularColumn>();
  for (const col of [...a.regular, ...b.regular]) {
    const prev = byName.get(col.name);
    if (prev === undefined || col.addedAt < prev.addedAt || (col.addedAt === prev.addedAt && compareStrings(col.type, prev.type) < 0)) {
      byName.set(col.name, col);
    }
  }
  const regular = [...byName.values()].sort((x, y) => compareNames(x.name, y.name));
  return { ...base, regular, dropped: a.dropped || b.dropped, updatedAt: Math.max(a.updatedAt, b.updatedAt) };
}

/** Deterministic serialization (for gossip and the meta family): fixed field order, canonical column order. */
export function encodeSchema(s: WideTableSchema): string {
  return JSON.stringify({
    format: s.format,
    name: s.name,
    generation: s.generation,
    createdAt: s.createdAt,
    createdBy: s.createdBy,
    partitionKey: s.partitionKey.map((c) => ({ name: c.name, type: c.type })),
    clustering: s.clustering.map((c) => ({ name: c.name, type: c.type, order: c.order })),
    regular: [...s.regular].sort((x, y) => compareNames(x.name, y.name)).map((c) => ({ name: c.name, type: c.type, addedAt: c.addedAt })),
    defaultTtlSeconds: s.defaultTtlSeconds,
    n: s.n,
    gcGraceSeconds: s.gcGraceSeconds,
    dropped: s.dropped,
    updatedAt: s.updatedAt,
  });
}

/** Parses and fully validates a serialized schema (from a peer or disk); throws on anything malformed. */
export function decodeSchema(text: string): WideTableSchema {
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (cause) {
    throw new Error('schema: not JSON', { cause });
  }
  const bad = (what: string): never => {
    throw new Error(`schema: ${what}`);
  };
  const r = o as Record<string, unknown>;
  if (typeof r !== 'object' || r === null) bad('not an object');
  if (r.format !== SCHEMA_FORMAT) bad(`unknown format ${String(r.format)}`);
  const str = (v: unknown, what: string): string => (typeof v === 'string' ? v : bad(`${what} is not a string`));
  const int = (v: unknown, what: string): number => (typeof v === 'number' && Number.isSafeInteger(v) ? v : bad(`${what} is not an integer`));
  const type = (v: unknown, what: string): CqlType => ((CQL_TYPES as readonly unknown[]).includes(v) ? (v as CqlType) : bad(`${what} has an unknown type`));
  const arr = (v: unknown, what: string): Array<Record<string, unknown>> => (Array.isArray(v) ? (v as Array<Record<string, unknown>>) : bad(`${what} is not an array`));
  const name = str(r.name, 'name');
  if (!WIDE_LIMITS.tableNameRe.test(name)) bad(`bad table name ${name}`);
  const s: WideTableSchema = {
    format: SCHEMA_FORMAT,
    name,
    generation: int(r.generation, 'generation'),
    createdAt: int(r.createdAt, 'createdAt'),
    createdBy: str(r.createdBy, 'createdBy'),
    partitionKey: arr(r.partitionKey, 'partitionKey').map((c, i) => ({ name: str(c.name, `partitionKey[${i}].name`), type: type(c.type, `partitionKey[${i}]`) })),
    clustering: arr(r.clustering, 'clustering').map((c, i) => {
      const order = c.order === 'asc' || c.order === 'desc' ? c.order : bad(`clustering[${i}].order`);
      return { name: str(c.name, `clustering[${i}].name`), type: type(c.type, `clustering[${i}]`), order };
    }),
    regular: arr(r.regular, 'regular').map((c, i) => ({ name: str(c.name, `regular[${i}].name`), type: type(c.type, `regular[${i}]`), addedAt: int(c.addedAt, `regular[${i}].addedAt`) })),
    defaultTtlSeconds: int(r.defaultTtlSeconds, 'defaultTtlSeconds'),
    n: int(r.n, 'n'),
    gcGraceSeconds: int(r.gcGraceSeconds, 'gcGraceSeconds'),
    dropped: typeof r.dropped === 'boolean' ? r.dropped : bad('dropped is not a boolean'),
    updatedAt: int(r.updatedAt, 'updatedAt'),
  };
  if (s.generation < 1) bad('generation < 1');
  if (s.partitionKey.length === 0) bad('no partition key');
  const names = allColumns(s).map((c) => c.name);
  if (new Set(names).size !== names.length) bad('duplicate column names');
  if (encodeSchema(s) !== text) bad('not in canonical form');
  return s;
}
