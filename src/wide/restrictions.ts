/**
 * WHERE-clause analysis for wide-column statements: which partitions (partition key = / IN, or
 * a token range), which clustering slice (an = / IN prefix, then at most one range), and what
 * is left to filter row by row (ALLOW FILTERING) — with Cassandra's rules and messages for
 * what it refuses.
 *
 * Pure module: no I/O.
 */
import type { CqlType, Relation, RelationOp, Term } from '../cql/ast.js';
import { badRequest } from '../util/errors.js';
import { ByteWriter, writeComponent, type ClusteringRestriction, type ValueBound } from './order-encoding.js';
import { serializePartitionKey } from './partition-key.js';
import type { RowFilter } from './reader.js';
import { columnOf, type WideTableSchema } from './schema.js';
import { coerceLiteral, coerceParam, type CqlValue, type EvalContext } from './values.js';

/** What resolving terms needs: literals' context, the bind parameters, and the ring hash. */
export interface TermContext extends EvalContext {
  params: readonly unknown[];
  /** The ring token (unsigned 64-bit) of a serialized partition key: for `token(<values>)` terms. */
  tokenOf?: (partitionKey: Uint8Array) => bigint;
}

export const FILTERING_REASON =
  'Cannot execute this query as it might involve data filtering and thus may have unpredictable performance. If you want to execute this query despite the performance unpredictability, use ALLOW FILTERING';

const TWO63 = 1n << 63n;
const TWO64 = 1n << 64n;

/** CQL tokens are signed 64-bit (as Cassandra's Murmur3 tokens); the ring's are unsigned: ring = cql + 2^63. */
export function cqlTokenToRing(t: bigint): bigint {
  return t + TWO63;
}

export function ringTokenToCql(t: bigint): bigint {
  return t - TWO63;
}

/** A term's value for a column of `type` (bind markers read their parameter). */
export function resolveTerm(t: Term, column: string, type: CqlType, ctx: TermContext): CqlValue | null {
  if (t.kind === 'bind') return coerceParam(ctx.params[t.index], t.index, column, type);
  return coerceLiteral(t, column, type, ctx);
}

/** A non-null integer term in [min, max] (TTL, TIMESTAMP, LIMIT), or null for a null parameter. */
export function resolveInteger(t: Term, what: string, min: number, max: number, ctx: TermContext): number | null {
  let n: number;
  if (t.kind === 'bind') {
    const v = ctx.params[t.index];
    if (v === null || v === undefined) return null;
    if (typeof v === 'bigint') n = Number(v);
    else if (typeof v === 'number') n = v;
    else throw badRequest(`Invalid value for bind marker ${t.index + 1} (${what}): expected an integer, got ${JSON.stringify(v)}`);
  } else if (t.kind === 'integer') n = Number(t.text);
  else throw badRequest(`${what} must be an integer`);
  if (!Number.isSafeInteger(n)) throw badRequest(`${what} must be an integer, got ${n}`);
  if (n < min || n > max) throw badRequest(`${what} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export interface TokenBound {
  /** Unsigned ring token. */
  token: bigint;
  inclusive: boolean;
}

export interface WhereAnalysis {
  /** Per partition key column: the = value(s) (IN gives several), or null when unrestricted. */
  partitionValues: Array<CqlValue[] | null>;
  token: { lower?: TokenBound; upper?: TokenBound } | null;
  clustering: ClusteringRestriction;
  /** Row filters (ALLOW FILTERING): regular columns, and clustering columns past the slice. */
  filters: RowFilter[];
  /** Partition-key column filters (a partial partition key with ALLOW FILTERING). */
  partitionFilters: Array<{ position: number; test: (v: CqlValue) => boolean }>;
  /** Why the query needs ALLOW FILTERING (null: it does not). */
  filteringNeeded: string | null;
}

/** Compares two non-null values of one type in CQL order (NaN compares unordered: only != passes). */
export function compareValues(type: CqlType, a: CqlValue, b: CqlValue): number {
  switch (type) {
    case 'int':
    case 'double':
    case 'float':
    case 'timestamp': {
      const x = a as number;
      const y = b as number;
      if (Number.isNaN(x) || Number.isNaN(y)) return NaN;
      return x < y ? -1 : x > y ? 1 : Object.is(x, -0) && Object.is(y, 0) ? -1 : Object.is(x, 0) && Object.is(y, -0) ? 1 : 0;
    }
    case 'bigint':
    case 'counter':
      return (a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0;
    case 'boolean':
      return Number(a) - Number(b);
    case 'text':
      return Buffer.compare(Buffer.from(a as string, 'utf8'), Buffer.from(b as string, 'utf8'));
    case 'blob':
      return Buffer.compare(a as Uint8Array, b as Uint8Array);
    case 'uuid':
    case 'timeuuid': {
      const enc = (v: CqlValue): Buffer => {
        const w = new ByteWriter();
        writeComponent(w, { name: '', type, order: 'asc' }, v);
        return w.finish();
      };
      return Buffer.compare(enc(a), enc(b));
    }
  }
}

function opTest(type: CqlType, op: RelationOp, bound: CqlValue): (v: CqlValue | null) => boolean {
  return (v) => {
    if (v === null) return false;
    const c = compareValues(type, v, bound);
    if (Number.isNaN(c)) return false;
    switch (op) {
      case '=':
        return c === 0;
      case '<':
        return c < 0;
      case '<=':
        return c <= 0;
      case '>':
        return c > 0;
      case '>=':
        return c >= 0;
    }
  };
}

function nonNull(v: CqlValue | null, column: string): CqlValue {
  if (v === null) throw badRequest(`Invalid null value in condition for column ${column}`, { column });
  return v;
}

function inValues(r: Extract<Relation, { kind: 'in' }>, type: CqlType, ctx: TermContext): CqlValue[] {
  if (Array.isArray(r.values)) return r.values.map((t) => nonNull(resolveTerm(t, r.column, type, ctx), r.column));
  const idx = r.values.index;
  const list = ctx.params[idx];
  if (!Array.isArray(list)) throw badRequest(`Invalid value for bind marker ${idx + 1} (IN list of "${r.column}"): expected an array`, { column: r.column });
  return list.map((v) => nonNull(coerceParam(v, idx, r.column, type), r.column));
}

function tokenValue(t: Term, schema: WideTableSchema, ctx: TermContext): bigint {
  if (t.kind === 'call' && t.name === 'token') {
    if (t.args.length !== schema.partitionKey.length) throw badRequest(`token() takes the ${schema.partitionKey.length} partition key values of ${schema.name}`);
    const vals = t.args.map((a, i) => resolveTerm(a, schema.partitionKey[i]!.name, schema.partitionKey[i]!.type, ctx));
    if (ctx.tokenOf === undefined) throw badRequest('token(<values>) is not available here');
    return ctx.tokenOf(serializePartitionKey(schema.partitionKey, vals));
  }
  let v: bigint | null = null;
  if (t.kind === 'integer') v = BigInt(t.text);
  else if (t.kind === 'bind') {
    const p = ctx.params[t.index];
    if (typeof p === 'bigint') v = p;
    else if (typeof p === 'number' && Number.isSafeInteger(p)) v = BigInt(p);
    else if (typeof p === 'string' && /^-?\d{1,20}$/.test(p)) v = BigInt(p);
    else throw badRequest(`Invalid value for bind marker ${t.index + 1} (token): expected a 64-bit integer (a number or a decimal string)`);
  } else throw badRequest('a token bound must be an integer, a bind marker or token(<partition key values>)');
  if (v < -TWO63 || v >= TWO63) throw badRequest(`token ${v} is outside the signed 64-bit range`);
  const ring = cqlTokenToRing(v);
  return ((ring % TWO64) + TWO64) % TWO64;
}

type ColumnRel = { op: RelationOp | 'in'; values: CqlValue[] };

/**
 * Analyzes a WHERE clause against a schema (Cassandra's StatementRestrictions, for ringkv's
 * subset). Throws Cassandra's error for what it rejects; `filteringNeeded` says when the query
 * is only allowed with ALLOW FILTERING (the caller decides, since writes never allow it).
 */
export function analyzeWhere(schema: WideTableSchema, where: readonly Relation[], ctx: TermContext): WhereAnalysis {
  const byColumn = new Map<string, ColumnRel[]>();
  let token: WhereAnalysis['token'] = null;
  for (const r of where) {
    if (r.kind === 'token') {
      const pkNames = schema.partitionKey.map((c) => c.name);
      if (r.columns.length !== pkNames.length || r.columns.some((c, i) => c !== pkNames[i])) {
        throw badRequest(`The token function arguments must be the partition key columns in order: token(${pkNames.join(', ')})`);
      }
      token ??= {};
      const value = tokenValue(r.value, schema, ctx);
      const setBound = (which: 'lower' | 'upper', inclusive: boolean): void => {
        if (token![which] !== undefined) throw badRequest(`More than one restriction was found for the ${which === 'lower' ? 'start' : 'end'} bound on token(${pkNames.join(', ')})`);
        token![which] = { token: value, inclusive };
      };
      if (r.op === '>' || r.op === '>=') setBound('lower', r.op === '>=');
      else if (r.op === '<' || r.op === '<=') setBound('upper', r.op === '<=');
      else {
        setBound('lower', true);
        setBound('upper', true);
      }
      continue;
    }
    const col = columnOf(schema, r.column);
    const list = byColumn.get(col.name) ?? [];
    if (r.kind === 'in') list.push({ op: 'in', values: inValues(r, col.type, ctx) });
    else list.push({ op: r.op, values: [nonNull(resolveTerm(r.value, col.name, col.type, ctx), col.name)] });
    byColumn.set(col.name, list);
    if (list.some((x) => x.op === '=' || x.op === 'in') && list.length > 1) {
      throw badRequest(`${col.name} cannot be restricted by more than one relation if it includes an Equal`, { column: col.name });
    }
  }
  let filteringNeeded: string | null = null;
  const partitionFilters: WhereAnalysis['partitionFilters'] = [];
  const partitionValues = schema.partitionKey.map((c, i) => {
    const rels = byColumn.get(c.name);
    if (rels === undefined) return null;
    const rel = rels[0]!;
    if (rel.op !== '=' && rel.op !== 'in') {
      throw badRequest(`Only EQ and IN relation are supported on the partition key (unless you use the token() function): ${c.name}`, { column: c.name });
    }
    const allowed = rel.values;
    partitionFilters.push({ position: i, test: (v) => allowed.some((a) => compareValues(c.type, v, a) === 0) });
    return rel.values;
  });
  const restrictedPk = partitionValues.filter((v) => v !== null).length;
  if (token !== null && restrictedPk > 0) {
    throw badRequest(`Columns ${schema.partitionKey.map((c) => c.name).join(', ')} cannot be restricted by both a normal relation and a token relation`);
  }
  const fullPk = restrictedPk === schema.partitionKey.length;
  if (restrictedPk > 0 && !fullPk) {
    const missing = schema.partitionKey.filter((_, i) => partitionValues[i] === null).map((c) => c.name);
    filteringNeeded = `${FILTERING_REASON} (partition key parts ${missing.join(', ')} are not restricted)`;
  }
  // Clustering: an =/IN prefix, then at most one range, then nothing unless filtering.
  const clustering: ClusteringRestriction = { eq: [] };
  const filters: RowFilter[] = [];
  let state: 'eq' | 'range' | 'gap' = 'eq';
  let stopper = '';
  schema.clustering.forEach((c, i) => {
    const rels = byColumn.get(c.name);
    if (rels === undefined) {
      if (state === 'eq') {
        state = 'gap';
        stopper = c.name;
      }
      return;
    }
    const asFilter = (why: string): void => {
      filteringNeeded ??= `${why}; with ALLOW FILTERING it is filtered row by row`;
      for (const rel of rels) {
        const vals = rel.values;
        const test =
          rel.op === 'in' ? (v: CqlValue | null) => v !== null && vals.some((a) => compareValues(c.type, v, a) === 0) : opTest(c.type, rel.op, vals[0]!);
        filters.push({ column: c.name, kind: 'clustering', position: i, test });
      }
    };
    if (state === 'gap') return asFilter(`PRIMARY KEY column "${c.name}" cannot be restricted as preceding column "${stopper}" is not restricted`);
    if (state === 'range') return asFilter(`Clustering column "${c.name}" cannot be restricted (preceding column "${stopper}" is restricted by a non-EQ relation)`);
    const first = rels[0]!;
    if (first.op === '=' || first.op === 'in') {
      clustering.eq.push(first.values);
      return;
    }
    let lower: ValueBound | undefined;
    let upper: ValueBound | undefined;
    for (const rel of rels) {
      const b = { value: rel.values[0]!, inclusive: rel.op === '>=' || rel.op === '<=' };
      if (rel.op === '>' || rel.op === '>=') {
        if (lower !== undefined) throw badRequest(`More than one restriction was found for the start bound on ${c.name}`, { column: c.name });
        lower = b;
      } else {
        if (upper !== undefined) throw badRequest(`More than one restriction was found for the end bound on ${c.name}`, { column: c.name });
        upper = b;
      }
    }
    clustering.range = { column: i, ...(lower !== undefined ? { lower } : {}), ...(upper !== undefined ? { upper } : {}) };
    state = 'range';
    stopper = c.name;
  });
  const clusteringRestricted = clustering.eq.length > 0 || clustering.range !== undefined;
  if (!fullPk && clusteringRestricted) filteringNeeded ??= `${FILTERING_REASON} (clustering columns are restricted without the full partition key)`;
  schema.regular.forEach((c, i) => {
    const rels = byColumn.get(c.name);
    if (rels === undefined) return;
    filteringNeeded ??= `${FILTERING_REASON} (column ${c.name} is not part of the primary key)`;
    for (const rel of rels) {
      const vals = rel.values;
      const test = rel.op === 'in' ? (v: CqlValue | null) => v !== null && vals.some((a) => compareValues(c.type, v, a) === 0) : opTest(c.type, rel.op, vals[0]!);
      filters.push({ column: c.name, kind: 'regular', position: i, test });
    }
  });
  return { partitionValues, token, clustering, filters, partitionFilters, filteringNeeded };
}

/** The cartesian product of per-column value lists, bounded. */
export function cartesian(lists: ReadonlyArray<readonly CqlValue[]>, max: number, what: string): CqlValue[][] {
  let out: CqlValue[][] = [[]];
  for (const l of lists) {
    if (out.length * l.length > max) throw badRequest(`the IN restrictions select more than ${max} ${what}`);
    const next: CqlValue[][] = [];
    for (const prefix of out) for (const v of l) next.push([...prefix, v]);
    out = next;
  }
  return out;
}
