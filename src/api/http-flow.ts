/**
 * Reply-byte flow control for the HTTP API, the same bounds as the IPC socket's
 * (src/net/reply-budget.ts): each HTTP connection has an account; a request's handler starts only
 * while the connection's reply bytes (estimates for handlers running + responses not yet handed to
 * the kernel) stay within `maxReplyBytesPerConnection` and the node's within the total. A client
 * that pipelines requests and never reads its responses therefore holds at most that much: the
 * requests behind wait (before their bodies are parsed) and Node's HTTP server stops reading the
 * socket once responses queue up. A connection with more than `HTTP_MAX_WAITING_PER_CONNECTION`
 * requests waiting gets `503 overloaded` for the excess. A closed connection's waiting requests
 * are dropped, and the bytes of its responses released. `/healthz`, `/readyz`, `/metrics` and `/api/v1/metrics` are not
 * metered (see UNMETERED_ROUTES).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { ReplyAccount, ReplyBudget } from '../net/reply-budget.js';
import { RingkvError } from '../util/errors.js';

/** Pipelined requests one HTTP connection may have waiting for reply bytes; beyond it they get 503. */
export const HTTP_MAX_WAITING_PER_CONNECTION = 1024;

/**
 * Monitoring routes with small answers are not metered: a node whose budget is exhausted can still
 * be watched, and the reply gauges in the metrics do not count the request that reads them.
 */
const UNMETERED_ROUTES = new Set(['/healthz', '/readyz', '/metrics', '/api/v1/metrics']);

interface Waiter {
  admit: () => void;
  drop: (e: Error) => void;
}

interface HttpConnection {
  account: ReplyAccount;
  waiting: Waiter[];
  /** Requests started and not yet done: Node emits no 'close' for a pipelined response still queued when the socket dies. */
  admitted: Set<Admitted>;
}

interface Admitted {
  conn: HttpConnection;
  reserved: number;
  held: number;
}

export function mountReplyFlow(app: FastifyInstance, replies: ReplyBudget, initialEstimateBytes: number): void {
  const conns = new WeakMap<Socket, HttpConnection>();
  const admitted = new WeakMap<ServerResponse, Admitted>();

  const pump = (conn: HttpConnection): void => {
    while (conn.waiting.length > 0 && conn.account.canStart(conn.account.estimate)) conn.waiting.shift()!.admit();
  };

  const connectionOf = (socket: Socket): HttpConnection => {
    let conn = conns.get(socket);
    if (conn) return conn;
    const c: HttpConnection = { account: replies.open(initialEstimateBytes, () => pump(c)), waiting: [], admitted: new Set() };
    conns.set(socket, c);
    socket.once('close', () => {
      c.account.close();
      for (const a of c.admitted) done(a);
      const dropped = c.waiting.splice(0);
      for (const w of dropped) w.drop(new RingkvError('unavailable', 'the connection closed before this request started'));
    });
    conn = c;
    return conn;
  };

  /** A request's response was handed to the kernel, or its connection died: give its bytes back. */
  const done = (a: Admitted): void => {
    a.conn.admitted.delete(a);
    a.conn.account.unreserve(a.reserved);
    a.conn.account.release(a.held);
    a.reserved = 0;
    a.held = 0;
  };

  const admit = (conn: HttpConnection, res: ServerResponse): void => {
    const a: Admitted = { conn, reserved: conn.account.estimate, held: 0 };
    conn.account.reserve(a.reserved);
    conn.admitted.add(a);
    admitted.set(res, a);
    // 'close' follows 'finish' (handed to the kernel).
    res.once('close', () => {
      done(a);
      pump(conn);
    });
  };

  app.addHook('onRequest', (req, reply, done) => {
    if (req.routeOptions.url !== undefined && UNMETERED_ROUTES.has(req.routeOptions.url)) {
      done();
      return;
    }
    const raw: IncomingMessage = req.raw;
    const conn = connectionOf(raw.socket);
    if (conn.waiting.length === 0 && conn.account.canStart(conn.account.estimate)) {
      admit(conn, reply.raw);
      done();
      return;
    }
    if (conn.waiting.length >= HTTP_MAX_WAITING_PER_CONNECTION) {
      done(
        new RingkvError(
          'overloaded',
          `${HTTP_MAX_WAITING_PER_CONNECTION} pipelined requests on this connection already wait for their responses to be read (maxReplyBytesPerConnection ${replies.limits.maxReplyBytesPerConnection})`,
        ),
      );
      return;
    }
    conn.waiting.push({
      admit: () => {
        admit(conn, reply.raw);
        done();
      },
      drop: (e) => done(e),
    });
  });

  // The response's real size replaces the estimate; it is held until 'close'.
  app.addHook('onSend', (_req, reply, payload, done) => {
    const a = admitted.get(reply.raw);
    if (a && !a.conn.account.closed) {
      const bytes = typeof payload === 'string' ? Buffer.byteLength(payload) : Buffer.isBuffer(payload) ? payload.length : 0;
      a.conn.account.unreserve(a.reserved);
      a.reserved = 0;
      a.conn.account.observe(bytes);
      a.conn.account.hold(bytes);
      a.held = bytes;
    }
    done(null, payload);
  });
}
