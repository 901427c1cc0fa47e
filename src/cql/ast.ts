/**
 * The typed AST of ringkv's CQL subset. Plain data (no positions, no classes) so that
 * `parse(print(ast))` can be compared with `ast` structurally.
 *
 * Identifiers are stored as their CQL names: unquoted identifiers lowercased by the lexer,
 * quoted ones as written.
 */

/** The column types ringkv stores (`varchar` parses as `text`). */
export const CQL_TYPES = ['text', 'int', 'bigint', 'double', 'float', 'boolean', 'timestamp', 'uuid', 'timeuuid', 'blob', 'counter'] as const;
export type CqlType = (typeof CQL_TYPES)[number];

/** A value in the statement: a literal, a bind marker, or a function call (`now()`, `toTimestamp(now())`, `token(...)`). */
export type Term =
  | { kind: 'string'; value: string }
  /** Integer literal as written (sign included), kept as text so bigints stay exact. */
  | { kind: 'integer'; text: string }
  /** Float literal as written (sign included), or `NaN` / `Infinity` / `-Infinity`. */
  | { kind: 'float'; text: string }
  | { kind: 'boolean'; value: boolean }
  | { kind: 'null' }
  /** Lowercase hex digits after 0x (possibly empty). */
  | { kind: 'blob'; hex: string }
  /** Lowercase canonical uuid text. */
  | { kind: 'uuid'; value: string }
  /** `?`; index is the marker's 0-based position in the statement text. */
  | { kind: 'bind'; index: number }
  | { kind: 'call'; name: CallName; args: Term[] };

/** Functions a term may call (names lowercased). */
export const CALL_NAMES = ['now', 'totimestamp', 'currenttimestamp', 'currenttimeuuid', 'uuid', 'token'] as const;
export type CallName = (typeof CALL_NAMES)[number];

export type Order = 'asc' | 'desc';

export interface ColumnSpec {
  name: string;
  type: CqlType;
}

export interface CreateTable {
  kind: 'createTable';
  ifNotExists: boolean;
  table: string;
  columns: ColumnSpec[];
  partitionKey: string[];
  clustering: string[];
  /** WITH CLUSTERING ORDER BY (...); empty when absent. */
  clusteringOrder: Array<{ column: string; order: Order }>;
  /** WITH options other than CLUSTERING ORDER BY, in the order written (values: integers only). */
  options: Array<{ name: string; value: number }>;
}

export interface DropTable {
  kind: 'dropTable';
  ifExists: boolean;
  table: string;
}

export interface AlterTableAdd {
  kind: 'alterTable';
  table: string;
  add: ColumnSpec[];
}

export interface Insert {
  kind: 'insert';
  table: string;
  columns: string[];
  values: Term[];
  ttl?: Term;
  timestamp?: Term;
}

export type Assignment =
  | { kind: 'set'; column: string; value: Term }
  /** Counter update `c = c + v` / `c = c - v`. */
  | { kind: 'counter'; column: string; op: '+' | '-'; value: Term };

export type RelationOp = '=' | '<' | '<=' | '>' | '>=';

export type Relation =
  | { kind: 'compare'; column: string; op: RelationOp; value: Term }
  /** `col IN (a, b, ...)` (values) or `col IN ?` (one bind marker holding a list). */
  | { kind: 'in'; column: string; values: Term[] | { kind: 'bind'; index: number } }
  /** `token(pk1, pk2) op term`. */
  | { kind: 'token'; columns: string[]; op: RelationOp; value: Term };

export interface Update {
  kind: 'update';
  table: string;
  ttl?: Term;
  timestamp?: Term;
  assignments: Assignment[];
  where: Relation[];
}

export interface Delete {
  kind: 'delete';
  table: string;
  /** Columns to delete; empty = the whole row / range / partition. */
  columns: string[];
  timestamp?: Term;
  where: Relation[];
}

export type Selection = { kind: 'all' } | { kind: 'count' } | { kind: 'columns'; columns: string[] };

export interface Select {
  kind: 'select';
  table: string;
  selection: Selection;
  where: Relation[];
  orderBy: Array<{ column: string; order: Order }>;
  perPartitionLimit?: Term;
  limit?: Term;
  allowFiltering: boolean;
}

export type Statement = CreateTable | DropTable | AlterTableAdd | Insert | Update | Delete | Select;
