/**
 * CQL on a ringkv node: `POST /api/v1/query` and the IPC `query` op both land here. A statement is
 * parsed (src/cql), then
 *   - CREATE / ALTER / DROP TABLE change the table's schema (src/wide/schema.ts), which is stored,
 *     pushed to every live node (answered once they have it, or at the deadline: gossip carries it
 *     to the rest) and gossiped;
 *   - INSERT / UPDATE / DELETE are planned into per-partition cell writes (wide-write.ts), and a
 *     counter column's `c = c + n` into counter updates (wide-counter.ts);
 *   - SELECT is planned into partition reads (wide-read.ts) or a token-range scan (wide-scan.ts)
 *     feeding one page of a ResultCollector, with the paging state to continue.
 */
import { parseCql, type Statement } from '../cql/index.js';
import { tokenOf, tokenToBigInt } from '../ring/hash.js';
import { badRequest, RingkvError } from '../util/errors.js';
import { MicrosClock } from '../wide/cell.js';
import { outputColumns, planStatement, type PlanContext, type SelectPlan } from '../wide/planner.js';
import type { KeyColumn } from '../wide/partition-key.js';
import { decodePagingState, RESULT_LIMITS, ResultCollector, type RowObject } from '../wide/results.js';
import { alterTableAddSchema, createTableSchema, dropTableSchema, encodeSchema, isCounterTable, type WideTableSchema } from '../wide/schema.js';
import { TimeuuidGenerator } from '../wide/uuid.js';
import type { ConsistencySpec } from './consistency.js';
import { coordinateCounterUpdates } from './wide-counter.js';
import { readPartition, type WideReadContext } from './wide-read.js';
import { scanTokenRange } from './wide-scan.js';
import type { WideTableRegistry } from './wide-tables.js';
import { coordinateWidePlan, remainingMs, type WideCoordinatorDeps, type WideTarget } from './wide-write.js';

export interface QueryRequest {
  query: string;
  /** Bind parameters (`?` markers in order). */
  params?: readonly unknown[] | undefined;
  consistency?: ConsistencySpec | undefined;
  /** Rows per page of a SELECT (default RESULT_LIMITS.defaultPageRows). */
  pageSize?: number | undefined;
  /** The paging state a previous page of the same query returned. */
  pagingState?: string | undefined;
  timeoutMs?: number | undefined;
}

/**
 * What a client needs to send a statement to a replica of its partition: the table and its
 * partition key columns (a token-aware client serializes the key the same way, partition-key.ts).
 */
export interface QueryRouting {
  table: string;
  partitionKey: KeyColumn[];
}

export type QueryResult =
  | { kind: 'rows'; columns: string[]; rows: RowObject[]; pagingState: string | null; routing: QueryRouting }
  | { kind: 'applied'; routing?: QueryRouting };

export interface CqlCounters {
  statements: number;
  schemaChanges: number;
  writes: number;
  reads: number;
  /** Cells, markers and deletions written back to stale replicas by reads. */
  readRepairEntries: number;
}

export interface CqlServiceDeps extends WideCoordinatorDeps {
  wide: WideTableRegistry;
  selfId: string;
  /** Other nodes a DDL's schema is pushed to (the live members). */
  peers(): string[];
}

export class CqlService {
  readonly counters: CqlCounters = { statements: 0, schemaChanges: 0, writes: 0, reads: 0, readRepairEntries: 0 };
  private readonly clock = new MicrosClock();
  private readonly timeuuids = new TimeuuidGenerator();

  constructor(private readonly d: CqlServiceDeps) {}

  async execute(req: QueryRequest): Promise<QueryResult> {
    if (typeof req.query !== 'string' || req.query.trim() === '') throw badRequest('query must be a non-empty CQL statement', { field: 'query' });
    if (req.params !== undefined && !Array.isArray(req.params)) throw badRequest('params must be an array (one value per ? marker)', { field: 'params' });
    const deadline = Date.now() + (req.timeoutMs ?? this.d.config.requestTimeoutMs);
    const stmt = parseCql(req.query);
    this.counters.statements++;
    switch (stmt.kind) {
      case 'createTable':
      case 'alterTable':
      case 'dropTable':
        await this.schemaChange(stmt, deadline);
        return { kind: 'applied' };
      default:
        return this.data(stmt, req, deadline);
    }
  }

  private async schemaChange(stmt: Extract<Statement, { kind: 'createTable' | 'alterTable' | 'dropTable' }>, deadline: number): Promise<void> {
    const { wide } = this.d;
    const current = wide.schema(stmt.table);
    const clock = { nowMs: Date.now(), nodeId: this.d.selfId };
    let next: WideTableSchema | undefined;
    if (stmt.kind === 'createTable') {
      const kv = this.d.router.kvTableIfAny(stmt.table);
      if (kv) throw new RingkvError('conflict', `table ${stmt.table} is a key-value table; a wide-column table cannot take its name`, { table: stmt.table });
      const r = createTableSchema(stmt, current, clock, wide.defaults);
      if (!r.applied) return;
      next = r.schema;
    } else if (stmt.kind === 'alterTable') {
      next = alterTableAddSchema(stmt, current, clock);
    } else {
      const r = dropTableSchema(stmt, current, clock);
      if (!r.applied) return;
      next = r.schema;
    }
    if (next === undefined) return;
    const merged = wide.apply(next);
    this.counters.schemaChanges++;
    // Cassandra's schema agreement: every live node has the schema before the DDL answers, so the
    // statements that follow find it on every replica. A node that misses the push gets it by gossip.
    const text = encodeSchema(merged);
    await Promise.all(
      this.d.peers().map((id) =>
        this.d.replicas.pushSchema(id, text, remainingMs(deadline)).catch((e: unknown) => this.d.log.warn({ err: String(e), node: id, table: stmt.table }, 'schema push failed; gossip will carry it')),
      ),
    );
  }

  private async data(stmt: Exclude<Statement, { kind: 'createTable' | 'alterTable' | 'dropTable' }>, req: QueryRequest, deadline: number): Promise<QueryResult> {
    const { schema, def, tableId } = this.liveTable(stmt.table);
    const routing: QueryRouting = { table: schema.name, partitionKey: schema.partitionKey.map((c) => ({ name: c.name, type: c.type })) };
    const nowMs = Date.now();
    const ctx: PlanContext = {
      nowMs,
      timestampMicros: this.clock.next(),
      params: req.params ?? [],
      timeuuid: () => this.timeuuids.next(),
      tokenOf: (pk) => tokenToBigInt(tokenOf(pk)),
    };
    if (isCounterTable(schema)) checkCounterStatement(stmt, schema.name);
    const plan = planStatement(stmt, schema, ctx);
    const target: WideTarget = { name: schema.name, tableId, n: schema.n };
    const spec = req.consistency ?? {};
    if (plan.kind === 'write') {
      if (req.pagingState !== undefined || req.pageSize !== undefined) throw badRequest('pageSize and pagingState apply to SELECT only', { field: req.pagingState !== undefined ? 'pagingState' : 'pageSize' });
      this.counters.writes++;
      // A counter table holds only counter columns, so a statement is one kind or the other.
      if (plan.counterUpdates.length > 0) await coordinateCounterUpdates(this.d, target, def, plan.counterUpdates, spec, deadline);
      else await coordinateWidePlan(this.d, target, plan, spec, deadline);
      return { kind: 'applied', routing };
    }
    this.counters.reads++;
    const pageRows = req.pageSize ?? RESULT_LIMITS.defaultPageRows;
    const resume = req.pagingState === undefined ? null : decodePagingState(req.pagingState);
    const collector = new ResultCollector(plan, pageRows, resume);
    const rc: WideReadContext = {
      d: this.d,
      t: target,
      schema,
      plan,
      collector,
      spec,
      deadline,
      nowSec: Math.floor(nowMs / 1000),
      rowsWanted: () => collector.rowsWanted,
      onRepair: (n) => (this.counters.readRepairEntries += n),
    };
    if (plan.partitions !== null) await this.readPartitions(rc, plan, resume);
    else {
      if (resume !== null && resume.token === null) throw invalidPagingState();
      await scanTokenRange(rc, def, plan, resume === null ? null : { partitionKey: resume.partitionKey, token: resume.token!, rowKey: resume.rowKey });
    }
    const page = collector.finish();
    const columns = plan.projection.kind === 'count' ? ['count'] : outputColumns(plan).map((c) => c.name);
    return { kind: 'rows', columns, rows: page.rows, pagingState: page.pagingState, routing };
  }

  /** Partition reads in plan order (IN lists in their order), from the resumed partition on. */
  private async readPartitions(rc: WideReadContext, plan: SelectPlan, resume: ReturnType<typeof decodePagingState> | null): Promise<void> {
    const parts = plan.partitions!;
    let i = 0;
    if (resume !== null) {
      i = parts.findIndex((p) => Buffer.compare(p.partitionKey, resume.partitionKey) === 0);
      if (i < 0 || resume.token !== null) throw invalidPagingState();
    }
    for (let first = true; i < parts.length; i++, first = false) {
      const p = parts[i]!;
      if (!rc.collector.beginPartition(p)) {
        if (rc.collector.limitReached || (plan.projection.kind !== 'count' && rc.collector.rowsWanted === 0)) return;
        continue;
      }
      const v = await readPartition(rc, p, first && resume !== null ? resume.rowKey : null);
      if (v === 'pageDone' || v === 'done') return;
    }
  }

  private liveTable(name: string): ReturnType<WideTableRegistry['live']> {
    try {
      return this.d.wide.live(name);
    } catch (e) {
      if (this.d.router.kvTableIfAny(name)) throw badRequest(`unconfigured table ${name} (it is a key-value table: read and write it through /api/v1/store)`, { table: name });
      throw e;
    }
  }
}

/**
 * What a counter table does not take (besides INSERT and TTL, which the planner refuses as
 * Cassandra does): DELETE, because a counter cell's state has no deletion yet (as crdt tables'
 * keys), and USING TIMESTAMP, which Cassandra refuses on counter updates too.
 */
function checkCounterStatement(stmt: Exclude<Statement, { kind: 'createTable' | 'alterTable' | 'dropTable' }>, table: string): void {
  if (stmt.kind === 'delete') {
    throw badRequest(`DELETE is not supported on counter table ${table} (a counter's convergent state has no deletes yet: drop the table to remove its counters)`, { unsupported: 'counter delete', table });
  }
  if (stmt.kind === 'update' && stmt.timestamp !== undefined) throw badRequest('Cannot provide custom timestamp for counter updates', { table });
}

function invalidPagingState(): RingkvError {
  return badRequest('invalid paging state (pass back the x-ringkv-paging-state of the same query)', { field: 'pagingState' });
}
