/**
 * HTTP endpoints of anti-entropy: inspect this node's ranges and Merkle roots, run a repair session,
 * run the tombstone sweep. Mounted through the HTTP server's `extraRoutes`.
 */
import type { FastifyInstance } from 'fastify';
import { validateTableName } from '../router/tables.js';
import { badRequest } from '../util/errors.js';
import type { RepairService } from './service.js';

export function mountRepairRoutes(app: FastifyInstance, svc: RepairService): void {
  app.get('/api/v1/ranges', async () => ({ ranges: await svc.ranges() }));

  app.post<{ Body: unknown }>('/api/v1/repair', async (req) => {
    const body = req.body ?? {};
    if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('body must be a JSON object { "table"? }');
    const t = (body as Record<string, unknown>)['table'];
    const table = t === undefined || t === null ? undefined : validateTableName(t);
    return svc.runSession({ table });
  });

  app.post('/api/v1/gc', async () => svc.gc());
}
