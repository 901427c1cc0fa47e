/**
 * Issue 10's defects met through a real node (`ringkv start`, 2 shards) over HTTP, the IPC socket
 * and the client: a delete of a never-written key (item 1), deep JSON (items 7, 8), invalid UTF-8
 * (item 10), 64-bit integers over the socket (item 9), the IPC document's Python example run after
 * its worked example (item 11), and siblings too large for one frame (item 13). Run `npx tsc` first.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RingkvClient } from '../../src/client/index.js';
import { decodePayload } from '../../src/net/frames.js';
import { mp } from '../helpers/ipc-fakes.js';
import { http, removeDir, ROOT, startNodeProc, tempDir, waitFor, type NodeProc } from '../helpers/proc.js';

type Body = Record<string, unknown>;

let dir: string;
let node: NodeProc;
let client: RingkvClient;
const sock = (): string => path.join(dir, 'data', 'ringkv.sock');

async function routerMetrics(): Promise<Record<string, number>> {
  return (await http('GET', `${node.url}/api/v1/metrics`)).body['router'] as Record<string, number>;
}

/** fetch with a deadline: a request that never answers fails the test instead of hanging it. */
async function bounded(method: string, p: string, body?: Buffer | string, ms = 3000): Promise<{ status: number; body: Body }> {
  const init: RequestInit = { method, signal: AbortSignal.timeout(ms) };
  if (body !== undefined) {
    init.body = body;
    init.headers = { 'content-type': 'application/json' };
  }
  const r = await fetch(`${node.url}${p}`, init);
  return { status: r.status, body: (await r.json()) as Body };
}

/** One raw frame exchange on the node's IPC socket: the decoded reply. */
function rawIpc(payload: Buffer): Promise<Body> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ path: sock() });
    let acc = Buffer.alloc(0);
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error('no reply within 3 s'));
    }, 3000);
    s.on('error', reject);
    s.on('data', (d: Buffer) => {
      acc = Buffer.concat([acc, d]);
      if (acc.length >= 4 && acc.length >= 4 + acc.readUInt32BE(0)) {
        clearTimeout(t);
        s.destroy();
        resolve(decodePayload(acc.subarray(4, 4 + acc.readUInt32BE(0))) as Body);
      }
    });
    s.on('connect', () => s.write(mp.frame(payload)));
  });
}

beforeAll(async () => {
  dir = tempDir('rkv-input-');
  node = await startNodeProc({ dataDir: path.join(dir, 'data'), shards: 2 });
  client = await RingkvClient.connect({ socket: sock() });
  expect((await http('PUT', `${node.url}/api/v1/tables/vc`, { conflicts: 'vclock' })).status).toBe(200);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await node?.kill();
  if (dir) removeDir(dir);
});

describe('a delete of a key that was never written (item 1)', () => {
  it('answers at once over HTTP and IPC, with an empty context, and leaves no coordination running', async () => {
    const before = await routerMetrics();
    const d = await bounded('DELETE', '/api/v1/store/vc/never-written');
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ key: 'never-written', deleted: true, context: '' });
    const w = await client.delete('vc', 'never-written-either', { timeoutMs: 2000 });
    expect(w.context).toBe('');
    // One read each, nothing spinning: the counters stay still once both answered.
    const after = await routerMetrics();
    expect(after['coordinatedReads']! - before['coordinatedReads']!).toBe(2);
    expect(after['coordinatedWrites']! - before['coordinatedWrites']!).toBe(0);
    await waitFor('no live coordination', async () => (await routerMetrics())['coordinationsInFlight'] === 0);
    expect((await routerMetrics())['coordinatedReads']).toBe(after['coordinatedReads']);
    expect(after['overdueCoordinations']).toBe(0);
    // A key that exists is still deleted by a delete without a context.
    expect((await http('PUT', `${node.url}/api/v1/store/vc`, { key: 'there', value: 1 })).status).toBe(200);
    const del = await bounded('DELETE', '/api/v1/store/vc/there');
    expect(del.status).toBe(200);
    expect(del.body['context']).not.toBe('');
    expect((await http('GET', `${node.url}/api/v1/store/vc/there`)).status).toBe(404);
  });
});

describe('JSON nesting and UTF-8 over HTTP (items 7, 8, 10)', () => {
  const nested = (d: number): string => '['.repeat(d) + ']'.repeat(d);

  it('a body nested past limits.maxJsonDepth is a 400 naming the limit; one at the limit round-trips', async () => {
    const deep = await bounded('PUT', '/api/v1/store/vc', `{"key":"deep","value":${nested(5000)}}`);
    expect(deep.status).toBe(400);
    expect(deep.body['error']).toMatchObject({ code: 'bad_request', details: { limit: 'maxJsonDepth', maxJsonDepth: 512 } });
    expect(JSON.stringify(deep.body)).toMatch(/maxJsonDepth/);
    const ok = await bounded('PUT', '/api/v1/store/vc', `{"key":"deep","value":${nested(511)}}`); // + the body's own object
    expect(ok.status).toBe(200);
    expect(JSON.stringify((await bounded('GET', '/api/v1/store/vc/deep')).body['value'])).toBe(nested(511));
  });

  it('a value stored over IPC as deeply nested JSON text is rendered as a string, by GET and by scans', async () => {
    await client.put('deepv', 'k', nested(20_000));
    await client.put('deepv', 'k2', 'plain');
    const g = await bounded('GET', '/api/v1/store/deepv/k');
    expect(g.status).toBe(200);
    expect(g.body['value']).toBe(nested(20_000));
    const s = await bounded('GET', '/api/v1/store/deepv?start=a&limit=10');
    expect(s.status).toBe(200);
    expect((s.body['rows'] as Body[]).map((r) => r['value']).sort()).toEqual([nested(20_000), 'plain'].sort());
  });

  it('a body that is not valid UTF-8, or a key with a lone surrogate, is a 400 and stores nothing', async () => {
    const a = Buffer.concat([Buffer.from('{"key":"k'), Buffer.from([0xff]), Buffer.from('","value":1}')]);
    const b = Buffer.concat([Buffer.from('{"key":"k'), Buffer.from([0xfe]), Buffer.from('","value":2}')]);
    for (const body of [a, b]) {
      const r = await bounded('PUT', '/api/v1/store/utf', body);
      expect(r.status).toBe(400);
      expect(r.body['error']).toMatchObject({ code: 'bad_request' });
      expect(JSON.stringify(r.body)).toMatch(/UTF-8/);
    }
    expect((await bounded('GET', '/api/v1/store/utf/k\uFFFD'.replace('\uFFFD', '%EF%BF%BD'))).status).toBe(404);
    const lone = await bounded('PUT', '/api/v1/store/utf', '{"key":"k\\ud800","value":1}');
    expect(lone.status).toBe(400);
    expect(lone.body['error']).toMatchObject({ code: 'bad_request', details: { field: 'key' } });
    const url = await bounded('GET', '/api/v1/store/utf/%FF');
    expect(url.status).toBe(400);
    expect(url.body['error']).toMatchObject({ code: 'bad_request' });
    expect((await http<{ tables: Array<{ name: string }> }>('GET', `${node.url}/api/v1/tables`)).body.tables.map((t) => t.name)).not.toContain('utf');
  });
});

describe('the IPC socket of a real node (item 9)', () => {
  it('a 64-bit integer in a field is a bad_request naming the field', async () => {
    const r = await rawIpc(mp.map([['id', mp.v(1)], ['op', mp.str('get')], ['table', mp.str('vc')], ['key', mp.str('k')], ['timeoutMs', mp.u64(1n << 63n)]]));
    expect(r).toMatchObject({ id: 1, ok: false, code: 'bad_request', field: 'timeoutMs' });
  });
});

describe('the IPC document, as a client written from it sees it (item 11)', () => {
  const doc = readFileSync(path.join(ROOT, 'docs', 'ipc-protocol.md'), 'utf8');

  /** A minimal stand-in for Python's msgpack (packb / unpackb of the types the example uses). */
  const MSGPACK_SHIM = String.raw`
import struct
def _p(o):
    if o is None: return b"\xc0"
    if o is True: return b"\xc3"
    if o is False: return b"\xc2"
    if isinstance(o, int):
        if 0 <= o < 128: return bytes([o])
        if 0 <= o < 2**32: return b"\xce" + struct.pack(">I", o)
        raise ValueError("int out of range for the shim")
    if isinstance(o, str):
        b = o.encode("utf-8")
        return (bytes([0xa0 | len(b)]) if len(b) < 32 else b"\xdb" + struct.pack(">I", len(b))) + b
    if isinstance(o, (bytes, bytearray)): return b"\xc6" + struct.pack(">I", len(o)) + bytes(o)
    if isinstance(o, dict):
        return b"\xdf" + struct.pack(">I", len(o)) + b"".join(_p(k) + _p(v) for k, v in o.items())
    if isinstance(o, (list, tuple)): return b"\xdd" + struct.pack(">I", len(o)) + b"".join(_p(v) for v in o)
    raise TypeError(type(o))
def packb(o, use_bin_type=True): return _p(o)
def _u(b, i):
    t = b[i]; i += 1
    if t < 0x80: return t, i
    if t >= 0xe0: return t - 256, i
    if 0x80 <= t <= 0x8f: return _map(b, i, t & 15)
    if 0x90 <= t <= 0x9f: return _arr(b, i, t & 15)
    if 0xa0 <= t <= 0xbf: n = t & 31; return b[i:i+n].decode(), i + n
    if t == 0xc0: return None, i
    if t in (0xc2, 0xc3): return t == 0xc3, i
    fmt = {0xc4: ">B", 0xc5: ">H", 0xc6: ">I"}
    if t in fmt: n = struct.unpack_from(fmt[t], b, i)[0]; i += struct.calcsize(fmt[t]); return bytes(b[i:i+n]), i + n
    fmt = {0xd9: ">B", 0xda: ">H", 0xdb: ">I"}
    if t in fmt: n = struct.unpack_from(fmt[t], b, i)[0]; i += struct.calcsize(fmt[t]); return b[i:i+n].decode(), i + n
    fmt = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h", 0xd2: ">i", 0xd3: ">q", 0xca: ">f", 0xcb: ">d"}
    if t in fmt: return struct.unpack_from(fmt[t], b, i)[0], i + struct.calcsize(fmt[t])
    if t in (0xdc, 0xdd): f = ">H" if t == 0xdc else ">I"; n = struct.unpack_from(f, b, i)[0]; return _arr(b, i + struct.calcsize(f), n)
    if t in (0xde, 0xdf): f = ">H" if t == 0xde else ">I"; n = struct.unpack_from(f, b, i)[0]; return _map(b, i + struct.calcsize(f), n)
    raise ValueError(hex(t))
def _arr(b, i, n):
    out = []
    for _ in range(n): v, i = _u(b, i); out.append(v)
    return out, i
def _map(b, i, n):
    out = {}
    for _ in range(n): k, i = _u(b, i); v, i = _u(b, i); out[k] = v
    return out, i
def unpackb(b, raw=False): return _u(b, 0)[0]
`;

  it("the Python example, run after the worked example, prints what its comments show", async () => {
    // The worked example's request bytes first, exactly as documented.
    const hex = /```hex put-request\n([\s\S]*?)```/.exec(doc)![1]!;
    const bytes = Buffer.from(hex.split('\n').flatMap((l) => l.trim().split(/\s+/).slice(1)).join(''), 'hex');
    const first = await new Promise<Body>((resolve, reject) => {
      const s = createConnection({ path: sock() });
      s.on('error', reject);
      s.on('data', (d: Buffer) => {
        s.destroy();
        resolve(decodePayload(d.subarray(4)) as Body);
      });
      s.on('connect', () => s.write(bytes));
    });
    expect(first).toMatchObject({ id: 1, ok: true });

    // Then the Python block, unchanged, from the directory whose ./data holds the socket.
    const py = /### The same exchange in Python\n\n```python\n([\s\S]*?)```/.exec(doc)![1]!;
    const work = path.join(dir, 'py');
    mkdirSync(work, { recursive: true });
    writeFileSync(path.join(work, 'example.py'), py);
    // Python's own msgpack when installed, else the shim above (same byte-level exchange).
    const hasMsgpack = spawnSync('python3', ['-c', 'import msgpack'], { stdio: 'ignore' }).status === 0;
    if (!hasMsgpack) writeFileSync(path.join(work, 'msgpack.py'), MSGPACK_SHIM);
    const out = execFileSync('python3', [path.join(work, 'example.py')], { cwd: dir, env: { ...process.env, PYTHONPATH: work }, timeout: 20_000 }).toString();
    const lines = out.trim().split('\n');
    const comments = [...py.matchAll(/print\((?:recv\(\)|\w+)\)\s+#\s*(\{.*\})/g)].map((m) => m[1]!);
    expect(comments.length).toBeGreaterThanOrEqual(4);
    expect(lines).toHaveLength(comments.length);
    for (let i = 0; i < lines.length; i++) {
      // Every key the comment shows is in the printed reply, with the shown value where one is given.
      for (const [, k, v] of comments[i]!.matchAll(/'(\w+)': ([^,}]+)/g)) {
        expect(lines[i], `line ${i + 1}: ${comments[i]}`).toContain(`'${k}': `);
        if (!v!.includes('...')) expect(lines[i], `line ${i + 1}`).toContain(`'${k}': ${v}`);
      }
      expect(lines[i]).not.toContain('siblings');
    }
  });
});

describe('siblings larger than one frame (item 13)', () => {
  it('a get answers too_large with the context and what was left out; a put with it resolves the key', async () => {
    // 16 blind writes of 1 MiB each on a vclock table: 16 siblings, over the 16 MiB frame limit.
    const vals = Array.from({ length: 16 }, (_, i) => Buffer.alloc(1024 * 1024, i + 1));
    for (const v of vals) await client.put('vc', 'huge', v);
    const err = await client.get('vc', 'huge').then(
      () => null,
      (e: unknown) => e as { code: string; details?: Body },
    );
    expect(err).toMatchObject({ code: 'too_large' });
    const d = err!.details!;
    expect(typeof d['context']).toBe('string');
    expect((d['sizes'] as number[]).length).toBe(16);
    expect((d['omitted'] as number[]).length).toBeGreaterThan(0);
    expect((d['siblings'] as Array<Buffer | null>).filter((s) => s !== null).length).toBe(16 - (d['omitted'] as number[]).length);
    await client.put('vc', 'huge', 'resolved', { context: d['context'] as string });
    const g = await client.get('vc', 'huge');
    expect(g.value?.toString()).toBe('resolved');
    expect(g.siblings).toBeUndefined();
  }, 60_000);
});
