/**
 * The table-name rule, shared by the server (which enforces it) and the client (which checks
 * names before sending): a leaf protocol module, so the client imports no server code for it.
 */
import { badRequest } from '../util/errors.js';

export const TABLE_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** The last name that passed: a batch's items name one table (one string compare each instead of the regex). */
let lastValid: string | null = null;

export function validateTableName(name: unknown): string {
  if (typeof name === 'string' && name === lastValid) return name;
  if (typeof name !== 'string' || !TABLE_NAME_RE.test(name)) {
    throw badRequest(`table name must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(name)}`, { field: 'table' });
  }
  lastValid = name;
  return name;
}
