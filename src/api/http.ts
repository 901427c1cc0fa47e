import type { Duplex } from 'node:stream';
import Fastify,{ type FastifyError,type FastifyInstance,type FastifyReply } from 'fastify';
import { clusterSecret, type NodeConfig } from '../config/config.js';
import { isLoopbackHost } from '../config/secret.js';
import { mountHttpAuth } from './http-auth.js';
import type { Logger } from '../log/logger.js';
import { parseConsistencyFor } from '../router/consistency.js';
import type { ReadResult, Router, ScanResult } from '../router/router.js';
import { SCAN_LIMITS } from '../router/scan.js';
import { validateTableName, type TableRegistry } from '../router/tables.js';
import { isWellFormedText } from '../util/bytes.js';
import { RingkvError, asRingkvError, badRequest } from '../util/errors.js';
import { jsonDepthWithin, jsonToValueBytes, strictUtf8, valueBytesToJson } from './values.js';
import { parseTtl } from './ipc-request.js';
import { ReplyBudget } from '../net/reply-budget.js';
import { mountReplyFlow } from './http-flow.js';

export interface HttpDeps {
  config: NodeConfig;
  router: Router;
  tables: TableRegistry;
  log: Logger;
  clusterInfo: () => Promise<unknown>;
  metrics: () => Promise<unknown>;
  /** Reply-byte bounds shared with the node's other servers (default: a budget of its own). */
  replies?: ReplyBudget;
  /** Extra routes mounted by other layers (cluster, repair, test-mode fault injection). */
  extraRoutes?: Array<(app: FastifyInstance) => void>;
}

export function keyBytes(key: unknown, maxKeyBytes: number, field = 'key'): Buffer {
  if (typeof key !== 'string' || key.length === 0) throw badRequest(`${field} must be a non-empty string`, { field });
  // A lone surrogate (a JSON "\ud800" escape) has no UTF-8 form: encoding it would substitute
  // U+FFFD, and different keys would silently become the same stored key.
  if (!isWellFormedText(key)) throw badRequest(`${field} contains a lone UTF-16 surrogate, which has no UTF-8 form`, { field });
  const b = Buffer.from(key, 'utf8');
  if (b.length > maxKeyBytes) throw new RingkvError('too_large', `${field} is ${b.length} bytes; the limit is ${maxKeyBytes}`, { field });
  return b;
}

export function sendError(reply: FastifyReply, err: RingkvError, extra?: Record<string, unknown>): FastifyReply {
  return reply.code(err.status).send({ error: err.toJSON(), ...extra });
}

/** One key's live versions as the API shows them: `value`, or `siblings` when there are several. */
function putValues(out: Record<string, unknown>, values: ReadResult['values'], maxJsonDepth: number): Record<string, unknown> {
  if (values.length === 1) out['value'] = valueBytesToJson(values[0]!.value, maxJsonDepth);
  else out['siblings'] = values.map((v) => valueBytesToJson(v.value, maxJsonDepth));
  return out;
}

function readBody(result: ReadResult, key: string, maxJsonDepth: number): Record<string, unknown> {
  const base = putValues({ key, context: result.context }, result.values, maxJsonDepth);
  base['consistency'] = result.consistency;
  return base;
}

/**
 * A scan's rows as GET represents one key. Keys are UTF-8 strings in this API; a stored key that is
 * not valid UTF-8 (written as bin over IPC) also comes as `keyBase64`, since its string is lossy.
 */
function scanBody(result: ScanResult, maxJsonDepth: number): Record<string, unknown> {
  const rows = result.rows.map((row) => {
    const b = Buffer.from(row.key.buffer, row.key.byteOffset, row.key.byteLength);
    const key = b.toString('utf8');
    const out: Record<string, unknown> = { key, context: row.context };
    if (!Buffer.from(key, 'utf8').equals(b)) out['keyBase64'] = b.toString('base64');
    return putValues(out, row.values, maxJsonDepth);
  });
  const out: Record<string, unknown> = { rows, truncated: result.truncated, endOfRing: result.endOfRing };
  if (result.pagingState !== undefined) out['pagingState'] = result.pagingState;
  out['consistency'] = result.consistency;
  return out;
}

function scanLimit(raw: unknown): number {
  const n = typeof raw === 'string' && /^\d{1,7}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > SCAN_LIMITS.maxLimit) {
    throw badRequest(`limit must be an integer between 1 and ${SCAN_LIMITS.maxLimit}, got ${JSON.stringify(raw ?? null)}`, { field: 'limit' });
  }
  return n;
}

/**
 * Bytes allowed for an HTTP request line plus headers: a key of `maxKeyBytes` percent-encoded
 * (3 bytes per byte at worst) plus room for the path, the query (a context, consistency) and
 * ordinary headers.
 */
export function httpHeaderLimit(maxKeyBytes: number): number {
  return maxKeyBytes * 3 + 64 * 1024;
}

/**
 * Errors Node's HTTP parser raises before any route runs, answered in the API's error shape. A
 * request line + headers over the limit means a key (or query) far past `maxKeyBytes`: `413` like
 * any other too-large key, instead of Node's bare `431`.
 */
function answerClientError(err: Error & { code?: string }, socket: Duplex, maxHeaderSize: number, maxKeyBytes: number): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  let status: number;
  let body: RingkvError;
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 413;
    body = new RingkvError('too_large', `request line and headers exceed ${maxHeaderSize} bytes (keys are limited to ${maxKeyBytes} bytes)`);
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    body = new RingkvError('timeout', 'the request was not received in time');
  } else {
    status = 400;
    body = new RingkvError('bad_request', `malformed HTTP request (${err.code ?? err.message})`);
  }
  if (socket.writable) {
    const json = JSON.stringify({ error: body.toJSON() });
    const reason = status === 413 ? 'Content Too Large' : status === 408 ? 'Request Timeout' : 'Bad Request';
    socket.write(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`);
  }
  socket.destroy();
}

/** The seed HTTP API (design §8). Every handler validates before touching the router. */
export async function startHttp(deps: HttpDeps): Promise<FastifyInstance> {
  const { config, router, tables } = deps;
  const limits = config.limits;
  const maxHeaderSize = httpHeaderLimit(limits.maxKeyBytes);
  const app = Fastify({
    // Room for the largest value plus key and JSON overhead; beyond it fastify answers 413.
    bodyLimit: limits.maxValueBytes + limits.maxKeyBytes + 16 * 1024,
    logger: false,
    // GET/DELETE carry the key in the URL. Node's default 16 KiB header limit would refuse keys the
    // API accepts on PUT, so the request line + headers may hold a key of maxKeyBytes, URL-encoded.
    http: { maxHeaderSize },
    // The router must never reject a long key itself (it would answer 404): the URL is already
    // bounded by maxHeaderSize, and keyBytes() answers 413 for keys over the limit.
    routerOptions: { maxParamLength: maxHeaderSize },
    clientErrorHandler: (err, socket) => answerClientError(err, socket, maxHeaderSize, limits.maxKeyBytes),
    // A path that does not decode (e.g. a key percent-encoding bytes that are not UTF-8, `%FF`):
    // answered in the API's error shape, like every other bad request.
    frameworkErrors: (error, _req, reply) => {
      void sendError(reply, new RingkvError('bad_request', `${error.message} (keys in a path must be percent-encoded UTF-8)`));
    },
  });

  app.setErrorHandler((error: FastifyError, _req, reply) => {
    if (error instanceof RingkvError) return sendError(reply, error);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendError(reply, new RingkvError('too_large', `request body exceeds ${app.initialConfig.bodyLimit} bytes`));
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return sendError(reply, new RingkvError('bad_request', 'content-type must be application/json'));
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return sendError(reply, new RingkvError('bad_request', `invalid request: ${error.message}`));
    }
    const e = asRingkvError(error);
    if (e.code === 'internal') deps.log.error({ err: error }, 'request failed');
    return sendError(reply, e);
  });
  // JSON bodies: strict UTF-8 (a lossy decode would let two different keys collide) and a bounded
  // nesting depth (checked without recursion before parsing; deeper values would overflow the
  // stack when stored), then fastify's own parser (prototype-poisoning checks included).
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    const bytes = body as Buffer;
    const text = strictUtf8(bytes);
    if (text === null) return done(badRequest('the request body is not valid UTF-8 (JSON text must be UTF-8)'), undefined);
    if (!jsonDepthWithin(bytes, limits.maxJsonDepth)) {
      return done(badRequest(`the request body nests arrays/objects deeper than limits.maxJsonDepth (${limits.maxJsonDepth} levels)`, { limit: 'maxJsonDepth', maxJsonDepth: limits.maxJsonDepth }), undefined);
    }
    parseJson(req, text, done);
  });
  // Other hosts prove the cluster secret (only possible when HTTP is not on loopback: protected mode).
  if (!isLoopbackHost(config.http.host)) mountHttpAuth(app, clusterSecret(config));
  // A client that pipelines requests and never reads holds at most maxReplyBytesPerConnection.
  mountReplyFlow(app, deps.replies ?? new ReplyBudget(), limits.maxValueBytes + 1024);
  app.setNotFoundHandler((req, reply) => sendError(reply, new RingkvError('not_found', `no route ${req.method} ${req.url.split('?')[0]}`)));

  app.get('/healthz', async () => ({ status: 'ok' }));

  app.put<{ Params: { table: string }; Body: unknown; Querystring: Record<string, string> }>('/api/v1/store/:table', async (req) => {
    const table = validateTableName(req.params.table);
    const body = req.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('body must be a JSON object { "key", "value", "context"?, "ttl"? }');
    const b = body as Record<string, unknown>;
    const key = keyBytes(b['key'], limits.maxKeyBytes);
    if (!('value' in b) || b['value'] === undefined) throw badRequest('value is required (any JSON value)', { field: 'value' });
    const ctx = b['context'];
    if (ctx !== undefined && ctx !== null && typeof ctx !== 'string') throw badRequest('context must be a string returned by a read', { field: 'context' });
    const value = jsonToValueBytes(b['value']);
    if (value.length > limits.maxValueBytes) throw new RingkvError('too_large', `value is ${value.length} bytes; the limit is ${limits.maxValueBytes}`, { field: 'value' });
    const ttlSeconds = parseTtl(b['ttl']);
    const consistency = parseConsistencyFor(req.query, 'write');
    const res = await router.write({ table, key, value, tombstone: false, context: ctx ?? undefined, consistency, ttlSeconds });
    return { key: b['key'], context: res.context, consistency: res.consistency };
  });

  // A range scan in token order: rows whose token >= token(start) (> with exclusive=true), wrapping
  // the ring at most once, until `limit` live rows; or the next page of one (`pagingState`).
  app.get<{ Params: { table: string }; Querystring: Record<string, string> }>('/api/v1/store/:table', async (req) => {
    const table = validateTableName(req.params.table);
    const q = req.query;
    const limit = scanLimit(q['limit']);
    const ex = q['exclusive'];
    if (ex !== undefined && ex !== 'true' && ex !== 'false') throw badRequest('exclusive must be true or false', { field: 'exclusive' });
    const consistency = parseConsistencyFor(q, 'read');
    const ps = q['pagingState'];
    if (ps !== undefined) {
      if (typeof ps !== 'string' || ps === '') throw badRequest('pagingState must be the string a previous page returned', { field: 'pagingState' });
      if (q['start'] !== undefined) throw badRequest('give either start (a new scan) or pagingState (the next page), not both', { field: 'start' });
      if (ex !== undefined) throw badRequest('exclusive applies to a scan from start, not to a pagingState', { field: 'exclusive' });
      return scanBody(await router.scan({ table, pagingState: ps, limit, consistency }), limits.maxJsonDepth);
    }
    if (typeof q['start'] !== 'string' || q['start'] === '') throw badRequest('start (the key whose token the scan starts at) or pagingState is required', { field: 'start' });
    const startKey = keyBytes(q['start'], limits.maxKeyBytes, 'start');
    const res = await router.scan({ table, startKey, exclusive: ex === 'true', limit, consistency });
    return scanBody(res, limits.maxJsonDepth);
  });

  app.get<{ Params: { table: string; key: string }; Querystring: Record<string, string> }>('/api/v1/store/:table/:key', async (req, reply) => {
    const table = validateTableName(req.params.table);
    const key = keyBytes(req.params.key, limits.maxKeyBytes);
    const local = req.query['replica'];
    if (local !== undefined && local !== 'local') throw badRequest('replica must be "local" (read only this node\'s replica)', { field: 'replica' });
    const consistency = parseConsistencyFor(req.query, 'read'); // refused knobs are refused with ?replica=local too
    const res = local === 'local' ? await router.readLocalReplica(table, key) : await router.read({ table, key, consistency });
    if (res.values.length === 0) {
      return sendError(reply, new RingkvError('not_found', `key not found in table ${table}`), { key: req.params.key, context: res.context });
    }
    return readBody(res, req.params.key, limits.maxJsonDepth);
  });

  app.delete<{ Params: { table: string; key: string }; Querystring: Record<string, string>; Body: unknown }>('/api/v1/store/:table/:key', async (req) => {
    const table = validateTableName(req.params.table);
    const key = keyBytes(req.params.key, limits.maxKeyBytes);
    let ctx: unknown = req.query['context'];
    const body = req.body as Record<string, unknown> | undefined | null;
    if (ctx === undefined && body && typeof body === 'object') ctx = body['context'];
    if (ctx !== undefined && typeof ctx !== 'string') throw badRequest('context must be a string returned by a read', { field: 'context' });
    const consistency = parseConsistencyFor(req.query, 'write');
    const res = await router.write({ table, key, value: new Uint8Array(0), tombstone: true, context: ctx, consistency });
    return { key: req.params.key, deleted: true, context: res.context, consistency: res.consistency };
  });

  app.put<{ Params: { table: string }; Body: unknown }>('/api/v1/tables/:table', async (req) => {
    const name = validateTableName(req.params.table);
    const body = req.body ?? {};
    if (typeof body !== 'object' || Array.isArray(body)) throw badRequest('body must be a JSON object { "conflicts", "type", "n", "quorum" }');
    return tables.define(name, body as Record<string, unknown>, true);
  });
  app.get('/api/v1/tables', async () => ({ tables: tables.all() }));
  app.get<{ Params: { table: string } }>('/api/v1/tables/:table', async (req) => {
    const t = tables.get(validateTableName(req.params.table));
    if (!t) throw new RingkvError('not_found', `table ${req.params.table} does not exist`);
    return t;
  });

  app.get('/api/v1/cluster', async () => deps.clusterInfo());
  app.get('/api/v1/metrics', async () => deps.metrics());

  for (const mount of deps.extraRoutes ?? []) mount(app);

  await app.listen({ host: config.http.host, port: config.http.port });
  return app;
}
