/**
 * From rows to the client: LIMIT, PER PARTITION LIMIT, page size and COUNT(*) across the
 * partitions of a SELECT (ResultCollector), the JSON shape of a row (the seed's array of row
 * objects), and the paging state a client passes back (`x-ringkv-paging-state`).
 *
 * The coordinator feeds partitions in plan order (or token order for a scan) and, inside each,
 * the rows of readRows(); the collector says when to stop reading a partition and when the
 * page is full, so reads pull only the shard pages they need.
 *
 * Pure module: no I/O.
 */
import { Packr } from 'msgpackr';
import { badRequest } from '../util/errors.js';
import { outputColumns, type PlannedPartition, type SelectPlan } from './planner.js';
import type { Row } from './reader.js';
import { valueToJson, type JsonValue } from './values.js';

/** Bounds of one result page. */
export const RESULT_LIMITS = Object.freeze({
  /** Rows per page when the client names none (Cassandra's default fetch size). */
  defaultPageRows: 5000,
  /** Largest page a client may ask for. */
  maxPageRows: 10_000,
  /** Bytes of a paging state (a partition key is at most 64 KiB). */
  maxPagingStateBytes: 70 * 1024,
});

/** Where the next page starts. */
export interface PagingPosition {
  /** The partition in progress (serialized key). */
  partitionKey: Uint8Array;
  /** Its ring token (scans resume by token); null for partition-key reads. */
  token: bigint | null;
  /** The last row returned from it; the next page starts strictly after this row. */
  rowKey: Uint8Array;
  /** Rows returned from that partition so far (PER PARTITION LIMIT). */
  partitionRows: number;
  /** Rows returned so far over every page (LIMIT). */
  rowsSoFar: number;
}

const PAGING_FORMAT = 1;
const packr = new Packr({ useRecords: false, moreTypes: false, copyBuffers: true, int64AsType: 'bigint' });

/** Opaque paging state text (base64url). */
export function encodePagingState(p: PagingPosition): string {
  const body = [PAGING_FORMAT, p.partitionKey, p.token === null ? null : p.token.toString(16), p.rowKey, p.partitionRows, p.rowsSoFar];
  return Buffer.from(packr.pack(body)).toString('base64url');
}

export function decodePagingState(text: string): PagingPosition {
  const bad = (): never => {
    throw badRequest('invalid paging state (pass back the x-ringkv-paging-state of the same query)', { field: 'pagingState' });
  };
  if (typeof text !== 'string' || text.length > (RESULT_LIMITS.maxPagingStateBytes * 4) / 3 + 4 || !/^[A-Za-z0-9_-]*$/.test(text)) bad();
  let body: unknown;
  try {
    body = packr.unpack(Buffer.from(text, 'base64url'));
  } catch {
    bad();
  }
  if (!Array.isArray(body) || body.length !== 6 || body[0] !== PAGING_FORMAT) bad();
  const [, pk, tok, rowKey, partitionRows, rowsSoFar] = body as unknown[];
  if (!(pk instanceof Uint8Array) || !(rowKey instanceof Uint8Array) || rowKey.length < 1) bad();
  if (tok !== null && (typeof tok !== 'string' || !/^[0-9a-f]{1,16}$/.test(tok))) bad();
  const count = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : bad());
  return {
    partitionKey: pk as Uint8Array,
    token: tok === null ? null : BigInt(`0x${tok as string}`),
    rowKey: rowKey as Uint8Array,
    partitionRows: count(partitionRows),
    rowsSoFar: count(rowsSoFar),
  };
}

export type RowObject = Record<string, JsonValue>;

/** One row as the seed's JSON object: the selected columns in output order, null when absent. */
export function rowToJson(plan: SelectPlan, partitionValues: readonly unknown[], row: Row): RowObject {
  const out: RowObject = {};
  for (const c of outputColumns(plan)) {
    let v;
    if (c.kind === 'partition') v = partitionValues[c.position];
    else if (c.kind === 'clustering') v = row.clustering[c.position];
    else v = row.cells.get(c.name) ?? null;
    out[c.name] = valueToJson(c.type, (v ?? null) as Parameters<typeof valueToJson>[1]);
  }
  return out;
}

/** What the reader of a partition should do after offering a row. */
export type Verdict = 'more' | 'partitionDone' | 'pageDone' | 'done';

/**
 * Collects one page of a SELECT. Usage per partition: `beginPartition` (false: skip it), then
 * `offer` each row of readRows() until the verdict is not 'more'; 'pageDone' and 'done' end the
 * page. `finish()` gives the rows (or the one COUNT row) and the paging state.
 */
export class ResultCollector {
  private readonly rows: RowObject[] = [];
  private count = 0;
  private rowsSoFar: number;
  private partitionRows = 0;
  private current: PlannedPartition | null = null;
  private currentToken: bigint | null = null;
  private lastRowKey: Uint8Array | null = null;
  private full = false;
  private resume: PagingPosition | null;

  constructor(
    private readonly plan: SelectPlan,
    private readonly pageRows: number,
    resume: PagingPosition | null = null,
  ) {
    if (!Number.isInteger(pageRows) || pageRows < 1 || pageRows > RESULT_LIMITS.maxPageRows) {
      throw badRequest(`pageSize must be an integer between 1 and ${RESULT_LIMITS.maxPageRows}, got ${pageRows}`, { field: 'pageSize' });
    }
    this.resume = resume;
    this.rowsSoFar = resume?.rowsSoFar ?? 0;
  }

  /** True once LIMIT is reached: no further partitions need reading. */
  get limitReached(): boolean {
    return this.plan.limit !== null && this.rowsSoFar >= this.plan.limit;
  }

  /**
   * Starts a partition (partitionValues: its key columns' values). When it is the resumed
   * partition, its row count carries over. Returns false when nothing more is wanted from it.
   */
  beginPartition(p: PlannedPartition, token: bigint | null = null): boolean {
    this.current = p;
    this.currentToken = token;
    this.partitionRows = 0;
    if (this.resume !== null && Buffer.compare(this.resume.partitionKey, p.partitionKey) === 0) {
      this.partitionRows = this.resume.partitionRows;
    }
    this.resume = null;
    if (this.limitReached || this.full) return false;
    return this.plan.perPartitionLimit === null || this.partitionRows < this.plan.perPartitionLimit;
  }

  offer(row: Row): Verdict {
    if (this.current === null) throw new Error('ResultCollector.offer before beginPartition');
    if (this.plan.projection.kind === 'count') this.count++;
    else this.rows.push(rowToJson(this.plan, this.current.values, row));
    this.rowsSoFar++;
    this.partitionRows++;
    this.lastRowKey = row.rowKey;
    if (this.limitReached) return 'done';
    if (this.plan.projection.kind !== 'count' && this.rows.length >= this.pageRows) {
      this.full = true;
      return 'pageDone';
    }
    if (this.plan.perPartitionLimit !== null && this.partitionRows >= this.plan.perPartitionLimit) return 'partitionDone';
    return 'more';
  }

  /**
   * End the page early, before it is full (a bounded scan ran out of its budget): the next page
   * resumes strictly after row `rowKey` of partition `p` (returned or only examined). A row key
   * of [TAG_ROW + 1] resumes after the whole partition.
   */
  stopAt(p: PlannedPartition, token: bigint | null, rowKey: Uint8Array): void {
    if (this.current === null || Buffer.compare(this.current.partitionKey, p.partitionKey) !== 0) this.partitionRows = 0;
    this.current = p;
    this.currentToken = token;
    this.lastRowKey = rowKey;
    this.full = true;
  }

  /** Rows on this page so far. */
  get pageRowCount(): number {
    return this.rows.length;
  }

  /** Rows this page can still take before it is full (or LIMIT is reached). */
  get rowsWanted(): number {
    const page = this.pageRows - this.rows.length;
    return this.plan.limit === null ? page : Math.max(0, Math.min(page, this.plan.limit - this.rowsSoFar));
  }

  /**
   * The page: rows (for COUNT(*), one row `{count}`) and, when the page filled before the query
   * ended, the paging state to continue.
   */
  finish(): { rows: RowObject[]; pagingState: string | null } {
    if (this.plan.projection.kind === 'count') return { rows: [{ count: this.count }], pagingState: null };
    if (!this.full || this.limitReached || this.current === null || this.lastRowKey === null) return { rows: this.rows, pagingState: null };
    const state = encodePagingState({
      partitionKey: this.current.partitionKey,
      token: this.currentToken,
      rowKey: this.lastRowKey,
      partitionRows: this.partitionRows,
      rowsSoFar: this.rowsSoFar,
    });
    return { rows: this.rows, pagingState: state };
  }
}
