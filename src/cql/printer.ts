/**
 * AST → CQL text, canonical: keywords upper case, identifiers quoted only when they must be
 * (reserved words, upper case, other characters), one space between tokens. For every AST the
 * parser can produce, `parseCql(printCql(ast))` equals `ast` (property-tested).
 *
 * Pure module: no I/O.
 */
import type { Relation, Statement, Term } from './ast.js';
import { RESERVED_KEYWORDS } from './grammar.js';

const PLAIN_IDENT = /^[a-z][a-z0-9_]*$/;

/** An identifier as CQL text: bare when that re-lexes to the same name, else "quoted". */
export function printIdent(name: string): string {
  if (PLAIN_IDENT.test(name) && !RESERVED_KEYWORDS.has(name)) return name;
  return `"${name.replace(/"/g, '""')}"`;
}

export function printTerm(t: Term): string {
  switch (t.kind) {
    case 'string':
      return `'${t.value.replace(/'/g, "''")}'`;
    case 'integer':
    case 'float':
      return t.text;
    case 'boolean':
      return t.value ? 'true' : 'false';
    case 'null':
      return 'null';
    case 'blob':
      return `0x${t.hex}`;
    case 'uuid':
      return t.value;
    case 'bind':
      return '?';
    case 'call':
      return `${t.name === 'totimestamp' ? 'toTimestamp' : t.name}(${t.args.map(printTerm).join(', ')})`;
  }
}

function printRelation(r: Relation): string {
  switch (r.kind) {
    case 'compare':
      return `${printIdent(r.column)} ${r.op} ${printTerm(r.value)}`;
    case 'in':
      return `${printIdent(r.column)} IN ${Array.isArray(r.values) ? `(${r.values.map(printTerm).join(', ')})` : '?'}`;
    case 'token':
      return `token(${r.columns.map(printIdent).join(', ')}) ${r.op} ${printTerm(r.value)}`;
  }
}

function printWhere(rs: Relation[]): string {
  return rs.length === 0 ? '' : ` WHERE ${rs.map(printRelation).join(' AND ')}`;
}

function printUsing(ttl: Term | undefined, timestamp: Term | undefined): string {
  const parts: string[] = [];
  if (ttl !== undefined) parts.push(`TTL ${printTerm(ttl)}`);
  if (timestamp !== undefined) parts.push(`TIMESTAMP ${printTerm(timestamp)}`);
  return parts.length === 0 ? '' : ` USING ${parts.join(' AND ')}`;
}

export function printCql(s: Statement): string {
  switch (s.kind) {
    case 'createTable': {
      const cols = s.columns.map((c) => `${printIdent(c.name)} ${c.type}`);
      const pk = s.partitionKey.length === 1 ? printIdent(s.partitionKey[0]!) : `(${s.partitionKey.map(printIdent).join(', ')})`;
      cols.push(`PRIMARY KEY (${[pk, ...s.clustering.map(printIdent)].join(', ')})`);
      const withs: string[] = [];
      if (s.clusteringOrder.length > 0) {
        withs.push(`CLUSTERING ORDER BY (${s.clusteringOrder.map((o) => `${printIdent(o.column)} ${o.order.toUpperCase()}`).join(', ')})`);
      }
      for (const o of s.options) withs.push(`${printIdent(o.name)} = ${o.value}`);
      return `CREATE TABLE ${s.ifNotExists ? 'IF NOT EXISTS ' : ''}${printIdent(s.table)} (${cols.join(', ')})${withs.length > 0 ? ` WITH ${withs.join(' AND ')}` : ''}`;
    }
    case 'dropTable':
      return `DROP TABLE ${s.ifExists ? 'IF EXISTS ' : ''}${printIdent(s.table)}`;
    case 'alterTable':
      return `ALTER TABLE ${printIdent(s.table)} ADD ${s.add.length === 1 ? `${printIdent(s.add[0]!.name)} ${s.add[0]!.type}` : `(${s.add.map((c) => `${printIdent(c.name)} ${c.type}`).join(', ')})`}`;
    case 'insert':
      return `INSERT INTO ${printIdent(s.table)} (${s.columns.map(printIdent).join(', ')}) VALUES (${s.values.map(printTerm).join(', ')})${printUsing(s.ttl, s.timestamp)}`;
    case 'update': {
      const sets = s.assignments.map((a) =>
        a.kind === 'set' ? `${printIdent(a.column)} = ${printTerm(a.value)}` : `${printIdent(a.column)} = ${printIdent(a.column)} ${a.op} ${printTerm(a.value)}`,
      );
      return `UPDATE ${printIdent(s.table)}${printUsing(s.ttl, s.timestamp)} SET ${sets.join(', ')}${printWhere(s.where)}`;
    }
    case 'delete':
      return `DELETE ${s.columns.length > 0 ? `${s.columns.map(printIdent).join(', ')} ` : ''}FROM ${printIdent(s.table)}${printUsing(undefined, s.timestamp)}${printWhere(s.where)}`;
    case 'select': {
      const sel = s.selection.kind === 'all' ? '*' : s.selection.kind === 'count' ? 'COUNT(*)' : s.selection.columns.map(printIdent).join(', ');
      let out = `SELECT ${sel} FROM ${printIdent(s.table)}${printWhere(s.where)}`;
      if (s.orderBy.length > 0) out += ` ORDER BY ${s.orderBy.map((o) => `${printIdent(o.column)} ${o.order.toUpperCase()}`).join(', ')}`;
      if (s.perPartitionLimit !== undefined) out += ` PER PARTITION LIMIT ${printTerm(s.perPartitionLimit)}`;
      if (s.limit !== undefined) out += ` LIMIT ${printTerm(s.limit)}`;
      if (s.allowFiltering) out += ' ALLOW FILTERING';
      return out;
    }
  }
}
