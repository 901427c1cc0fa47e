/**
 * The dashboard every node serves: `GET /` and `/ui` (the page), its assets (`/ui/…`, uPlot from the
 * package's own node_modules: nothing loads from the internet), the live event stream
 * (`GET /api/v1/dashboard/events`, Server-Sent Events) and one JSON snapshot (`GET /api/v1/dashboard`).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { RingkvError } from '../util/errors.js';
import type { DashboardFeed } from './feed.js';

const UI_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../ui');

interface Asset {
  file: string;
  type: string;
}

/** The only files served: a fixed list, so no request path ever reaches the file system. */
function assets(): Record<string, Asset> {
  const require = createRequire(import.meta.url);
  const uplotDir = path.dirname(require.resolve('uplot/dist/uPlot.esm.js'));
  return {
    '/ui/app.js': { file: path.join(UI_DIR, 'app.js'), type: 'text/javascript; charset=utf-8' },
    '/ui/ring.js': { file: path.join(UI_DIR, 'ring.js'), type: 'text/javascript; charset=utf-8' },
    '/ui/style.css': { file: path.join(UI_DIR, 'style.css'), type: 'text/css; charset=utf-8' },
    '/ui/favicon.svg': { file: path.join(UI_DIR, 'favicon.svg'), type: 'image/svg+xml' },
    '/ui/vendor/uPlot.esm.js': { file: path.join(uplotDir, 'uPlot.esm.js'), type: 'text/javascript; charset=utf-8' },
    '/ui/vendor/uPlot.min.css': { file: path.join(uplotDir, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
  };
}

export function mountDashboardRoutes(app: FastifyInstance, feed: DashboardFeed): void {
  // Read once at start: a missing asset fails the node's start, not a visitor's page.
  const index = readFileSync(path.join(UI_DIR, 'index.html'));
  const files = Object.entries(assets()).map(([route, a]) => ({ route, type: a.type, body: readFileSync(a.file) }));

  const page = async (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(index);
  app.get('/', page);
  app.get('/ui', page);
  app.get('/ui/', page);
  for (const f of files) {
    app.get(f.route, async (_req, reply) => reply.type(f.type).header('cache-control', 'no-cache').send(f.body));
  }
  app.get('/favicon.ico', async (_req, reply) => reply.redirect('/ui/favicon.svg'));

  app.get('/api/v1/dashboard', async () => feed.state());
  app.get('/api/v1/dashboard/events', (req, reply) => {
    reply.hijack();
    if (!feed.subscribe(reply.raw)) {
      const err = new RingkvError('overloaded', 'too many dashboard streams open on this node; close one or use another node');
      reply.raw.writeHead(err.status, { 'content-type': 'application/json' });
      reply.raw.end(JSON.stringify({ error: err.toJSON() }));
    }
  });
}
