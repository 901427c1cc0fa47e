import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES, IPC_OPS } from '../../src/api/ipc-protocol.js';
import { promiseRouter, startIpcServer, type IpcServer } from '../../src/api/ipc-server.js';
import { decodePayload } from '../../src/net/frames.js';
import type { ReadRequest, ReadResult, WriteRequest, WriteResult } from '../../src/router/router.js';
import type { CrdtUpdateRequest } from '../../src/router/crdt.js';
import type { QueryParsed } from '../../src/api/ipc-request.js';

const DOC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/ipc-protocol.md');
const doc = readFileSync(DOC, 'utf8');

/** The bytes of a ```hex <name> block: "OFFSET  b0 b1 ..." lines. */
function hexBlock(name: string): Buffer {
  const m = new RegExp('```hex ' + name + '\\n([\\s\\S]*?)```').exec(doc);
  if (!m) throw new Error(`docs/ipc-protocol.md has no \`\`\`hex ${name} block`);
  const bytes: number[] = [];
  let expectOffset = 0;
  for (const line of m[1]!.split('\n')) {
    if (line.trim() === '') continue;
    const [offset, ...rest] = line.trim().split(/\s+/);
    expect(parseInt(offset!, 16), `offset column of "${line}"`).toBe(expectOffset);
    for (const h of rest) {
      expect(h, `byte ${h}`).toMatch(/^[0-9a-f]{2}$/);
      bytes.push(parseInt(h, 16));
    }
    expectOffset += rest.length;
  }
  return Buffer.from(bytes);
}

// The values the documented reply shows; the fake router and ring produce exactly these.
const DOC_CONTEXT = 'kZKmbm9kZS1hy0MYnmXqP_AE';
const DOC_DIGEST = '9f86d081884c7d65';

let dir: string;
let server: IpcServer;
const writes: WriteRequest[] = [];
const crdtUpdates: CrdtUpdateRequest[] = [];
const queries: QueryParsed[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'rkv-doc-'));
  server = await startIpcServer({
    path: path.join(dir, 'ringkv.sock'),
    router: promiseRouter({
      async write(req: WriteRequest): Promise<WriteResult> {
        writes.push(req);
        return { context: DOC_CONTEXT, consistency: { n: 3, required: 2, replied: 2 } };
      },
      async read(_req: ReadRequest): Promise<ReadResult> {
        return { values: [], context: '', consistency: { n: 3, required: 2, replied: 2 } };
      },
    }),
    // The documented counter increment: the counter is at 6 afterwards, acknowledged by 2 of 3.
    crdts: {
      startUpdate(req, done) {
        crdtUpdates.push(req);
        queueMicrotask(() => done(null, { value: 6, consistency: { n: 3, required: 2, replied: 2 } }));
      },
      startRead(_req, done) {
        queueMicrotask(() => done(new Error('not used by the documented example'), undefined));
      },
    },
    ringInfo: () => ({ digest: DOC_DIGEST, version: 1, nodes: [], tokens: [], replicas: 0, pref: [] }),
    clusterStatus: async () => ({}),
    // The documented query's answer (what a node holding that row answers).
    query: async (q) => {
      queries.push(q);
      return {
        kind: 'rows',
        columns: ['user_id', 'timestamp', 'event'],
        rows: [{ user_id: '123', timestamp: '2023-01-02T10:00:00.000Z', event: 'login' }],
        routing: { table: 'users', partitionKey: [{ name: 'user_id', type: 'text' }] },
      };
    },
    limits: { maxKeyBytes: 65536, maxValueBytes: 1 << 20, maxFrameBytes: 16 << 20, maxInFlightPerConnection: 1024 },
    log: pino({ level: 'silent' }),
  });
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Send raw bytes, collect exactly `want` reply bytes (the frame length is read from its header). */
function exchange(request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path: path.join(dir, 'ringkv.sock') });
    let acc = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no complete reply within 5 s (got ${acc.length} bytes)`));
    }, 5000);
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      acc = Buffer.concat([acc, d]);
      if (acc.length >= 4 && acc.length >= 4 + acc.readUInt32BE(0)) {
        clearTimeout(timer);
        s.destroy();
        resolve(acc);
      }
    });
    s.on('connect', () => s.write(request));
  });
}

describe('docs/ipc-protocol.md', () => {
  it('worked example: the documented request frame gets the documented reply bytes from a real server', async () => {
    const request = hexBlock('put-request');
    const expectedReply = hexBlock('put-reply');
    expect(request.length).toBe(51);
    expect(request.readUInt32BE(0)).toBe(request.length - 4);
    expect(decodePayload(request.subarray(4))).toEqual({ id: 1, op: 'put', table: 'users', key: 'alice', value: Buffer.from('hello') });

    const reply = await exchange(request);
    expect(reply.toString('hex')).toBe(expectedReply.toString('hex'));
    expect(reply.readUInt32BE(0)).toBe(reply.length - 4);
    expect(decodePayload(reply.subarray(4))).toEqual({
      id: 1,
      ok: true,
      context: DOC_CONTEXT,
      consistency: { n: 3, required: 2, replied: 2 },
      rv: DOC_DIGEST,
    });
    // What reached the router: the documented key and value bytes, a live write, default consistency.
    expect(writes).toHaveLength(1);
    expect(Buffer.from(writes[0]!.key).toString()).toBe('alice');
    expect(Buffer.from(writes[0]!.value).toString()).toBe('hello');
    expect(writes[0]).toMatchObject({ table: 'users', tombstone: false, consistency: {} });
  });

  it('counter example: the documented crdt_update frame gets the documented reply bytes from a real server', async () => {
    const request = hexBlock('crdt-request');
    const expectedReply = hexBlock('crdt-reply');
    expect(request.readUInt32BE(0)).toBe(request.length - 4);
    expect(decodePayload(request.subarray(4))).toEqual({ id: 2, op: 'crdt_update', table: 'likes', key: 'post:1', operation: { increment: 1 } });
    const reply = await exchange(request);
    expect(reply.toString('hex')).toBe(expectedReply.toString('hex'));
    expect(decodePayload(reply.subarray(4))).toEqual({ id: 2, ok: true, value: 6, consistency: { n: 3, required: 2, replied: 2 }, rv: DOC_DIGEST });
    // What reached the coordinator: the documented table, key bytes and operation, default consistency.
    expect(crdtUpdates).toHaveLength(1);
    expect(Buffer.from(crdtUpdates[0]!.key).toString()).toBe('post:1');
    expect(crdtUpdates[0]).toMatchObject({ table: 'likes', operation: { increment: 1 }, consistency: {} });
    expect(doc).toContain(`payload length ${request.length - 4}`);
    expect(doc).toContain(`payload length ${reply.length - 4}`);
  });

  it('query example: the documented request gets the documented reply bytes, the handler sees the statement and params', async () => {
    const request = hexBlock('query-request');
    expect(request.readUInt32BE(0)).toBe(request.length - 4);
    expect(decodePayload(request.subarray(4))).toEqual({ id: 2, op: 'query', query: 'SELECT * FROM users WHERE user_id = ?', params: ['123'] });
    const reply = await exchange(request);
    expect(reply.toString('hex')).toBe(hexBlock('query-reply').toString('hex'));
    expect(decodePayload(reply.subarray(4))).toMatchObject({ id: 2, ok: true, kind: 'rows', rows: [{ user_id: '123', event: 'login' }], rv: DOC_DIGEST });
    expect(queries).toEqual([{ query: 'SELECT * FROM users WHERE user_id = ?', readOnly: true, params: ['123'], consistency: undefined, pageSize: undefined, pagingState: undefined, timeoutMs: undefined }]);
    expect(doc).toContain(`payload length ${request.length - 4}`);
    expect(doc).toContain(`payload length ${hexBlock('query-reply').length - 4}`);
  });

  it('the annotated lengths match the frames', () => {
    expect(doc).toContain(`payload length ${hexBlock('put-request').length - 4}`);
    expect(doc).toContain(`payload length ${hexBlock('put-reply').length - 4}`);
    expect(doc).toContain(`"${DOC_CONTEXT}"`);
    expect(doc).toContain(`\`"${DOC_DIGEST}"\``);
  });

  it('documents every op and every error code', () => {
    for (const op of IPC_OPS) expect(doc, `op ${op}`).toMatch(new RegExp('### `' + op + '`'));
    for (const code of ERROR_CODES) expect(doc, `error code ${code}`).toMatch(new RegExp('\\| `' + code + '` +\\|'));
  });
});
