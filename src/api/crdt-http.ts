/**
 * HTTP routes of the convergent data types (issue 14). Clients send operations, never states:
 *
 *   POST /api/v1/crdt/{table}/{key}   body: the operation ({"increment": 5}, {"add": ["a"]},
 *                                     {"remove": ["c"], "context": "..."}, {"update": {...}}, ...)
 *                                     ?w= ?n= ?consistency=   → 200 { key, value, context?, consistency }
 *   GET  /api/v1/crdt/{table}/{key}   ?r= ?n= ?consistency= ?replica=local
 *                                     → 200 { key, value, context?, bytes, consistency }, 404 when no
 *                                       replica holds the key (the body still carries the empty value)
 *
 * Errors are the API's usual `{ error: { code, message, details? } }`: 400 for a malformed
 * operation (details.path names the field), 409 for a remove whose precondition fails
 * (details.precondition: not_present | context_ahead), 413 naming the crdt.* limit
 * (details.limit), 503 with details.outcome = "unknown" when the update may or may not have been
 * applied (do not resend blindly: an increment would count twice).
 */
import type { FastifyInstance } from 'fastify';
import type { NodeConfig } from '../config/config.js';
import { parseConsistencyFor } from '../router/consistency.js';
import type { CrdtCoordinator, CrdtReadResult } from '../router/crdt.js';
import { validateTableName } from '../router/tables.js';
import { badRequest, RingkvError } from '../util/errors.js';
import { keyBytes, sendError } from './http.js';

function readBody(key: string, r: CrdtReadResult): Record<string, unknown> {
  const out: Record<string, unknown> = { key, value: r.value };
  if (r.context !== undefined) out['context'] = r.context;
  out['bytes'] = r.bytes;
  out['consistency'] = r.consistency;
  return out;
}

export function mountCrdtRoutes(app: FastifyInstance, crdts: CrdtCoordinator, config: NodeConfig): void {
  const limits = config.limits;

  app.post<{ Params: { table: string; key: string }; Querystring: Record<string, string>; Body: unknown }>('/api/v1/crdt/:table/:key', async (req) => {
    const table = validateTableName(req.params.table);
    const key = keyBytes(req.params.key, limits.maxKeyBytes);
    const q = req.query;
    const res = await crdts.update({ table, key, operation: req.body, consistency: parseConsistencyFor(q, 'write') });
    const out: Record<string, unknown> = { key: req.params.key, value: res.value };
    if (res.context !== undefined) out['context'] = res.context;
    out['consistency'] = res.consistency;
    return out;
  });

  app.get<{ Params: { table: string; key: string }; Querystring: Record<string, string> }>('/api/v1/crdt/:table/:key', async (req, reply) => {
    const table = validateTableName(req.params.table);
    const key = keyBytes(req.params.key, limits.maxKeyBytes);
    const q = req.query;
    const local = q['replica'];
    if (local !== undefined && local !== 'local') throw badRequest('replica must be "local" (read only this node\'s replica)', { field: 'replica' });
    const consistency = parseConsistencyFor(q, 'read'); // refused knobs are refused with ?replica=local too
    const res = local === 'local' ? await crdts.readLocal(table, key) : await crdts.read({ table, key, consistency });
    if (!res.found) return sendError(reply, new RingkvError('not_found', `key not found in table ${table}`), readBody(req.params.key, res));
    return readBody(req.params.key, res);
  });
}
