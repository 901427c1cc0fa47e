/**
 * IPC ops of the convergent data types and table definitions (issue 14), parsed here so the
 * connection handling (ipc-connection.ts, ipc-work.ts) only dispatches them:
 *
 *   crdt_update   table, key, operation (the HTTP body's shape), consistency, n, w, timeoutMs
 *                 → { value, context?, consistency }
 *   crdt_get      table, key, consistency, n, r, timeoutMs
 *                 → { found, value, context?, bytes, consistency }
 *   define_table  table, conflicts, type, n, quorum   → { table: the definition }
 *
 * Errors of these ops carry the error's `details` too (a remove's `precondition`, a limit's
 * `limit`/`max`/`path`, an update's `outcome`: "unknown" when it may or may not have been applied).
 */
import { parseConsistency, type ConsistencySpec } from '../router/consistency.js';
import { validateTableName } from '../router/tables.js';
import { asRingkvError, badRequest, type ErrorCode } from '../util/errors.js';
import type { IpcLimits } from './ipc-protocol.js';
import { parseKey, parseTimeout, refuseForeignFields, type Msg } from './ipc-request.js';

export interface CrdtUpdateParsed {
  table: string;
  key: Uint8Array;
  operation: unknown;
  consistency: ConsistencySpec;
  timeoutMs: number | undefined;
}

export interface CrdtGetParsed {
  table: string;
  key: Uint8Array;
  consistency: ConsistencySpec;
  timeoutMs: number | undefined;
}

export interface DefineTableParsed {
  table: string;
  settings: { conflicts?: unknown; type?: unknown; n?: unknown; quorum?: unknown };
}

export function parseCrdtUpdate(m: Msg, limits: IpcLimits): CrdtUpdateParsed {
  refuseForeignFields(m, 'crdt_update');
  const table = validateTableName(m['table']);
  const key = parseKey(m['key'], limits);
  const operation = m['operation'];
  // Its shape is the CRDT parser's business (crdt/ops.ts), which names the bad field.
  if (operation === undefined || operation === null) throw badRequest('operation is required: a map such as {increment: 1} or {add: ["a"]}', { field: 'operation' });
  const consistency = parseConsistency({ consistency: m['consistency'] ?? undefined, n: m['n'] ?? undefined, w: m['w'] ?? undefined });
  return { table, key, operation, consistency, timeoutMs: parseTimeout(m['timeoutMs']) };
}

export function parseCrdtGet(m: Msg, limits: IpcLimits): CrdtGetParsed {
  refuseForeignFields(m, 'crdt_get');
  const table = validateTableName(m['table']);
  const key = parseKey(m['key'], limits);
  const consistency = parseConsistency({ consistency: m['consistency'] ?? undefined, n: m['n'] ?? undefined, r: m['r'] ?? undefined });
  return { table, key, consistency, timeoutMs: parseTimeout(m['timeoutMs']) };
}

export function parseDefineTable(m: Msg): DefineTableParsed {
  refuseForeignFields(m, 'define_table');
  const table = validateTableName(m['table']);
  const settings: DefineTableParsed['settings'] = {};
  // Nil is "absent", as everywhere in the protocol; the registry validates the values.
  for (const k of ['conflicts', 'type', 'n', 'quorum'] as const) if (m[k] !== undefined && m[k] !== null) settings[k] = m[k];
  return { table, settings };
}

/** An error's reply fields including its details (these ops' errors say what the client may retry). */
export function errorWithDetails(err: unknown): { code: ErrorCode; message: string; field?: string; details?: Record<string, unknown> } {
  const e = asRingkvError(err);
  const out: { code: ErrorCode; message: string; field?: string; details?: Record<string, unknown> } = { code: e.code, message: e.message };
  const field = e.details?.['field'];
  if (typeof field === 'string') out.field = field;
  if (e.details !== undefined) out.details = e.details;
  return out;
}
