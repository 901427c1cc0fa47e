/**
 * `GET /metrics` (Prometheus text format) and `GET /readyz` (readiness for orchestrators).
 */
import type { FastifyInstance } from 'fastify';
import type { Readiness } from '../node/readiness.js';
import { RingkvError } from '../util/errors.js';
import type { NodeRegistry } from './registry.js';

export function mountMetricsRoutes(app: FastifyInstance, registry: NodeRegistry | undefined, ready: () => Readiness): void {
  app.get('/metrics', async (_req, reply) => {
    if (!registry) throw new RingkvError('not_found', 'metrics are disabled on this node (config metrics.enabled: false)');
    const { contentType, body } = await registry.scrape();
    return reply.type(contentType).header('cache-control', 'no-store').send(body);
  });

  app.get('/readyz', async (_req, reply) => {
    const r = ready();
    return reply.code(r.ready ? 200 : 503).send({ status: r.ready ? 'ready' : 'not_ready', checks: r.checks, reasons: r.reasons });
  });
}
