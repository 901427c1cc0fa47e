/**
 * Statement + schema + parameters → a plan the router executes.
 *
 * Writes become, per partition, the list of (suffix, record) entries to store: every entry of
 * one partition shares the partition's token, so the router sends them to the replicas as one
 * multi-key write, and each shard merges each key with mergeCellRecords (cell.ts). Nothing in a
 * write plan needs a read first.
 *
 * Reads become the partitions to read (partition key = / IN) or a token range (token(pk), or a
 * full scan), the clustering slice inside each partition as suffix ranges (the shard's slice op,
 * slice.ts), the order, limits, projection and row filters.
 *
 * Pure module: the caller supplies the clock, the write timestamp and the ring hash.
 */
import type { Delete, Insert, Select, Statement, Update } from '../cql/ast.js';
import { countBindMarkers } from '../cql/binds.js';
import { badRequest, RingkvError } from '../util/errors.js';
import { tombstoneRecord, valueRecord } from './cell.js';
import {
  cellSuffix,
  markerSuffix,
  PARTITION_DELETION_SUFFIX,
  rangeTombstoneSuffix,
  rowDeletionSuffix,
  rowRegionBounds,
} from './layout.js';
import { clusteringRanges, encodeClustering, type ByteRange } from './order-encoding.js';
import { serializePartitionKey } from './partition-key.js';
import type { RowFilter, StoredEntry } from './reader.js';
import {
  analyzeWhere,
  cartesian,
  FILTERING_REASON,
  resolveInteger,
  resolveTerm,
  type TermContext,
  type TokenBound,
  type WhereAnalysis,
} from './restrictions.js';
import { allColumns, columnOf, isCounterTable, WIDE_LIMITS, type ResolvedColumn, type WideTableSchema } from './schema.js';
import type { SuffixRange } from './slice.js';
import { serializeValue, type CqlValue } from './values.js';

export const PLAN_LIMITS = Object.freeze({
  /** Partitions one statement may touch (the product of the partition key IN lists). */
  maxPartitionsPerStatement: 100,
  /** Rows one write may touch (the product of the clustering IN lists). */
  maxRowsPerWrite: 1000,
  /** Bytes of one cell value (as the key-value store's maxValueBytes). */
  maxCellValueBytes: 1024 * 1024,
  /** Largest LIMIT / PER PARTITION LIMIT. */
  maxLimit: 2 ** 31 - 1,
});

export interface PlanContext extends TermContext {
  /** The write timestamp (µs) of a statement without USING TIMESTAMP: MicrosClock.next(). */
  timestampMicros: number;
}

export interface PartitionWrite {
  /** Serialized partition key (hash it for the token). */
  partitionKey: Uint8Array;
  values: CqlValue[];
  /** Entries to merge into storage, sorted by suffix, one per suffix. */
  entries: StoredEntry[];
}

export interface CounterUpdate {
  partitionKey: Uint8Array;
  /** The cell's suffix. */
  suffix: Uint8Array;
  column: string;
  delta: bigint;
}

export interface WritePlan {
  kind: 'write';
  table: string;
  partitions: PartitionWrite[];
  /**
   * Counter increments (`c = c + n`): parsed and validated, not yet applied (counters need the
   * CRDT work: a counter cell is not last-write-wins). Non-empty only for counter tables.
   */
  counterUpdates: CounterUpdate[];
}

export interface PlannedPartition {
  partitionKey: Uint8Array;
  values: CqlValue[];
}

export type Projection = { kind: 'all' } | { kind: 'count' } | { kind: 'columns'; columns: ResolvedColumn[] };

export interface SelectPlan {
  kind: 'select';
  table: string;
  schema: WideTableSchema;
  /** The partitions to read, in order (IN lists expanded and deduplicated); null for a token-range scan. */
  partitions: PlannedPartition[] | null;
  /** Ring token bounds (unsigned) of a scan; an absent bound is open (the whole ring when both are). */
  tokenRange: { start?: TokenBound; end?: TokenBound } | null;
  /** The clustering slice inside each partition, as ascending disjoint row-region suffix ranges (empty: nothing matches). */
  ranges: SuffixRange[];
  reverse: boolean;
  limit: number | null;
  perPartitionLimit: number | null;
  projection: Projection;
  /** ALLOW FILTERING predicates on rows. */
  filters: RowFilter[];
  /** ALLOW FILTERING predicates on a partially restricted partition key (scans). */
  partitionFilters: WhereAnalysis['partitionFilters'];
}

export type WidePlan = WritePlan | SelectPlan;

function checkParams(stmt: Statement, ctx: PlanContext): void {
  const n = countBindMarkers(stmt);
  if (n !== ctx.params.length) throw badRequest(`There were ${n} markers(?) in CQL but ${ctx.params.length} bound variables`);
}

function nowSec(ctx: PlanContext): number {
  return Math.floor(ctx.nowMs / 1000);
}

function writeOptions(stmt: { ttl?: Insert['ttl']; timestamp?: Insert['timestamp'] }, schema: WideTableSchema, ctx: PlanContext): { ts: number; ttl: number } {
  let ts = ctx.timestampMicros;
  if (stmt.timestamp !== undefined) {
    ts = resolveInteger(stmt.timestamp, 'USING TIMESTAMP', Number.MIN_SAFE_INTEGER + 1, Number.MAX_SAFE_INTEGER, ctx) ?? ts;
  }
  let ttl = schema.defaultTtlSeconds;
  if (stmt.ttl !== undefined) {
    if (isCounterTable(schema)) throw badRequest('a TTL is not allowed on counter tables');
    ttl = resolveInteger(stmt.ttl, 'TTL', 0, WIDE_LIMITS.maxTtlSeconds, ctx) ?? ttl;
  }
  return { ts, ttl };
}

function cellBytes(col: ResolvedColumn, v: CqlValue): Uint8Array {
  const b = serializeValue(col.type, v);
  if (b.length > PLAN_LIMITS.maxCellValueBytes) {
    throw new RingkvError('too_large', `value of column ${col.name} is ${b.length} bytes, more than the ${PLAN_LIMITS.maxCellValueBytes} allowed`, { column: col.name });
  }
  return b;
}

class PartitionEntries {
  private readonly byPartition = new Map<string, PartitionWrite & { seen: Map<string, StoredEntry> }>();
  add(pk: Uint8Array, values: CqlValue[], suffix: Uint8Array, record: Uint8Array): void {
    const key = Buffer.from(pk).toString('hex');
    let p = this.byPartition.get(key);
    if (p === undefined) {
      p = { partitionKey: pk, values, entries: [], seen: new Map() };
      this.byPartition.set(key, p);
    }
    p.seen.set(Buffer.from(suffix).toString('hex'), { suffix, record });
  }
  result(): PartitionWrite[] {
    return [...this.byPartition.values()].map((p) => ({
      partitionKey: p.partitionKey,
      values: p.values,
      entries: [...p.seen.values()].sort((a, b) => Buffer.compare(a.suffix, b.suffix)),
    }));
  }
}

function partitionsOf(schema: WideTableSchema, values: ReadonlyArray<readonly CqlValue[] | null>, what: string): PlannedPartition[] {
  const missing = schema.partitionKey.filter((_, i) => values[i] === null).map((c) => c.name);
  if (missing.length > 0) throw badRequest(`Some partition key parts are missing: ${missing.join(', ')}`);
  const combos = cartesian(values as CqlValue[][], PLAN_LIMITS.maxPartitionsPerStatement, `partitions (${what})`);
  const seen = new Set<string>();
  const out: PlannedPartition[] = [];
  for (const vals of combos) {
    const partitionKey = serializePartitionKey(schema.partitionKey, vals);
    const k = Buffer.from(partitionKey).toString('hex');
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({ partitionKey, values: vals });
  }
  return out;
}

function requireTable(stmt: { table: string }, schema: WideTableSchema): void {
  if (schema.dropped || schema.name !== stmt.table) throw badRequest(`unconfigured table ${stmt.table}`, { table: stmt.table });
}

export function planInsert(stmt: Insert, schema: WideTableSchema, ctx: PlanContext): WritePlan {
  requireTable(stmt, schema);
  checkParams(stmt, ctx);
  if (isCounterTable(schema)) throw badRequest('INSERT statements are not allowed on counter tables, use UPDATE instead');
  const cols = stmt.columns.map((c) => columnOf(schema, c));
  const seen = new Set<string>();
  for (const c of cols) {
    if (seen.has(c.name)) throw badRequest(`Multiple definitions found for column ${c.name}`, { column: c.name });
    seen.add(c.name);
  }
  const missingPk = schema.partitionKey.filter((c) => !seen.has(c.name)).map((c) => c.name);
  if (missingPk.length > 0) throw badRequest(`Some partition key parts are missing: ${missingPk.join(', ')}`);
  const missingCk = schema.clustering.filter((c) => !seen.has(c.name)).map((c) => c.name);
  if (missingCk.length > 0) throw badRequest(`Some clustering keys are missing: ${missingCk.join(', ')}`);
  const values = cols.map((c, i) => resolveTerm(stmt.values[i]!, c.name, c.type, ctx));
  const pkValues = schema.partitionKey.map((k) => values[cols.findIndex((c) => c.name === k.name)]!);
  const ckValues = schema.clustering.map((k) => {
    const v = values[cols.findIndex((c) => c.name === k.name)];
    if (v === null || v === undefined) throw badRequest(`Invalid null value in condition for column ${k.name}`, { column: k.name });
    return v;
  });
  const partitionKey = serializePartitionKey(schema.partitionKey, pkValues);
  const ck = encodeClustering(schema.clustering, ckValues);
  const { ts, ttl } = writeOptions(stmt, schema, ctx);
  const now = nowSec(ctx);
  const out = new PartitionEntries();
  out.add(partitionKey, pkValues as CqlValue[], markerSuffix(ck), valueRecord(ts, new Uint8Array(0), ttl, now));
  cols.forEach((c, i) => {
    if (c.kind !== 'regular') return;
    const v = values[i]!;
    out.add(partitionKey, pkValues as CqlValue[], cellSuffix(ck, c.name), v === null ? tombstoneRecord(ts, now) : valueRecord(ts, cellBytes(c, v), ttl, now));
  });
  return { kind: 'write', table: schema.name, partitions: out.result(), counterUpdates: [] };
}

/** The rows (partition × full clustering key) a write's WHERE names; only = and IN allowed. */
function writeRows(stmt: Update | Delete, schema: WideTableSchema, ctx: PlanContext, requireFullClustering: boolean): { partitions: PlannedPartition[]; a: WhereAnalysis } {
  const a = analyzeWhere(schema, stmt.where, ctx);
  if (a.token !== null) throw badRequest('token() relations are not allowed in UPDATE or DELETE');
  const regular = a.filters.filter((f) => f.kind === 'regular').map((f) => f.column);
  if (regular.length > 0) throw badRequest(`Non PRIMARY KEY columns found in where clause: ${[...new Set(regular)].join(', ')}`);
  const partitions = partitionsOf(schema, a.partitionValues, stmt.kind.toUpperCase());
  if (a.filters.length > 0) {
    const f = a.filters[0]!;
    throw badRequest(`PRIMARY KEY column "${f.column}" cannot be restricted here: restrict the clustering columns before it by = or IN`, { column: f.column });
  }
  if (requireFullClustering) {
    if (a.clustering.range !== undefined) {
      const c = schema.clustering[a.clustering.range.column]!;
      throw badRequest(`Invalid operator for PRIMARY KEY part ${c.name}: only = and IN are allowed here`, { column: c.name });
    }
    const missing = schema.clustering.slice(a.clustering.eq.length).map((c) => c.name);
    if (missing.length > 0) throw badRequest(`Some clustering keys are missing: ${missing.join(', ')}`);
  }
  return { partitions, a };
}

export function planUpdate(stmt: Update, schema: WideTableSchema, ctx: PlanContext): WritePlan {
  requireTable(stmt, schema);
  checkParams(stmt, ctx);
  const { partitions, a } = writeRows(stmt, schema, ctx, true);
  const { ts, ttl } = writeOptions(stmt, schema, ctx);
  const now = nowSec(ctx);
  const rows = cartesian(a.clustering.eq, PLAN_LIMITS.maxRowsPerWrite, 'rows');
  const seen = new Set<string>();
  const sets: Array<{ col: ResolvedColumn; value: CqlValue | null }> = [];
  const counters: Array<{ col: ResolvedColumn; delta: bigint }> = [];
  for (const asg of stmt.assignments) {
    const col = columnOf(schema, asg.column);
    if (col.kind !== 'regular') throw badRequest(`PRIMARY KEY part ${col.name} found in SET part`, { column: col.name });
    if (seen.has(col.name)) throw badRequest(`Multiple incompatible setting of column ${col.name}`, { column: col.name });
    seen.add(col.name);
    if (asg.kind === 'set') {
      if (col.type === 'counter') throw badRequest(`Cannot set the value of counter column ${col.name} (counters can only be incremented/decremented, not set)`, { column: col.name });
      sets.push({ col, value: resolveTerm(asg.value, col.name, col.type, ctx) });
    } else {
      if (col.type !== 'counter') throw badRequest(`Invalid operation (${col.name} = ${col.name} ${asg.op} ?) for non counter column ${col.name}`, { column: col.name });
      const v = resolveTerm(asg.value, col.name, 'bigint', ctx);
      if (v === null) throw badRequest(`Invalid null value for counter increment of ${col.name}`, { column: col.name });
      counters.push({ col, delta: asg.op === '+' ? (v as bigint) : -(v as bigint) });
    }
  }
  const out = new PartitionEntries();
  const counterUpdates: CounterUpdate[] = [];
  for (const p of partitions) {
    for (const ckValues of rows) {
      const ck = encodeClustering(schema.clustering, ckValues);
      for (const s of sets) {
        const record = s.value === null ? tombstoneRecord(ts, now) : valueRecord(ts, cellBytes(s.col, s.value), ttl, now);
        out.add(p.partitionKey, p.values, cellSuffix(ck, s.col.name), record);
      }
      for (const c of counters) counterUpdates.push({ partitionKey: p.partitionKey, suffix: cellSuffix(ck, c.col.name), column: c.col.name, delta: c.delta });
    }
  }
  return { kind: 'write', table: schema.name, partitions: out.result(), counterUpdates };
}

export function planDelete(stmt: Delete, schema: WideTableSchema, ctx: PlanContext): WritePlan {
  requireTable(stmt, schema);
  checkParams(stmt, ctx);
  const cols = stmt.columns.map((c) => columnOf(schema, c));
  for (const c of cols) {
    if (c.kind !== 'regular') throw badRequest(`Invalid identifier ${c.name} for deletion (should not be a PRIMARY KEY part)`, { column: c.name });
  }
  const { partitions, a } = writeRows(stmt, schema, ctx, false);
  const { ts } = writeOptions({ ...(stmt.timestamp !== undefined ? { timestamp: stmt.timestamp } : {}) }, schema, ctx);
  const now = nowSec(ctx);
  const tomb = tombstoneRecord(ts, now);
  const fullRow = a.clustering.eq.length === schema.clustering.length && a.clustering.range === undefined;
  const out = new PartitionEntries();
  if (cols.length > 0) {
    if (!fullRow) throw badRequest('Range deletions are not supported for specific columns: restrict every clustering column by = or IN');
    const rows = cartesian(a.clustering.eq, PLAN_LIMITS.maxRowsPerWrite, 'rows');
    for (const p of partitions) {
      for (const ckValues of rows) {
        const ck = encodeClustering(schema.clustering, ckValues);
        for (const c of cols) out.add(p.partitionKey, p.values, cellSuffix(ck, c.name), tomb);
      }
    }
  } else if (a.clustering.eq.length === 0 && a.clustering.range === undefined) {
    for (const p of partitions) out.add(p.partitionKey, p.values, PARTITION_DELETION_SUFFIX, tomb);
  } else if (fullRow && schema.clustering.length > 0) {
    const rows = cartesian(a.clustering.eq, PLAN_LIMITS.maxRowsPerWrite, 'rows');
    for (const p of partitions) for (const ckValues of rows) out.add(p.partitionKey, p.values, rowDeletionSuffix(encodeClustering(schema.clustering, ckValues)), tomb);
  } else {
    const ranges: ByteRange[] = clusteringRanges(schema.clustering, a.clustering);
    for (const p of partitions) for (const r of ranges) out.add(p.partitionKey, p.values, rangeTombstoneSuffix(r), tomb);
  }
  return { kind: 'write', table: schema.name, partitions: out.result(), counterUpdates: [] };
}

function limitOf(t: Select['limit'], what: string, ctx: PlanContext): number | null {
  if (t === undefined) return null;
  const n = resolveInteger(t, what, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, ctx);
  if (n === null) return null;
  if (n <= 0) throw badRequest(`${what} must be strictly positive`);
  return Math.min(n, PLAN_LIMITS.maxLimit);
}

export function planSelect(stmt: Select, schema: WideTableSchema, ctx: PlanContext): SelectPlan {
  requireTable(stmt, schema);
  checkParams(stmt, ctx);
  const a = analyzeWhere(schema, stmt.where, ctx);
  if (a.filteringNeeded !== null && !stmt.allowFiltering) throw badRequest(a.filteringNeeded);
  const fullPk = a.partitionValues.every((v) => v !== null);
  const partitions = fullPk ? partitionsOf(schema, a.partitionValues, 'SELECT') : null;
  if (!fullPk && a.token === null && stmt.where.length > 0 && !stmt.allowFiltering) throw badRequest(FILTERING_REASON);
  let reverse = false;
  if (stmt.orderBy.length > 0) {
    if (partitions === null) throw badRequest('ORDER BY is only supported when the partition key is restricted by an EQ or an IN.');
    if (partitions.length > 1) {
      throw badRequest('Cannot page queries with both ORDER BY and a IN restriction on the partition key; you must either remove the ORDER BY or the IN and sort client side');
    }
    stmt.orderBy.forEach((o, i) => {
      const c = schema.clustering[i];
      if (c === undefined || c.name !== o.column) {
        const col = columnOf(schema, o.column);
        if (col.kind !== 'clustering') throw badRequest(`Order by is currently only supported on the clustered columns of the PRIMARY KEY, got ${o.column}`, { column: o.column });
        throw badRequest('Order by currently only supports the ordering of columns following their declared order in the PRIMARY KEY');
      }
      const rev = o.order !== c.order;
      if (i === 0) reverse = rev;
      else if (rev !== reverse) throw badRequest('Unsupported order by relation');
    });
  }
  let projection: Projection;
  if (stmt.selection.kind === 'all') projection = { kind: 'all' };
  else if (stmt.selection.kind === 'count') projection = { kind: 'count' };
  else projection = { kind: 'columns', columns: stmt.selection.columns.map((c) => columnOf(schema, c)) };
  const ranges = clusteringRanges(schema.clustering, a.clustering).map(rowRegionBounds);
  let tokenRange: SelectPlan['tokenRange'] = null;
  if (partitions === null) {
    tokenRange = {};
    if (a.token?.lower !== undefined) tokenRange.start = a.token.lower;
    if (a.token?.upper !== undefined) tokenRange.end = a.token.upper;
  }
  return {
    kind: 'select',
    table: schema.name,
    schema,
    partitions,
    tokenRange,
    ranges,
    reverse,
    limit: limitOf(stmt.limit, 'LIMIT', ctx),
    perPartitionLimit: limitOf(stmt.perPartitionLimit, 'PER PARTITION LIMIT', ctx),
    projection,
    filters: a.filters,
    partitionFilters: partitions === null ? a.partitionFilters : [],
  };
}

/** Plans a data statement (schema statements go through schema.ts). */
export function planStatement(stmt: Statement, schema: WideTableSchema, ctx: PlanContext): WidePlan {
  switch (stmt.kind) {
    case 'insert':
      return planInsert(stmt, schema, ctx);
    case 'update':
      return planUpdate(stmt, schema, ctx);
    case 'delete':
      return planDelete(stmt, schema, ctx);
    case 'select':
      return planSelect(stmt, schema, ctx);
    default:
      throw new Error(`planStatement: ${stmt.kind} is a schema statement (use schema.ts)`);
  }
}

/** The columns of a projection's JSON rows, in output order. */
export function outputColumns(plan: SelectPlan): ResolvedColumn[] {
  if (plan.projection.kind === 'columns') return plan.projection.columns;
  return allColumns(plan.schema);
}
