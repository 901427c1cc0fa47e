/**
 * In-memory stand-in for one replica's storage of wide-column partitions (unit tests of the pure
 * wide-column modules only): per partition a sorted map suffix → record, written with the
 * shard's merge rule (mergeCellRecords) and read through the shard's slice function.
 */
import { parseCql, type CreateTable, type Statement } from '../../src/cql/index.js';
import {
  createTableSchema,
  deletionMapOf,
  mergeCellRecords,
  planStatement,
  readRows,
  readSlicePage,
  ResultCollector,
  type PlanContext,
  type Row,
  type SelectPlan,
  type SliceIterate,
  type SlicePage,
  type StoredEntry,
  type WidePlan,
  type WideTableSchema,
  type WritePlan,
} from '../../src/wide/index.js';

export function schemaOf(cql: string, nowMs = 0): WideTableSchema {
  return createTableSchema(parseCql(cql) as CreateTable, undefined, { nowMs, nodeId: 'n1' }, { n: 3, gcGraceSeconds: 864000 }).schema;
}

export function ctxAt(nowMs: number, timestampMicros: number, params: unknown[] = []): PlanContext {
  let seq = 0;
  return {
    nowMs,
    timestampMicros,
    params,
    timeuuid: () => {
      const b = new Uint8Array(16);
      b[6] = 0x10;
      b[8] = 0x80;
      b[15] = ++seq;
      return b;
    },
    tokenOf: (pk) => BigInt(Buffer.from(pk).reduce((h, c) => (h * 31 + c) % 1_000_000_007, 7)),
  };
}

const parsed = new Map<string, Statement>();

/** Plans a statement (parsed once per text). */
export function plan(schema: WideTableSchema, cql: string, ctx: PlanContext): WidePlan {
  let stmt = parsed.get(cql);
  if (stmt === undefined) {
    stmt = parseCql(cql);
    parsed.set(cql, stmt);
  }
  return planStatement(stmt, schema, ctx);
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export class MemoryReplica {
  /** partition key hex → (suffix hex → entry) */
  readonly partitions = new Map<string, Map<string, StoredEntry>>();
  /** Sorted entries per partition, rebuilt after a write (the shard's RocksDB order). */
  private readonly sorted = new Map<string, StoredEntry[]>();

  put(pk: Uint8Array, e: StoredEntry): void {
    let p = this.partitions.get(hex(pk));
    if (p === undefined) {
      p = new Map();
      this.partitions.set(hex(pk), p);
    }
    this.sorted.delete(hex(pk));
    const prev = p.get(hex(e.suffix));
    p.set(hex(e.suffix), prev === undefined ? e : { suffix: e.suffix, record: mergeCellRecords(prev.record, e.record) });
  }

  apply(w: WritePlan): void {
    for (const p of w.partitions) for (const e of p.entries) this.put(p.partitionKey, e);
  }

  /** Ascending entries of a partition in [start, end) (the shard's iterator). */
  iterate(pk: Uint8Array): SliceIterate {
    const self = this;
    return function* (range: { start: Uint8Array; end: Uint8Array }, reverse: boolean): Generator<StoredEntry> {
      const p = self.partitions.get(hex(pk));
      if (p === undefined) return;
      let all = self.sorted.get(hex(pk));
      if (all === undefined) {
        all = [...p.values()].sort((a, b) => Buffer.compare(a.suffix, b.suffix));
        self.sorted.set(hex(pk), all);
      }
      const lowerBound = (key: Uint8Array): number => {
        let lo = 0;
        let hi = all.length;
        while (lo < hi) {
          const mid = (lo + hi) >>> 1;
          if (Buffer.compare(all[mid]!.suffix, key) < 0) lo = mid + 1;
          else hi = mid;
        }
        return lo;
      };
      const from = lowerBound(range.start);
      const to = lowerBound(range.end);
      if (reverse) for (let i = to - 1; i >= from; i--) yield all[i]!;
      else for (let i = from; i < to; i++) yield all[i]!;
    };
  }

  page(pk: Uint8Array, plan: SelectPlan, after: Uint8Array | null, rowLimit: number, withDeletions: boolean): SlicePage {
    return readSlicePage({ ranges: plan.ranges, reverse: plan.reverse, after, rowLimit, byteLimit: 1 << 20, withDeletions }, this.iterate(pk));
  }
}

/** Reads a partition of one replica page by page (rowLimit rows per shard page), lazily. */
export function* readPartitionPaged(replica: MemoryReplica, pk: Uint8Array, plan: SelectPlan, nowSec: number, rowLimit: number, pages: { count: number }): Generator<Row> {
  const first = replica.page(pk, plan, null, rowLimit, true);
  pages.count++;
  const deletions = deletionMapOf(first.deletions ?? []);
  let page: SlicePage = first;
  for (;;) {
    yield* readRows(page.entries, { schema: plan.schema, nowSec, deletions, filters: plan.filters });
    if (page.next === null) return;
    page = replica.page(pk, plan, page.next, rowLimit, false);
    pages.count++;
  }
}

/** Runs a SELECT plan over one replica's partitions (partition-key reads only) and returns the page. */
export function select(replica: MemoryReplica, plan: SelectPlan, nowSec: number, pageRows = 5000, resume: import('../../src/wide/index.js').PagingPosition | null = null) {
  const collector = new ResultCollector(plan, pageRows, resume);
  const parts = plan.partitions ?? [];
  let startAt = 0;
  if (resume !== null) startAt = Math.max(0, parts.findIndex((p) => Buffer.compare(p.partitionKey, resume.partitionKey) === 0));
  outer: for (let i = startAt; i < parts.length; i++) {
    const p = parts[i]!;
    if (!collector.beginPartition(p)) {
      if (collector.limitReached) break;
      continue;
    }
    const after = resume !== null && i === startAt ? resume.rowKey : null;
    let page = replica.page(p.partitionKey, plan, after, 7, true);
    const deletions = deletionMapOf(page.deletions ?? []);
    for (;;) {
      for (const row of readRows(page.entries, { schema: plan.schema, nowSec, deletions, filters: plan.filters })) {
        const v = collector.offer(row);
        if (v === 'partitionDone') continue outer;
        if (v === 'pageDone' || v === 'done') break outer;
      }
      if (page.next === null) break;
      page = replica.page(p.partitionKey, plan, page.next, 7, false);
    }
  }
  return collector.finish();
}
