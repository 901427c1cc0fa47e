/**
 * HTTP endpoints of range movements (mounted through the HTTP server's `extraRoutes`):
 *   POST /api/v1/decommission            this node leaves the ring, streaming its ranges away
 *   POST /api/v1/removenode {node}       remove a dead node; its ranges are re-replicated
 *   POST /api/v1/cleanup                 delete data of ranges this node no longer replicates
 *   GET  /api/v1/movement                this node's movement and every one under way
 *   PUT  /api/v1/stream-throughput {mibs} this node's per-source stream throttle, now (not persisted)
 * Movements answer at once with the movement (progress then shows in GET /api/v1/cluster);
 * refusals are 409 with a message saying why.
 */
import type { FastifyInstance } from 'fastify';
import { badRequest } from '../util/errors.js';
import type { MovementManager } from './manager.js';

export function mountStreamingRoutes(app: FastifyInstance, m: MovementManager): void {
  app.post('/api/v1/decommission', async () => ({ movement: m.decommission() }));

  app.post<{ Body: unknown }>('/api/v1/removenode', async (req) => {
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('body must be a JSON object { "node": "<node id>" }');
    const node = (body as Record<string, unknown>)['node'];
    if (typeof node !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(node)) throw badRequest(`node must be a node id, got ${JSON.stringify(node)}`, { field: 'node' });
    return { movement: m.removenode(node) };
  });

  app.post('/api/v1/cleanup', async () => m.cleanup());

  app.put<{ Body: unknown }>('/api/v1/stream-throughput', async (req) => {
    const body = req.body;
    const mibs = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['mibs'] : undefined;
    return { streamThroughputMiBs: m.setThroughput(mibs as number) };
  });

  app.get('/api/v1/movement', async () => ({ movement: m.summary(), movements: m.clusterMovements() }));
}
