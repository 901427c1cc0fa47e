/**
 * Recursive-descent parser for ringkv's CQL subset: tokens (lexer.ts) → typed AST (ast.ts).
 *
 * Hand-written rather than generated: the grammar is a few dozen productions, CQL's
 * non-reserved keywords (a column may be called `timestamp`, `key`, `ttl`) are decided by
 * context at each use, every error must name its position and what was expected, and every
 * input dimension has a named bound checked before work is done. A parser toolkit would add
 * a dependency and a grammar language for less control over exactly those points.
 *
 * Bounds (CQL_LIMITS in grammar.ts): statement length, token count, call nesting, IN-list size, columns per
 * statement, identifier size. A statement past a bound is a syntax error naming the bound.
 *
 * Pure module: no I/O.
 */
import { RingkvError } from '../util/errors.js';
import {
  CALL_NAMES,
  CQL_TYPES,
  type AlterTableAdd,
  type Assignment,
  type CallName,
  type ColumnSpec,
  type CqlType,
  type CreateTable,
  type Delete,
  type DropTable,
  type Insert,
  type Order,
  type Relation,
  type RelationOp,
  type Select,
  type Selection,
  type Statement,
  type Term,
  type Update,
} from './ast.js';
import { CqlSyntaxError } from './errors.js';
import { CQL_LIMITS, lwtUnsupported, RESERVED_KEYWORDS } from './grammar.js';
import { tokenize, type Token } from './lexer.js';

const TYPE_ALIASES: Record<string, CqlType> = { varchar: 'text' };
const RELATION_OPS: ReadonlySet<string> = new Set(['=', '<', '<=', '>', '>=']);

function describe(t: Token): string {
  switch (t.kind) {
    case 'eof':
      return 'end of statement';
    case 'string':
      return `string '${t.text.length > 20 ? t.text.slice(0, 20) + '...' : t.text}'`;
    case 'qident':
      return `"${t.text}"`;
    default:
      return `'${t.text}'`;
  }
}

class Parser {
  private i = 0;
  private binds = 0;
  private depth = 0;

  constructor(private readonly toks: Token[]) {}

  private peek(k = 0): Token {
    return this.toks[Math.min(this.i + k, this.toks.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'eof') this.i++;
    return t;
  }

  private fail(expected: string, t: Token = this.peek()): never {
    throw new CqlSyntaxError(`unexpected ${describe(t)}`, t.pos, expected);
  }

  /** Is the next token the (reserved or not) keyword `kw`? Quoted identifiers never are. */
  private isKw(kw: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'ident' && t.text === kw;
  }

  private acceptKw(kw: string): boolean {
    if (!this.isKw(kw)) return false;
    this.i++;
    return true;
  }

  private expectKw(kw: string): void {
    if (!this.acceptKw(kw)) this.fail(kw.toUpperCase());
  }

  private isSym(s: string, k = 0): boolean {
    const t = this.peek(k);
    return t.kind === 'symbol' && t.text === s;
  }

  private acceptSym(s: string): boolean {
    if (!this.isSym(s)) return false;
    this.i++;
    return true;
  }

  private expectSym(s: string): void {
    if (!this.acceptSym(s)) this.fail(`'${s}'`);
  }

  /** A column or table name: an unquoted non-reserved identifier or a quoted one. */
  private ident(what: string): string {
    const t = this.peek();
    if (t.kind === 'qident' || (t.kind === 'ident' && !RESERVED_KEYWORDS.has(t.text))) {
      this.i++;
      if (Buffer.byteLength(t.text, 'utf8') > CQL_LIMITS.maxIdentifierBytes) {
        throw new CqlSyntaxError(`${what} is longer than ${CQL_LIMITS.maxIdentifierBytes} bytes`, t.pos, `a shorter ${what}`);
      }
      if (t.text.includes('\0')) throw new CqlSyntaxError(`${what} contains a NUL character`, t.pos, `a ${what} without NUL`);
      return t.text;
    }
    if (t.kind === 'ident') this.fail(`${what} (${t.text.toUpperCase()} is a reserved keyword: quote it as "${t.text}")`);
    return this.fail(what);
  }

  private tableName(): string {
    const name = this.ident('table name');
    if (this.isSym('.')) {
      throw new CqlSyntaxError('keyspace-qualified table names are not supported (ringkv has no keyspaces)', this.peek().pos, 'a table name without a keyspace');
    }
    return name;
  }

  private countColumns(n: number): void {
    if (n > CQL_LIMITS.maxColumns) throw new CqlSyntaxError(`more than ${CQL_LIMITS.maxColumns} columns`, this.peek().pos, 'fewer columns');
  }

  statement(): Statement {
    const t = this.peek();
    let s: Statement;
    if (this.acceptKw('select')) s = this.select();
    else if (this.acceptKw('insert')) s = this.insert();
    else if (this.acceptKw('update')) s = this.update();
    else if (this.acceptKw('delete')) s = this.delete();
    else if (this.acceptKw('create')) s = this.create();
    else if (this.acceptKw('drop')) s = this.drop();
    else if (this.acceptKw('alter')) s = this.alter();
    else if (this.isKw('begin') || this.isKw('apply')) {
      throw new CqlSyntaxError('BATCH statements are not supported', t.pos, 'SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, DROP TABLE or ALTER TABLE');
    } else this.fail('SELECT, INSERT, UPDATE, DELETE, CREATE TABLE, DROP TABLE or ALTER TABLE');
    this.acceptSym(';');
    if (this.peek().kind !== 'eof') this.fail('end of statement');
    return s;
  }

  // ---- terms --------------------------------------------------------------------------

  term(): Term {
    const t = this.peek();
    switch (t.kind) {
      case 'string':
        this.i++;
        return { kind: 'string', value: t.text };
      case 'integer':
        this.i++;
        return { kind: 'integer', text: t.text };
      case 'float':
        this.i++;
        return { kind: 'float', text: t.text };
      case 'blob':
        this.i++;
        return { kind: 'blob', hex: t.text };
      case 'uuid':
        this.i++;
        return { kind: 'uuid', value: t.text };
      case 'bind':
        this.i++;
        return { kind: 'bind', index: this.binds++ };
      case 'symbol':
        if (t.text === '-') {
          const n = this.peek(1);
          if (n.kind === 'integer' || n.kind === 'float') {
            this.i += 2;
            return n.kind === 'integer' ? { kind: 'integer', text: `-${n.text}` } : { kind: 'float', text: `-${n.text}` };
          }
        }
        if (t.text === ':') throw new CqlSyntaxError('named bind markers (:name) are not supported', t.pos, 'a value or ?');
        return this.fail('a value');
      case 'ident': {
        if (t.text === 'true' || t.text === 'false') {
          this.i++;
          return { kind: 'boolean', value: t.text === 'true' };
        }
        if (t.text === 'null') {
          this.i++;
          return { kind: 'null' };
        }
        if (this.isSym('(', 1)) return this.call();
        return this.fail('a value');
      }
      default:
        return this.fail('a value');
    }
  }

  private call(): Term {
    const t = this.next();
    const name = t.text;
    if (!(CALL_NAMES as readonly string[]).includes(name)) {
      throw new CqlSyntaxError(`unknown function ${name}`, t.pos, `one of ${CALL_NAMES.join(', ')}`);
    }
    if (++this.depth > CQL_LIMITS.maxNestingDepth) {
      throw new CqlSyntaxError(`function calls nested deeper than ${CQL_LIMITS.maxNestingDepth}`, t.pos, 'less nesting');
    }
    this.expectSym('(');
    const args: Term[] = [];
    if (!this.isSym(')')) {
      do {
        if (args.length >= CQL_LIMITS.maxColumns) throw new CqlSyntaxError(`more than ${CQL_LIMITS.maxColumns} arguments`, this.peek().pos, 'fewer arguments');
        args.push(this.term());
      } while (this.acceptSym(','));
    }
    this.expectSym(')');
    this.depth--;
    return { kind: 'call', name: name as CallName, args };
  }

  /** `USING TTL t AND TIMESTAMP t` in either order, each at most once. */
  private usingClause(allowTtl: boolean): { ttl?: Term; timestamp?: Term } {
    const out: { ttl?: Term; timestamp?: Term } = {};
    do {
      const t = this.peek();
      if (allowTtl && this.acceptKw('ttl')) {
        if (out.ttl !== undefined) throw new CqlSyntaxError('TTL given twice', t.pos, 'TIMESTAMP');
        out.ttl = this.term();
      } else if (this.acceptKw('timestamp')) {
        if (out.timestamp !== undefined) throw new CqlSyntaxError('TIMESTAMP given twice', t.pos, allowTtl ? 'TTL' : 'WHERE');
        out.timestamp = this.term();
      } else this.fail(allowTtl ? 'TTL or TIMESTAMP' : 'TIMESTAMP');
    } while (this.acceptKw('and'));
    return out;
  }

  private rejectLwt(): void {
    if (this.isKw('if')) throw lwtUnsupported();
  }

  // ---- WHERE --------------------------------------------------------------------------

  private relationOp(): RelationOp {
    const t = this.peek();
    if (t.kind === 'symbol' && RELATION_OPS.has(t.text)) {
      this.i++;
      return t.text as RelationOp;
    }
    if (t.kind === 'symbol' && t.text === '!=') throw new CqlSyntaxError('!= is not supported in WHERE', t.pos, '=, <, <=, >, >= or IN');
    if (t.kind === 'ident' && (t.text === 'contains' || t.text === 'like' || t.text === 'is')) {
      throw new CqlSyntaxError(`${t.text.toUpperCase()} is not supported in WHERE`, t.pos, '=, <, <=, >, >= or IN');
    }
    return this.fail('=, <, <=, >, >= or IN');
  }

  private relation(): Relation {
    const t = this.peek();
    if (this.acceptKw('token')) {
      this.expectSym('(');
      const columns: string[] = [];
      do columns.push(this.ident('partition key column'));
      while (this.acceptSym(','));
      this.expectSym(')');
      const op = this.relationOp();
      return { kind: 'token', columns, op, value: this.term() };
    }
    if (this.isSym('(')) throw new CqlSyntaxError('multi-column relations ((c1, c2) > (...)) are not supported', t.pos, 'a column name');
    const column = this.ident('column name');
    if (this.acceptKw('in')) {
      if (this.peek().kind === 'bind') {
        this.i++;
        return { kind: 'in', column, values: { kind: 'bind', index: this.binds++ } };
      }
      this.expectSym('(');
      const values: Term[] = [];
      if (!this.isSym(')')) {
        do {
          if (values.length >= CQL_LIMITS.maxInListItems) {
            throw new CqlSyntaxError(`IN list has more than ${CQL_LIMITS.maxInListItems} values`, this.peek().pos, 'a shorter IN list');
          }
          values.push(this.term());
        } while (this.acceptSym(','));
      }
      this.expectSym(')');
      return { kind: 'in', column, values };
    }
    const op = this.relationOp();
    return { kind: 'compare', column, op, value: this.term() };
  }

  private whereClause(): Relation[] {
    this.expectKw('where');
    const out: Relation[] = [];
    do {
      if (out.length >= CQL_LIMITS.maxColumns) throw new CqlSyntaxError(`more than ${CQL_LIMITS.maxColumns} relations`, this.peek().pos, 'fewer relations');
      out.push(this.relation());
    } while (this.acceptKw('and'));
    return out;
  }

  // ---- statements ---------------------------------------------------------------------

  private select(): Select {
    let selection: Selection;
    if (this.acceptSym('*')) selection = { kind: 'all' };
    else if (this.isKw('count') && this.isSym('(', 1)) {
      this.i += 2;
      const a = this.peek();
      if (a.kind === 'integer' && a.text === '1') this.i++;
      else if (!this.acceptSym('*')) this.fail('* or 1 (COUNT(*) or COUNT(1))');
      this.expectSym(')');
      selection = { kind: 'count' };
    } else {
      // DISTINCT and JSON are not reserved: `SELECT json FROM t` selects a column called json.
      if ((this.isKw('distinct') || this.isKw('json')) && !this.isKw('from', 1) && !this.isSym(',', 1)) {
        throw new CqlSyntaxError(`SELECT ${this.peek().text.toUpperCase()} is not supported`, this.peek().pos, '*, COUNT(*) or column names');
      }
      const columns: string[] = [];
      do {
        columns.push(this.ident('column name or *'));
        this.countColumns(columns.length);
        if (this.isSym('(')) throw new CqlSyntaxError('functions in the selection are not supported (only COUNT(*))', this.peek().pos, "',' or FROM");
        if (this.isKw('as')) throw new CqlSyntaxError('column aliases (AS) are not supported', this.peek().pos, "',' or FROM");
      } while (this.acceptSym(','));
      selection = { kind: 'columns', columns };
    }
    this.expectKw('from');
    const table = this.tableName();
    const where = this.isKw('where') ? this.whereClause() : [];
    if (this.isKw('group')) throw new CqlSyntaxError('GROUP BY is not supported', this.peek().pos, 'ORDER BY, LIMIT or end of statement');
    const orderBy: Select['orderBy'] = [];
    if (this.acceptKw('order')) {
      this.expectKw('by');
      do {
        const column = this.ident('clustering column');
        let order: Order = 'asc';
        if (this.acceptKw('desc')) order = 'desc';
        else this.acceptKw('asc');
        orderBy.push({ column, order });
        this.countColumns(orderBy.length);
      } while (this.acceptSym(','));
    }
    const out: Select = { kind: 'select', table, selection, where, orderBy, allowFiltering: false };
    // Cassandra's order is PER PARTITION LIMIT then LIMIT; either order is accepted, once each.
    for (let k = 0; k < 2; k++) {
      const t = this.peek();
      if (this.isKw('per')) {
        if (out.perPartitionLimit !== undefined) throw new CqlSyntaxError('PER PARTITION LIMIT given twice', t.pos, 'LIMIT, ALLOW FILTERING or end of statement');
        this.i++;
        this.expectKw('partition');
        this.expectKw('limit');
        out.perPartitionLimit = this.limitTerm();
      } else if (this.isKw('limit')) {
        if (out.limit !== undefined) throw new CqlSyntaxError('LIMIT given twice', t.pos, 'PER PARTITION LIMIT, ALLOW FILTERING or end of statement');
        this.i++;
        out.limit = this.limitTerm();
      }
    }
    if (this.acceptKw('allow')) {
      this.expectKw('filtering');
      out.allowFiltering = true;
    }
    return out;
  }

  private limitTerm(): Term {
    const t = this.peek();
    if (t.kind === 'integer' || t.kind === 'bind') return this.term();
    return this.fail('a positive integer or ?');
  }

  private insert(): Insert {
    this.expectKw('into');
    const table = this.tableName();
    this.expectSym('(');
    const columns: string[] = [];
    do {
      columns.push(this.ident('column name'));
      this.countColumns(columns.length);
    } while (this.acceptSym(','));
    this.expectSym(')');
    if (this.isKw('json')) throw new CqlSyntaxError('INSERT JSON is not supported', this.peek().pos, '(column, ...) VALUES');
    this.expectKw('values');
    const valuesPos = this.peek().pos;
    this.expectSym('(');
    const values: Term[] = [];
    do {
      values.push(this.term());
      this.countColumns(values.length);
    } while (this.acceptSym(','));
    this.expectSym(')');
    if (values.length !== columns.length) {
      throw new CqlSyntaxError(`${columns.length} columns named but ${values.length} values given`, valuesPos, `${columns.length} values`);
    }
    this.rejectLwt();
    const out: Insert = { kind: 'insert', table, columns, values };
    if (this.acceptKw('using')) Object.assign(out, this.usingClause(true));
    this.rejectLwt();
    return out;
  }

  private update(): Update {
    const table = this.tableName();
    const out: Update = { kind: 'update', table, assignments: [], where: [] };
    if (this.acceptKw('using')) Object.assign(out, this.usingClause(true));
    this.expectKw('set');
    do {
      out.assignments.push(this.assignment());
      this.countColumns(out.assignments.length);
    } while (this.acceptSym(','));
    out.where = this.whereClause();
    this.rejectLwt();
    return out;
  }

  private assignment(): Assignment {
    const column = this.ident('column name');
    if (this.isSym('[') || this.isSym('.')) throw new CqlSyntaxError('collection and UDT element updates are not supported', this.peek().pos, "'='");
    this.expectSym('=');
    const t = this.peek();
    // `c = c + 3` / `c = c - 3`: an identifier that is not a call, a boolean or null.
    if ((t.kind === 'qident' || (t.kind === 'ident' && !RESERVED_KEYWORDS.has(t.text))) && !this.isSym('(', 1)) {
      const other = this.ident('column name');
      if (other !== column) throw new CqlSyntaxError(`only ${column} = ${column} + <value> or ${column} - <value> may name a column`, t.pos, column);
      const opTok = this.peek();
      if (!this.isSym('+') && !this.isSym('-')) this.fail("'+' or '-'");
      this.i++;
      return { kind: 'counter', column, op: opTok.text as '+' | '-', value: this.term() };
    }
    return { kind: 'set', column, value: this.term() };
  }

  private delete(): Delete {
    const columns: string[] = [];
    if (!this.isKw('from')) {
      do {
        columns.push(this.ident('column name or FROM'));
        this.countColumns(columns.length);
        if (this.isSym('[') || this.isSym('.')) throw new CqlSyntaxError('collection and UDT element deletes are not supported', this.peek().pos, "',' or FROM");
      } while (this.acceptSym(','));
    }
    this.expectKw('from');
    const table = this.tableName();
    const out: Delete = { kind: 'delete', table, columns, where: [] };
    if (this.acceptKw('using')) {
      const u = this.usingClause(false);
      if (u.timestamp !== undefined) out.timestamp = u.timestamp;
    }
    out.where = this.whereClause();
    this.rejectLwt();
    return out;
  }

  private type(): CqlType {
    const t = this.peek();
    if (t.kind !== 'ident') return this.fail(`a column type (${CQL_TYPES.join(', ')})`);
    const name = TYPE_ALIASES[t.text] ?? t.text;
    if (!(CQL_TYPES as readonly string[]).includes(name)) {
      throw new CqlSyntaxError(`unsupported column type ${t.text}`, t.pos, `one of ${CQL_TYPES.join(', ')}`);
    }
    this.i++;
    if (this.isSym('<')) throw new CqlSyntaxError('collection and frozen types are not supported', this.peek().pos, "',' or ')'");
    return name as CqlType;
  }

  private create(): CreateTable {
    if (!this.isKw('table') && !this.isKw('columnfamily')) {
      this.fail('TABLE (only CREATE TABLE is supported: no keyspaces, indexes, views or types)');
    }
    this.i++;
    let ifNotExists = false;
    if (this.acceptKw('if')) {
      this.expectKw('not');
      this.expectKw('exists');
      ifNotExists = true;
    }
    const table = this.tableName();
    this.expectSym('(');
    const columns: ColumnSpec[] = [];
    let pk: { partitionKey: string[]; clustering: string[] } | undefined;
    const setPk = (p: { partitionKey: string[]; clustering: string[] }, at: Token): void => {
      if (pk !== undefined) throw new CqlSyntaxError('multiple PRIMARY KEYs specified (exactly one is allowed)', at.pos, "',' or ')'");
      pk = p;
    };
    do {
      const at = this.peek();
      if (this.isKw('primary')) {
        this.i++;
        this.expectKw('key');
        setPk(this.primaryKeySpec(), at);
        continue;
      }
      const name = this.ident('column name or PRIMARY KEY');
      const type = this.type();
      columns.push({ name, type });
      this.countColumns(columns.length);
      if (this.isKw('static')) throw new CqlSyntaxError('static columns are not supported', this.peek().pos, "',' or ')'");
      if (this.isKw('primary')) {
        const pat = this.next();
        this.expectKw('key');
        setPk({ partitionKey: [name], clustering: [] }, pat);
      }
    } while (this.acceptSym(','));
    this.expectSym(')');
    if (pk === undefined) this.fail('a PRIMARY KEY (every table needs one)');
    const out: CreateTable = { kind: 'createTable', ifNotExists, table, columns, ...pk, clusteringOrder: [], options: [] };
    if (this.acceptKw('with')) {
      do {
        const at = this.peek();
        if (this.acceptKw('clustering')) {
          if (out.clusteringOrder.length > 0) throw new CqlSyntaxError('CLUSTERING ORDER BY given twice', at.pos, 'AND <option>');
          this.expectKw('order');
          this.expectKw('by');
          this.expectSym('(');
          do {
            const column = this.ident('clustering column');
            let order: Order = 'asc';
            if (this.acceptKw('desc')) order = 'desc';
            else if (!this.acceptKw('asc')) this.fail('ASC or DESC');
            out.clusteringOrder.push({ column, order });
          } while (this.acceptSym(','));
          this.expectSym(')');
        } else if (this.isKw('compact')) {
          throw new CqlSyntaxError('COMPACT STORAGE is not supported', at.pos, 'CLUSTERING ORDER BY or <option> = <integer>');
        } else {
          const name = this.ident('table option');
          this.expectSym('=');
          const v = this.peek();
          if (v.kind !== 'integer') this.fail(`an integer for ${name}`);
          this.i++;
          out.options.push({ name, value: Number(v.text) });
        }
      } while (this.acceptKw('and'));
    }
    return out;
  }

  private primaryKeySpec(): { partitionKey: string[]; clustering: string[] } {
    this.expectSym('(');
    const partitionKey: string[] = [];
    if (this.acceptSym('(')) {
      do partitionKey.push(this.ident('partition key column'));
      while (this.acceptSym(','));
      this.expectSym(')');
    } else partitionKey.push(this.ident('partition key column'));
    const clustering: string[] = [];
    while (this.acceptSym(',')) {
      clustering.push(this.ident('clustering column'));
      this.countColumns(clustering.length);
    }
    this.expectSym(')');
    return { partitionKey, clustering };
  }

  private drop(): DropTable {
    if (!this.isKw('table') && !this.isKw('columnfamily')) this.fail('TABLE (only DROP TABLE is supported)');
    this.i++;
    let ifExists = false;
    if (this.acceptKw('if')) {
      this.expectKw('exists');
      ifExists = true;
    }
    return { kind: 'dropTable', ifExists, table: this.tableName() };
  }

  private alter(): AlterTableAdd {
    if (!this.isKw('table') && !this.isKw('columnfamily')) this.fail('TABLE (only ALTER TABLE ... ADD is supported)');
    this.i++;
    const table = this.tableName();
    if (!this.isKw('add')) this.fail('ADD (only ALTER TABLE ... ADD is supported)');
    this.i++;
    const add: ColumnSpec[] = [];
    const one = (): void => {
      const name = this.ident('column name');
      add.push({ name, type: this.type() });
      this.countColumns(add.length);
    };
    if (this.acceptSym('(')) {
      do one();
      while (this.acceptSym(','));
      this.expectSym(')');
    } else one();
    return { kind: 'alterTable', table, add };
  }
}

/**
 * Parses one CQL statement (an optional trailing `;`). Throws CqlSyntaxError (a 400 naming the
 * position and what was expected), or a bad_request RingkvError for out-of-scope features
 * such as lightweight transactions.
 */
export function parseCql(text: string): Statement {
  if (typeof text !== 'string') throw new RingkvError('bad_request', 'a CQL statement must be a string');
  if (text.length > CQL_LIMITS.maxStatementChars) {
    throw new RingkvError('too_large', `CQL statement of ${text.length} characters is longer than the ${CQL_LIMITS.maxStatementChars} allowed`);
  }
  const p = new Parser(tokenize(text, CQL_LIMITS.maxTokens));
  return p.statement();
}
