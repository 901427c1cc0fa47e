/**
 * HTTP requests from other hosts must carry the cluster secret (`Authorization: Bearer <secret>`).
 * Mounted only when the HTTP API listens on a non-loopback address, which a node allows only with a
 * secret configured (protected mode, src/config/secret.ts). Requests from this machine's loopback
 * are trusted like the IPC socket's local users; `/healthz` stays open for load balancers.
 * Plain HTTP carries the secret in the clear: put TLS in front of a node reachable over an
 * untrusted network.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { isLoopbackHost } from '../config/secret.js';
import { RingkvError } from '../util/errors.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function mountHttpAuth(app: FastifyInstance, secret: string): void {
  const expected = digest(secret);
  app.addHook('onRequest', (req, _reply, done) => {
    const remote = req.raw.socket.remoteAddress;
    if ((remote !== undefined && isLoopbackHost(remote)) || req.routeOptions.url === '/healthz') {
      done();
      return;
    }
    const m = /^Bearer (.+)$/.exec(req.headers.authorization ?? '');
    if (!m || !timingSafeEqual(digest(m[1]!), expected)) {
      done(new RingkvError('unauthorized', 'requests from other hosts need the cluster secret: Authorization: Bearer <secret>'));
      return;
    }
    done();
  });
}
