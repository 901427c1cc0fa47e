/**
 * `POST /api/v1/query`: one CQL statement (src/router/wide-query.ts).
 *
 * The body is either the statement itself, as the seed sends it (`text/plain`, `application/cql`,
 * or any other non-JSON content type: `curl -d` sends `application/x-www-form-urlencoded`, and
 * the text is taken as it is, never form-decoded), or JSON
 * `{ "query", "params"?, "consistency"?, "pageSize"?, "pagingState"? }`. With a text body the
 * options come from the query string (`?consistency=`, `?pageSize=`, `?pagingState=`) and the
 * paging state may also come in the `x-ringkv-paging-state` request header.
 *
 * A SELECT answers a JSON array of row objects; when more rows remain the response carries
 * `x-ringkv-paging-state` (send it back to continue). Any other statement answers
 * `{ "applied": true }`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CQL_LIMITS } from '../cql/index.js';
import { parseConsistency, type ConsistencySpec } from '../router/consistency.js';
import type { CqlService, QueryRequest, QueryResult } from '../router/wide-query.js';
import type { QueryOk } from './ipc-protocol.js';
import { badRequest } from '../util/errors.js';
import { RESULT_LIMITS } from '../wide/results.js';
import { strictUtf8 } from './values.js';

export const PAGING_STATE_HEADER = 'x-ringkv-paging-state';

/** Bytes of a query body: the longest statement (as UTF-8) with room for JSON escaping and params. */
export const QUERY_BODY_LIMIT_BYTES = CQL_LIMITS.maxStatementChars * 2 + 1024 * 1024;

function pageSizeOf(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d{1,6}$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > RESULT_LIMITS.maxPageRows) {
    throw badRequest(`pageSize must be an integer between 1 and ${RESULT_LIMITS.maxPageRows}, got ${JSON.stringify(v)}`, { field: 'pageSize' });
  }
  return n;
}

function pagingStateOf(v: unknown): string | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v !== 'string') throw badRequest('pagingState must be the string a previous page returned (x-ringkv-paging-state)', { field: 'pagingState' });
  return v;
}

function consistencyOf(v: unknown): ConsistencySpec | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw badRequest('consistency must be one of ONE, TWO, QUORUM, ALL, ANY', { field: 'consistency' });
  return parseConsistency({ consistency: v });
}

/** The statement and its options, from a JSON body or a text body plus the query string / header. */
export function queryRequestOf(body: unknown, query: Record<string, string | undefined>, header: string | undefined): QueryRequest {
  if (typeof body === 'string') {
    const ps = pagingStateOf(query['pagingState']) ?? pagingStateOf(header);
    return {
      query: body,
      consistency: consistencyOf(query['consistency']),
      pageSize: pageSizeOf(query['pageSize']),
      pagingState: ps,
    };
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw badRequest('the body must be a CQL statement (text) or a JSON object { "query", "params"?, "consistency"?, "pageSize"?, "pagingState"? }');
  }
  const b = body as Record<string, unknown>;
  if (typeof b['query'] !== 'string') throw badRequest('query (the CQL statement) is required and must be a string', { field: 'query' });
  const params = b['params'];
  if (params !== undefined && params !== null && !Array.isArray(params)) throw badRequest('params must be an array (one value per ? marker)', { field: 'params' });
  return {
    query: b['query'],
    params: (params ?? undefined) as unknown[] | undefined,
    consistency: consistencyOf(b['consistency']),
    pageSize: pageSizeOf(b['pageSize']),
    pagingState: pagingStateOf(b['pagingState']) ?? pagingStateOf(header),
  };
}

/** A statement's result as the IPC `query` op answers it (docs/ipc-protocol.md). */
export function queryOkOf(r: QueryResult): QueryOk {
  if (r.kind === 'applied') return r.routing ? { kind: 'applied', applied: true, routing: r.routing } : { kind: 'applied', applied: true };
  return r.pagingState === null
    ? { kind: 'rows', columns: r.columns, rows: r.rows, routing: r.routing }
    : { kind: 'rows', columns: r.columns, rows: r.rows, pagingState: r.pagingState, routing: r.routing };
}

export function mountQueryRoutes(app: FastifyInstance, cql: CqlService): void {
  void app.register(async (scope) => {
    // Scoped to this route: everything that is not JSON is the statement's text, strict UTF-8.
    const text = (_req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void): void => {
      const s = strictUtf8(body);
      if (s === null) return done(badRequest('the CQL statement is not valid UTF-8'));
      done(null, s);
    };
    scope.addContentTypeParser(['text/plain', 'application/cql', 'application/x-www-form-urlencoded'], { parseAs: 'buffer', bodyLimit: QUERY_BODY_LIMIT_BYTES }, (req, body, done) => text(req, body as Buffer, done));
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: QUERY_BODY_LIMIT_BYTES }, (req, body, done) => text(req, body as Buffer, done));
    scope.post<{ Querystring: Record<string, string | undefined>; Body: unknown }>('/api/v1/query', { bodyLimit: QUERY_BODY_LIMIT_BYTES }, async (req, reply: FastifyReply) => {
      const header = req.headers[PAGING_STATE_HEADER];
      const r = queryRequestOf(req.body ?? '', req.query, Array.isArray(header) ? header[0] : header);
      const res = await cql.execute(r);
      if (res.kind === 'applied') return { applied: true };
      if (res.pagingState !== null) void reply.header(PAGING_STATE_HEADER, res.pagingState);
      return res.rows;
    });
  });
}
