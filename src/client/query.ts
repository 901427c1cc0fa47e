/**
 * CQL through the client: the `query` op's results, and token-aware routing of statements by
 * partition key. A reply names its table's partition key columns (`routing`); the client keeps
 * them per table and, for the next statement on that table whose WHERE (or INSERT) gives every
 * partition key column by `=`, serializes the partition key exactly as the server does
 * (src/wide/partition-key.ts) and sends the statement to a replica of its token. Anything it
 * cannot route (an unknown table, an IN, a token() range, a function call) goes to any node:
 * routing only saves a hop.
 */
import { parseCql, type Statement, type Term } from '../cql/index.js';
import type { CqlType } from '../cql/ast.js';
import { serializePartitionKey, type KeyColumn } from '../wide/partition-key.js';
import { coerceLiteral, coerceParam, type CqlValue } from '../wide/values.js';
import type { ConsistencyLevel, QueryRouting, QueryValue } from '../api/ipc-protocol.js';

export type { QueryValue };

export interface QueryOptions {
  consistency?: ConsistencyLevel;
  /** Rows per page of a SELECT (1..10000, default 5000). */
  pageSize?: number;
  /** Continue a SELECT: the `pagingState` of its previous page. */
  pagingState?: string;
  timeoutMs?: number;
}

export interface QueryResult {
  /** The result's columns in order (empty for statements other than SELECT). */
  columns: string[];
  /** A SELECT's rows (the seed's row objects); empty for other statements. */
  rows: Array<Record<string, QueryValue>>;
  /** Present when more rows remain: pass it back as `opts.pagingState` (queryPages does). */
  pagingState?: string;
  /** True for a statement other than SELECT that was applied. */
  applied: boolean;
}

/** Statements parsed for routing, kept per text (bounded). */
const MAX_PARSED = 512;
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * A bind parameter as msgpack carries it to the server: a bigint beyond 2^53 as decimal text (the
 * protocol's integers are exact up to 2^53 only), a Date as its epoch milliseconds.
 */
export function wireParam(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= -MAX_SAFE && v <= MAX_SAFE ? Number(v) : v.toString();
  if (v instanceof Date) return v.getTime();
  return v;
}

export class QueryRouter {
  private readonly keys = new Map<string, KeyColumn[]>();
  private readonly parsed = new Map<string, Statement | null>();

  /** Remember a table's partition key columns from a reply's `routing`. */
  learn(routing: unknown): void {
    const r = routing as Partial<QueryRouting> | null | undefined;
    if (!r || typeof r.table !== 'string' || !Array.isArray(r.partitionKey)) return;
    this.keys.set(r.table, r.partitionKey.map((c) => ({ name: String(c.name), type: String(c.type) as CqlType })));
  }

  private parse(cql: string): Statement | null {
    let s = this.parsed.get(cql);
    if (s === undefined) {
      try {
        s = parseCql(cql);
      } catch {
        s = null; // the server reports the syntax error
      }
      if (this.parsed.size >= MAX_PARSED) this.parsed.delete(this.parsed.keys().next().value!);
      this.parsed.set(cql, s);
    }
    return s;
  }

  /** The serialized partition key a statement names, when it names exactly one and the table is known. */
  partitionKeyOf(cql: string, params: readonly unknown[]): Uint8Array | undefined {
    const stmt = this.parse(cql);
    if (stmt === null || stmt.kind === 'createTable' || stmt.kind === 'dropTable' || stmt.kind === 'alterTable') return undefined;
    const cols = this.keys.get(stmt.table);
    if (cols === undefined) return undefined;
    const termOf = (name: string): Term | undefined => {
      if (stmt.kind === 'insert') {
        const i = stmt.columns.indexOf(name);
        return i < 0 ? undefined : stmt.values[i];
      }
      const rel = stmt.where.filter((r) => r.kind === 'compare' && r.column === name && r.op === '=');
      return rel.length === 1 && rel[0]!.kind === 'compare' ? rel[0]!.value : undefined;
    };
    try {
      const values: CqlValue[] = [];
      for (const c of cols) {
        const t = termOf(c.name);
        if (t === undefined || t.kind === 'call') return undefined;
        const v = t.kind === 'bind' ? coerceParam(wireParam(params[t.index]), t.index, c.name, c.type) : coerceLiteral(t, c.name, c.type, { nowMs: Date.now(), timeuuid: () => new Uint8Array(16) });
        if (v === null) return undefined;
        values.push(v);
      }
      return serializePartitionKey(cols, values);
    } catch {
      return undefined; // the server reports what is wrong with the values
    }
  }
}

/** A `query` reply as the client returns it. */
export function toQueryResult(r: Record<string, unknown>): QueryResult {
  if (r['kind'] === 'rows') {
    const out: QueryResult = { columns: (r['columns'] as string[]) ?? [], rows: (r['rows'] as Array<Record<string, QueryValue>>) ?? [], applied: false };
    if (typeof r['pagingState'] === 'string') out.pagingState = r['pagingState'];
    return out;
  }
  return { columns: [], rows: [], applied: r['applied'] === true };
}
