/**
 * The fixed facts of ringkv's CQL: its bounds, its reserved words, and the error for
 * lightweight transactions.
 */
import { RingkvError } from '../util/errors.js';

export const CQL_LIMITS = Object.freeze({
  /** Characters of one statement (a blob literal of a 1 MiB cell is 2 MiB of hex). */
  maxStatementChars: 4 * 1024 * 1024,
  /** Tokens of one statement. */
  maxTokens: 100_000,
  /** Depth of nested calls (`toTimestamp(now())` is 2). */
  maxNestingDepth: 8,
  /** Values of one IN list (the planner bounds the partitions of a query separately). */
  maxInListItems: 1000,
  /** Columns named by one statement (CREATE TABLE, INSERT, SELECT, SET, DELETE). */
  maxColumns: 1000,
  /** UTF-8 bytes of one identifier (storage keys carry column names, with a one-byte length). */
  maxIdentifierBytes: 64,
});

/**
 * CQL's reserved keywords (Cassandra's "Appendix A"), plus the literal words (true, false,
 * null, nan, infinity): these cannot be unquoted identifiers. Every other keyword
 * (`timestamp`, `key`, `ttl`, `count`, `clustering`, the type names...) can.
 */
export const RESERVED_KEYWORDS: ReadonlySet<string> = new Set([
  'add', 'allow', 'alter', 'and', 'apply', 'asc', 'authorize', 'batch', 'begin', 'by', 'columnfamily', 'create', 'delete',
  'desc', 'describe', 'drop', 'entries', 'execute', 'from', 'full', 'grant', 'if', 'in', 'index', 'infinity', 'insert',
  'into', 'is', 'keyspace', 'limit', 'materialized', 'mbean', 'mbeans', 'modify', 'nan', 'norecursive', 'not', 'null', 'of', 'on', 'or', 'order',
  'primary', 'rename', 'replace', 'revoke', 'schema', 'select', 'set', 'table', 'to', 'token', 'truncate', 'unlogged',
  'unset', 'update', 'use', 'using', 'view', 'where', 'with', 'true', 'false',
]);

/** The error for `IF ...` on a write: ringkv has no Paxos. */
export function lwtUnsupported(): RingkvError {
  return new RingkvError(
    'bad_request',
    'lightweight transactions (IF NOT EXISTS, IF EXISTS, IF <condition> on INSERT/UPDATE/DELETE) are out of scope in ringkv: there is no Paxos round; writes resolve per cell by last-write-wins',
    { unsupported: 'lightweight transactions' },
  );
}
