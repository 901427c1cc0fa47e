/**
 * CQL's table definitions (DDL): CREATE TABLE (columns, the primary key inline or as a clause,
 * CLUSTERING ORDER BY and integer options), DROP TABLE and ALTER TABLE ... ADD; parser.ts
 * dispatches here after the statement's first keyword. Keyspaces, indexes, views, types,
 * collections, static columns and COMPACT STORAGE are refused by name.
 *
 * Pure: no I/O.
 */
import { CQL_TYPES, type AlterTableAdd, type ColumnSpec, type CqlType, type CreateTable, type DropTable, type Order } from './ast.js';
import { CqlSyntaxError } from './errors.js';
import type { Token } from './lexer.js';
import type { TokenCursor } from './token-cursor.js';

const TYPE_ALIASES: Record<string, CqlType> = { varchar: 'text' };

/** A column type (scalar types only; `varchar` is `text`). */
function columnType(c: TokenCursor): CqlType {
  const t = c.peek();
  if (t.kind !== 'ident') return c.fail(`a column type (${CQL_TYPES.join(', ')})`);
  const name = TYPE_ALIASES[t.text] ?? t.text;
  if (!(CQL_TYPES as readonly string[]).includes(name)) {
    throw new CqlSyntaxError(`unsupported column type ${t.text}`, t.pos, `one of ${CQL_TYPES.join(', ')}`);
  }
  c.skip();
  if (c.isSym('<')) throw new CqlSyntaxError('collection and frozen types are not supported', c.peek().pos, "',' or ')'");
  return name as CqlType;
}

/** `CREATE TABLE [IF NOT EXISTS] t (columns, PRIMARY KEY ...) [WITH ...]`, after the CREATE. */
export function parseCreateTable(c: TokenCursor): CreateTable {
  if (!c.isKw('table') && !c.isKw('columnfamily')) {
    c.fail('TABLE (only CREATE TABLE is supported: no keyspaces, indexes, views or types)');
  }
  c.skip();
  let ifNotExists = false;
  if (c.acceptKw('if')) {
    c.expectKw('not');
    c.expectKw('exists');
    ifNotExists = true;
  }
  const table = c.tableName();
  c.expectSym('(');
  const columns: ColumnSpec[] = [];
  let pk: { partitionKey: string[]; clustering: string[] } | undefined;
  const setPk = (p: { partitionKey: string[]; clustering: string[] }, at: Token): void => {
    if (pk !== undefined) throw new CqlSyntaxError('multiple PRIMARY KEYs specified (exactly one is allowed)', at.pos, "',' or ')'");
    pk = p;
  };
  do {
    const at = c.peek();
    if (c.isKw('primary')) {
      c.skip();
      c.expectKw('key');
      setPk(primaryKeySpec(c), at);
      continue;
    }
    const name = c.ident('column name or PRIMARY KEY');
    const type = columnType(c);
    columns.push({ name, type });
    c.countColumns(columns.length);
    if (c.isKw('static')) throw new CqlSyntaxError('static columns are not supported', c.peek().pos, "',' or ')'");
    if (c.isKw('primary')) {
      const pat = c.next();
      c.expectKw('key');
      setPk({ partitionKey: [name], clustering: [] }, pat);
    }
  } while (c.acceptSym(','));
  c.expectSym(')');
  if (pk === undefined) c.fail('a PRIMARY KEY (every table needs one)');
  const out: CreateTable = { kind: 'createTable', ifNotExists, table, columns, ...pk, clusteringOrder: [], options: [] };
  if (c.acceptKw('with')) {
    do {
      const at = c.peek();
      if (c.acceptKw('clustering')) {
        if (out.clusteringOrder.length > 0) throw new CqlSyntaxError('CLUSTERING ORDER BY given twice', at.pos, 'AND <option>');
        c.expectKw('order');
        c.expectKw('by');
        c.expectSym('(');
        do {
          const column = c.ident('clustering column');
          let order: Order = 'asc';
          if (c.acceptKw('desc')) order = 'desc';
          else if (!c.acceptKw('asc')) c.fail('ASC or DESC');
          out.clusteringOrder.push({ column, order });
        } while (c.acceptSym(','));
        c.expectSym(')');
      } else if (c.isKw('compact')) {
        throw new CqlSyntaxError('COMPACT STORAGE is not supported', at.pos, 'CLUSTERING ORDER BY or <option> = <integer>');
      } else {
        const name = c.ident('table option');
        c.expectSym('=');
        const v = c.peek();
        if (v.kind !== 'integer') c.fail(`an integer for ${name}`);
        c.skip();
        out.options.push({ name, value: Number(v.text) });
      }
    } while (c.acceptKw('and'));
  }
  return out;
}

/** `(pk, c1, c2)` or `((pk1, pk2), c1)`, after PRIMARY KEY. */
function primaryKeySpec(c: TokenCursor): { partitionKey: string[]; clustering: string[] } {
  c.expectSym('(');
  const partitionKey: string[] = [];
  if (c.acceptSym('(')) {
    do partitionKey.push(c.ident('partition key column'));
    while (c.acceptSym(','));
    c.expectSym(')');
  } else partitionKey.push(c.ident('partition key column'));
  const clustering: string[] = [];
  while (c.acceptSym(',')) {
    clustering.push(c.ident('clustering column'));
    c.countColumns(clustering.length);
  }
  c.expectSym(')');
  return { partitionKey, clustering };
}

/** `DROP TABLE [IF EXISTS] t`, after the DROP. */
export function parseDropTable(c: TokenCursor): DropTable {
  if (!c.isKw('table') && !c.isKw('columnfamily')) c.fail('TABLE (only DROP TABLE is supported)');
  c.skip();
  let ifExists = false;
  if (c.acceptKw('if')) {
    c.expectKw('exists');
    ifExists = true;
  }
  return { kind: 'dropTable', ifExists, table: c.tableName() };
}

/** `ALTER TABLE t ADD c type` or `ADD (c type, ...)`, after the ALTER. */
export function parseAlterTable(c: TokenCursor): AlterTableAdd {
  if (!c.isKw('table') && !c.isKw('columnfamily')) c.fail('TABLE (only ALTER TABLE ... ADD is supported)');
  c.skip();
  const table = c.tableName();
  if (!c.isKw('add')) c.fail('ADD (only ALTER TABLE ... ADD is supported)');
  c.skip();
  const add: ColumnSpec[] = [];
  const one = (): void => {
    const name = c.ident('column name');
    add.push({ name, type: columnType(c) });
    c.countColumns(add.length);
  };
  if (c.acceptSym('(')) {
    do one();
    while (c.acceptSym(','));
    c.expectSym(')');
  } else one();
  return { kind: 'alterTable', table, add };
}
