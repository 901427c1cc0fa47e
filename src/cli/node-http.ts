/**
 * The command line's one way to ask a ringkv node's HTTP API (status, repair, --host lookups):
 * every failure becomes a NodeHttpError whose message is one line naming the host and what went
 * wrong (unreachable, no answer in time, an HTTP error with the node's own message, or an answer
 * that is not what a ringkv node would send).
 */

import { isLoopbackHost, SECRET_ENV } from '../config/secret.js';

export class NodeHttpError extends Error {}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export interface NodeRequest {
  /** HOST:PORT, or a base URL (http://HOST:PORT). */
  host: string;
  path: string;
  method?: 'GET' | 'POST';
  /** Sent as JSON. */
  body?: unknown;
  timeoutMs: number;
  /** Appended to the "gave no answer" message (e.g. that the work may go on there). */
  timeoutNote?: string;
  /** What a 200 answer must look like, and what it is called in the error when it does not. */
  expect: { what: string; ok: (body: Record<string, unknown>) => boolean };
}

/**
 * A node's HTTP API on another host wants the cluster secret (README, "Securing a node"): sent from
 * $RINGKV_SECRET, and only to non-loopback hosts (loopback needs none).
 */
function authHeader(base: string): Record<string, string> {
  const secret = process.env[SECRET_ENV];
  if (!secret) return {};
  let host: string;
  try {
    host = new URL(base).hostname;
  } catch {
    return {};
  }
  return isLoopbackHost(host) ? {} : { authorization: `Bearer ${secret}` };
}

export async function nodeJson(q: NodeRequest): Promise<Record<string, unknown>> {
  const base = /^https?:\/\//.test(q.host) ? q.host.replace(/\/+$/, '') : `http://${q.host}`;
  let r: Response;
  try {
    r = await fetch(`${base}${q.path}`, {
      method: q.method ?? 'GET',
      headers: { ...authHeader(base), ...(q.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(q.body !== undefined ? { body: JSON.stringify(q.body) } : {}),
      signal: AbortSignal.timeout(q.timeoutMs),
    });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string } };
    if (err.name === 'TimeoutError') throw new NodeHttpError(`${q.host} gave no answer within ${q.timeoutMs} ms${q.timeoutNote ?? ''}`);
    throw new NodeHttpError(`cannot reach ${q.host}: ${err.cause?.code ?? err.message}`);
  }
  let text: string;
  try {
    text = await r.text();
  } catch (e) {
    throw new NodeHttpError(`${q.host} answered HTTP ${r.status} but the answer could not be read: ${(e as Error).message}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  if (r.status !== 200) {
    const err = isObject(body) && isObject(body['error']) ? body['error'] : undefined;
    const msg = err && typeof err['message'] === 'string' ? err['message'] : text.slice(0, 200) || r.statusText;
    throw new NodeHttpError(`${q.host} answered HTTP ${r.status}: ${msg}`);
  }
  if (!isObject(body) || !q.expect.ok(body)) throw new NodeHttpError(`${q.host} did not answer with ${q.expect.what} (is it a ringkv node's HTTP address?)`);
  return body;
}

/** GET /api/v1/cluster: this node's view of the cluster. */
export function clusterViewOf(host: string, timeoutMs: number): Promise<Record<string, unknown>> {
  return nodeJson({ host, path: '/api/v1/cluster', timeoutMs, expect: { what: 'a cluster view', ok: (b) => Array.isArray(b['nodes']) } });
}
