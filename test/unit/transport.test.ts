import { afterEach, describe, expect, it } from 'vitest';
import net, { type Socket } from 'node:net';
import { createHmac, randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { PeerTransport, connectAsClient, type PeerHandler, type PeerTransportOptions } from '../../src/cluster/transport.js';
import { FrameDecoder, encodeFrame } from '../../src/net/frames.js';
import { ReplyBudget } from '../../src/net/reply-budget.js';
import { RingkvError } from '../../src/util/errors.js';
import { freePort, waitFor } from '../helpers/proc.js';
import { rejected } from '../helpers/thrown.js';

const SECRET = 'test-cluster-secret';
const log = pino({ level: 'silent' });

const transports: PeerTransport[] = [];
const cleanups: Array<() => void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  await Promise.all(transports.splice(0).map((t) => t.close()));
});

async function start(selfId: string, handler: PeerHandler, extra: Partial<PeerTransportOptions> = {}): Promise<PeerTransport> {
  const t = await PeerTransport.listen({ selfId, secret: SECRET, host: '127.0.0.1', port: 0, handler, log, ...extra });
  transports.push(t);
  return t;
}

const addr = (t: PeerTransport): string => `127.0.0.1:${t.port}`;
const echo: PeerHandler = async (body) => body;
const poll = <T>(what: string, fn: () => Promise<T | undefined | null | false> | T | undefined | null | false, ms = 3000): Promise<T> =>
  waitFor(what, fn, ms, 10);

const rejection = (p: Promise<unknown>): Promise<RingkvError> => rejected(p, RingkvError);

/** A handler whose answers the test releases explicitly (no sleeps to order things). */
function gatedHandler(): { handler: PeerHandler; seen: unknown[]; release: (i: number, v?: unknown) => void; releaseAll: () => void } {
  const seen: unknown[] = [];
  const resolvers: Array<((v: unknown) => void) | null> = [];
  const handler: PeerHandler = (body) =>
    new Promise((resolve) => {
      seen.push(body);
      resolvers.push(resolve);
    });
  const release = (i: number, v?: unknown): void => {
    const r = resolvers[i];
    resolvers[i] = null;
    r?.(v === undefined ? seen[i] : v);
  };
  const releaseAll = (): void => resolvers.forEach((_, i) => release(i));
  cleanups.push(releaseAll);
  return { handler, seen, release, releaseAll };
}

function hmac(secret: string, label: string, nonce: Uint8Array, id: string): Buffer {
  return createHmac('sha256', secret).update(label).update(nonce).update(id, 'utf8').digest();
}

/** A hand-driven TCP connection: pins the wire format independently of the implementation. */
class RawConn {
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);
  private readonly frames: unknown[] = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<void>;
  constructor(readonly socket: Socket) {
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      try {
        this.frames.push(...this.decoder.push(d));
      } catch {
        socket.destroy();
      }
      this.waiter?.();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    cleanups.push(() => socket.destroy());
  }
  static connect(port: number): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(new RawConn(s)));
      s.once('error', reject);
    });
  }
  async next(timeoutMs = 2000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.socket.destroyed) throw new Error('no frame arrived');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.frames.shift() as Record<string, unknown>;
  }
  send(msg: unknown): void {
    this.socket.write(encodeFrame(msg));
  }
}

/** Runs the client side of the handshake by hand. `extra` is written in the same packet as the hello. */
async function rawHandshake(port: number, nodeId: string, role: 'peer' | 'client' = 'peer', extra?: Buffer): Promise<RawConn> {
  const c = await RawConn.connect(port);
  const ch = await c.next();
  expect(ch.t).toBe('challenge');
  expect(Buffer.isBuffer(ch.nonce) && (ch.nonce as Buffer).length).toBe(32);
  const nonce = randomBytes(32);
  const hello = encodeFrame({ t: 'hello', role, nodeId, nonce, mac: hmac(SECRET, 'client', ch.nonce as Buffer, nodeId), ...(role === 'peer' ? { cluster: 'ringkv' } : {}) });
  c.socket.write(extra ? Buffer.concat([hello, extra]) : hello);
  const w = await c.next();
  expect(w.t).toBe('welcome');
  expect(hmac(SECRET, 'server', nonce, ch.serverId as string).equals(w.mac as Buffer)).toBe(true);
  return c;
}

/** A TCP server driven by the test, to play a misbehaving peer. */
async function fakeServer(onConn: (s: Socket) => void): Promise<number> {
  const sockets = new Set<Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    onConn(s);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    srv.close();
  });
  return (srv.address() as net.AddressInfo).port;
}

/** A fake server that completes the handshake honestly with `serverSecret`, then calls `after`. */
function handshakeAs(serverId: string, serverSecret: string, after: (s: Socket) => void, forgeWelcome = false): (s: Socket) => void {
  return (s) => {
    const nonce = randomBytes(32);
    const dec = new FrameDecoder(4096);
    let done = false;
    s.write(encodeFrame({ t: 'challenge', nonce, serverId }));
    s.on('data', (d: Buffer) => {
      if (done) return;
      const hello = dec.push(d)[0] as Record<string, unknown> | undefined;
      if (!hello) return;
      done = true;
      const mac = forgeWelcome ? randomBytes(32) : hmac(serverSecret, 'server', hello.nonce as Buffer, serverId);
      s.write(encodeFrame({ t: 'welcome', mac }));
      after(s);
    });
  };
}

describe('PeerTransport', () => {
  it('round-trips requests with byte-exact Buffers and learns the peer id', async () => {
    const b = await start('B', async (body, ctx) => {
      const m = body as { op: string };
      if (m.op === 'missing') throw new RingkvError('not_found', 'no such key k1');
      if (m.op === 'crash') throw new Error('boom');
      return { echo: body, from: ctx.fromNodeId };
    });
    const a = await start('A', echo);
    const bytes = Buffer.concat([Buffer.from(Array.from({ length: 256 }, (_, i) => i)), randomBytes(200_000)]);
    const res = (await a.request(addr(b), { op: 'echo', bin: bytes, empty: Buffer.alloc(0) }, 2000)) as {
      echo: { bin: Buffer; empty: Buffer };
      from: string;
    };
    expect(Buffer.isBuffer(res.echo.bin)).toBe(true);
    expect(res.echo.bin.equals(bytes)).toBe(true);
    expect(res.echo.empty.length).toBe(0);
    expect(res.from).toBe('A');
    expect(a.peerIdOf(addr(b))).toBe('B');
    expect(a.peerIdOf('127.0.0.1:1')).toBeUndefined();

    const nf = await rejection(a.request(addr(b), { op: 'missing' }, 2000));
    expect([nf.code, nf.message]).toEqual(['not_found', 'no such key k1']);
    const crash = await rejection(a.request(addr(b), { op: 'crash' }, 2000));
    expect(crash.code).toBe('internal');

    const s = a.stats();
    expect(s.peers).toEqual([{ address: addr(b), id: 'B', connected: true, queued: 0, inFlight: 0, queuedBytes: 0 }]);
    expect(s.framesOut).toBe(4); // hello + three requests
    expect(s.framesIn).toBe(5); // challenge + welcome + three responses
    expect(b.stats().authFailures).toBe(0);
    expect((await rejection(a.request('no-port-here', 1, 1000))).code).toBe('bad_request');
  });

  it('matches out-of-order responses by request id', async () => {
    const g = gatedHandler();
    const b = await start('B', g.handler);
    const a = await start('A', echo);
    const ps = [0, 1, 2, 3].map((n) => a.request(addr(b), n, 3000));
    await poll('all four requests to reach the handler', () => g.seen.length === 4);
    expect(a.stats().peers[0]!.inFlight).toBe(4);
    for (const i of [2, 0, 3, 1]) g.release(i, `answer-${g.seen[i] as number}`);
    expect(await Promise.all(ps)).toEqual(['answer-0', 'answer-1', 'answer-2', 'answer-3']);
  });

  it('refuses a node with the wrong secret; its handler never runs', async () => {
    let calls = 0;
    const b = await start('B', async () => ++calls);
    const evil = await start('evil', echo, { secret: 'not-the-secret' });
    const e = await rejection(evil.request(addr(b), 'let me in', 2000));
    // B's denial itself, not a timeout or a dropped connection (those are 'unavailable').
    expect(e.code).toBe('unauthorized');
    expect(e.message).toMatch(/refused the connection: authentication failed$/);
    await poll('B to count the auth failure', () => b.stats().authFailures >= 1);
    expect(evil.peerIdOf(addr(b))).toBeUndefined();

    const c = await rejection(connectAsClient(addr(b), 'not-the-secret', 'cli', 2000));
    expect(c.code).toBe('unauthorized');
    expect(b.stats().authFailures).toBeGreaterThanOrEqual(2);
    // B also never trusted a connection in the other direction.
    const back = await rejection(b.request(addr(evil), 'x', 2000));
    expect(back.code).toBe('unauthorized');
    expect(back.message).toMatch(/refused the connection: authentication failed$/);
    expect(calls).toBe(0);
  });

  it('refuses a peer of another cluster name (same secret), saying so; clients need no name', async () => {
    let calls = 0;
    const b = await start('B', async () => ++calls, { clusterName: 'blue' });
    const other = await start('O', echo, { clusterName: 'green' });
    const e = await rejection(other.request(addr(b), 'gossip', 2000));
    expect(e.code).toBe('unauthorized');
    expect(e.message).toMatch(/wrong cluster: node B is in cluster "blue", the connecting node said "green"/);
    await poll('B to count the refusal', () => b.stats().authFailures >= 1);
    // The default name is a name too: 'ringkv' is not 'blue'.
    const dflt = await start('D', echo);
    expect((await rejection(dflt.request(addr(b), 'gossip', 2000))).message).toMatch(/said "ringkv"/);
    expect(calls).toBe(0);
    // A peer of the same cluster gets through, and so does a client (which sends no name).
    const same = await start('S', echo, { clusterName: 'blue' });
    expect(await same.request(addr(b), 'hello', 2000)).toBe(1);
    expect(calls).toBe(1);
  });

  it('drops unauthenticated sockets: requests before the hello, and silence past the handshake deadline', async () => {
    let calls = 0;
    const b = await start('B', async () => ++calls);
    const eager = await RawConn.connect(b.port);
    expect((await eager.next()).t).toBe('challenge');
    eager.send({ t: 'req', id: 1, body: 'skip the handshake' });
    expect(await eager.next()).toMatchObject({ t: 'denied', code: 'unauthorized' });
    await eager.closed;

    const silent = await RawConn.connect(b.port);
    const t0 = Date.now();
    await silent.closed; // the server's 2 s handshake deadline, not ours
    expect(Date.now() - t0).toBeGreaterThan(1500);
    expect(b.stats().authFailures).toBe(2);
    expect(calls).toBe(0);
  });

  it('keeps unauthenticated connections in a small pool of their own: idle ones make room, time out, and never take authenticated slots', async () => {
    const b = await start('B', echo, {
      handshakeTimeoutMs: 300,
      maxUnauthenticatedConnections: 8,
      maxUnauthenticatedPerAddress: 4,
      maxAuthenticatedConnections: 2,
      onClient: (sock) => void sock.on('data', () => {}),
    });
    const idle = await Promise.all(Array.from({ length: 10 }, () => RawConn.connect(b.port)));
    await poll('the pool full', () => b.stats().unauthenticated === 4);
    // Six of the ten were evicted for newer ones (one address, 4 slots); a real peer still gets in.
    const a = await start('A', echo);
    expect(await a.request(addr(b), 'hello', 2000)).toBe('hello');
    expect(b.stats().evictedUnauthenticated).toBe(7);
    // The authenticated pool has its own cap: a client fills it, the next is denied, saying why.
    const c1 = await connectAsClient(addr(b), SECRET, 'c1', 2000);
    cleanups.push(() => c1.socket.destroy());
    const c2 = await rejection(connectAsClient(addr(b), SECRET, 'c2', 2000));
    expect(c2.message).toMatch(/authenticated connections \(limit 2\)/);
    expect(b.stats().authenticated).toBe(2);
    // The idle ones that were not evicted (10 - 7) close at the handshake deadline: the server
    // counts each as a handshake timeout.
    await Promise.all(idle.map((c) => c.closed));
    await poll('no unauthenticated connections left', () => b.stats().unauthenticated === 0);
    expect(b.stats().handshakeTimeouts).toBe(3);
  });

  it('rejects a server that cannot prove it holds the secret', async () => {
    const port = await fakeServer(handshakeAs('impostor', SECRET, () => {}, true));
    const a = await start('A', echo);
    const e = await rejection(a.request(`127.0.0.1:${port}`, 'secret data', 2000));
    expect(e.code).toBe('unauthorized');
    expect(e.message).toContain('impostor');
    expect(a.stats().authFailures).toBe(1);
  });

  it('hands authenticated client connections to onClient with bytes read past the handshake', async () => {
    const got: Buffer[] = [];
    const b = await start('B', echo, {
      onClient: (socket, first) => {
        got.push(first);
        socket.on('data', (d: Buffer) => socket.write(d));
      },
    });
    const { socket, leftover } = await connectAsClient(addr(b), SECRET, 'cli-1', 2000);
    cleanups.push(() => socket.destroy());
    expect(leftover.length).toBe(0);
    const back = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.resume();
    socket.write('ping');
    expect(await back).toBe('ping');
    expect(got[0]!.length).toBe(0);

    // Bytes pipelined behind the hello reach the new owner verbatim.
    const raw = await rawHandshake(b.port, 'cli-2', 'client', Buffer.from('early-bytes'));
    await poll('the second client hand-over', () => got.length === 2);
    expect(got[1]!.toString()).toBe('early-bytes');
    raw.socket.destroy();

    // Without onClient the client role is refused.
    const noClients = await start('C', echo);
    expect((await rejection(connectAsClient(addr(noClients), SECRET, 'cli', 2000))).code).toBe('unavailable');
  });

  it('closes only the connection that sends garbage or an oversized frame', async () => {
    const b = await start('B', echo);
    const a = await start('A', echo);
    expect(await a.request(addr(b), 'before', 2000)).toBe('before');

    const badPayload = Buffer.from([0, 0, 0, 3, 0xc1, 0xc1, 0xc1]); // 0xc1 is never valid msgpack
    const hugePrefix = Buffer.from([0xff, 0xff, 0xff, 0xff]);
    const overHandshakeLimit = Buffer.from([0, 0, 0x08, 0]); // 2 KiB: legal later, too big before auth

    for (const junk of [badPayload, hugePrefix, overHandshakeLimit]) {
      const pre = await RawConn.connect(b.port);
      expect((await pre.next()).t).toBe('challenge');
      pre.socket.write(junk);
      await pre.closed;
    }
    // Authenticated peers get the same treatment, and the wire format works by hand.
    for (const junk of [badPayload, hugePrefix]) {
      const post = await rawHandshake(b.port, 'R');
      post.send({ t: 'req', id: 7, body: Buffer.from('raw') });
      const res = await post.next();
      expect(res).toEqual({ t: 'res', id: 7, ok: true, body: Buffer.from('raw') });
      post.socket.write(junk);
      await post.closed;
    }
    expect(b.stats().badFrames).toBe(5);
    expect(a.stats().peers[0]!.connected).toBe(true);
    expect(await a.request(addr(b), 'after', 2000)).toBe('after');
  });

  it('rejects with timeout naming the peer at the deadline; the connection stays usable', async () => {
    const g = gatedHandler();
    const b = await start('B', async (body, ctx) => (body === 'hang' ? g.handler(body, ctx) : body));
    const a = await start('A', echo);
    const t0 = Date.now();
    const e = await rejection(a.request(addr(b), 'hang', 150));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    expect(e.code).toBe('timeout');
    expect(e.message).toContain('node B');
    expect(e.message).toContain(addr(b));
    expect(a.stats().peers[0]!.inFlight).toBe(0);
    g.releaseAll(); // the late answer must be ignored
    expect(await a.request(addr(b), 'ok', 2000)).toBe('ok');
    expect(a.stats().badFrames).toBe(0);
  });

  it('fails in-flight requests at once when the peer dies, and reconnects after it restarts', async () => {
    const g = gatedHandler();
    const b = await start('B', g.handler);
    const port = b.port;
    const a = await start('A', echo);
    const inFlight = a.request(addr(b), 'hang', 5000);
    await poll('the request to reach B', () => g.seen.length === 1);
    await b.close();
    const e = await rejection(inFlight);
    // At once, from the closed connection (the 5 s deadline would answer 'timeout' instead).
    expect(e.code).toBe('unavailable');
    expect(e.message).toMatch(/lost \(connection closed\)$/);

    const b2 = await start('B', echo, { port });
    await poll('A to reconnect to the restarted B', async () => (await a.request(addr(b2), 'again', 500)) === 'again', 5000);
    expect(a.peerIdOf(addr(b2))).toBe('B');

    // Nothing listening: 'unavailable' straight away, and again (fail fast) while backing off.
    const dead = `127.0.0.1:${await freePort()}`;
    expect((await rejection(a.request(dead, 1, 2000))).code).toBe('unavailable');
    const again = await rejection(a.request(dead, 1, 2000));
    expect(again.code).toBe('unavailable');
  });

  it('bounds requests per peer: overloaded past the limit, on both the sending and serving side', async () => {
    const g = gatedHandler();
    const b = await start('B', g.handler, { maxQueuedPerPeer: 3 });
    const a = await start('A', echo, { maxQueuedPerPeer: 4 });
    const ps = [0, 1, 2, 3].map((n) => a.request(addr(b), n, 3000));
    const over = await rejection(a.request(addr(b), 4, 3000));
    expect(over.code).toBe('overloaded');
    expect(over.message).toContain(addr(b));
    // B serves only 3 at once from A: the 4th is answered 'overloaded' by B itself.
    const served = await rejection(ps[3]!);
    expect(served.code).toBe('overloaded');
    expect(served.message).toContain('A');
    await poll('three requests at B', () => g.seen.length === 3);
    g.releaseAll();
    expect(await Promise.all(ps.slice(0, 3))).toEqual([0, 1, 2]);
    expect(a.stats().peers[0]).toMatchObject({ queued: 0, inFlight: 0 });
  });

  it('respects write backpressure: a peer that stops reading fills a bounded queue, then overloaded', async () => {
    const port = await fakeServer(handshakeAs('slow', SECRET, (s) => s.pause()));
    const a = await start('A', echo);
    const address = `127.0.0.1:${port}`;
    expect((await rejection(a.request(address, 'warm-up', 200))).code).toBe('timeout');
    const body = Buffer.alloc(1024 * 1024, 7);
    const ps: Array<Promise<unknown>> = [];
    let over: RingkvError | null = null;
    for (let i = 0; i < 300 && !over; i++) {
      const p = a.request(address, body, 5000);
      ps.push(p.catch(() => {}));
      // An immediate rejection settles before setImmediate fires; yielding also lets writes reach the kernel.
      const r = await Promise.race([p.then(() => null, (e: unknown) => e), new Promise<null>((res) => setImmediate(() => res(null)))]);
      if (r instanceof RingkvError && r.code === 'overloaded') over = r;
      else if (r !== null) throw r;
    }
    expect(over).not.toBeNull();
    expect(over!.message).toContain('bytes');
    const peer = a.stats().peers[0]!;
    expect(peer.queued).toBeGreaterThan(0);
    expect(peer.inFlight).toBeGreaterThan(0);
    expect(ps.length).toBeLessThan(300);
  });

  it('bounds the answer bytes held for an inbound peer that does not read them, and frees them when it goes', async () => {
    const replies = new ReplyBudget({ maxReplyBytesPerConnection: 1024 * 1024, maxReplyBytesTotal: 16 * 1024 * 1024 });
    const value = Buffer.alloc(256 * 1024, 3);
    let calls = 0;
    const b = await start('B', async () => (calls++, value), { replies, initialReplyEstimateBytes: value.length });
    const slow = await rawHandshake(b.port, 'slow');
    slow.socket.pause();
    const N = 200;
    for (let id = 1; id <= N; id++) slow.send({ t: 'req', id, body: id });
    await poll('the connection at its reply-byte bound', () => replies.stats().connectionsAtLimit === 1);
    const stalled = calls;
    // A few answers fill the bound (and the kernel's socket buffers); the rest wait unread, not even served.
    expect(stalled).toBeLessThan(N / 4);
    expect(replies.stats().heldBytes).toBeLessThanOrEqual(1024 * 1024 + value.length + 64);
    // Another peer is still served meanwhile.
    const a = await start('A', echo);
    expect(await a.request(addr(b), 'hi', 2000)).toEqual(value);
    // Reading again lets every request through, in bounded steps.
    slow.socket.resume();
    for (let i = 0; i < N; i++) expect(await slow.next(5000)).toMatchObject({ t: 'res', ok: true });
    expect(calls).toBe(N + 1);
    // Stall again, then go away: everything held for it is released.
    slow.socket.pause();
    for (let id = 1; id <= N; id++) slow.send({ t: 'req', id, body: id });
    await poll('stalled again', () => replies.stats().connectionsAtLimit === 1);
    slow.socket.destroy();
    await poll('its bytes released', () => replies.stats().heldBytes === 0 && replies.stats().reservedBytes === 0);
  });

  it('setBlocked cuts both directions, and unblocking restores the link', async () => {
    const calls = { a: 0, b: 0 };
    const g = gatedHandler();
    const a = await start('A', async (body) => (calls.a++, body));
    const b = await start('B', async (body, ctx) => (calls.b++, body === 'hang' ? g.handler(body, ctx) : body));
    expect(await a.request(addr(b), 'a->b', 2000)).toBe('a->b');
    expect(await b.request(addr(a), 'b->a', 2000)).toBe('b->a');
    const stuck = a.request(addr(b), 'hang', 5000);
    await poll('the hanging request to reach B', () => g.seen.length === 1);

    a.setBlocked(['B']);
    expect(a.blocked()).toEqual(['B']);
    const cut = await rejection(stuck);
    expect(cut.code).toBe('unavailable');
    expect(cut.message).toContain('link cut by fault injection');
    const out = await rejection(a.request(addr(b), 'x', 2000));
    expect([out.code, out.message.includes('link cut by fault injection')]).toEqual(['unavailable', true]);
    const before = { ...calls };
    expect((await rejection(b.request(addr(a), 'y', 2000))).code).toBe('unavailable');
    expect((await rejection(b.request(addr(a), 'z', 2000))).code).toBe('unavailable');
    expect(calls).toEqual(before);
    expect(a.stats().peers[0]!.connected).toBe(false);

    a.setBlocked([]);
    expect(a.blocked()).toEqual([]);
    expect(await a.request(addr(b), 'healed', 2000)).toBe('healed');
    await poll('B to reach A again', async () => (await b.request(addr(a), 'healed', 500)) === 'healed');

    // Blocking on the receiving side alone refuses the dialer after the handshake.
    b.setBlocked(['A']);
    const refused = await rejection(a.request(addr(b), 'x', 2000));
    expect(refused.code).toBe('unavailable');
    b.setBlocked([]);
    await poll('A to reach B once B unblocks', async () => (await a.request(addr(b), 'back', 500)) === 'back');
  });

  it('close() fails everything pending and refuses new requests', async () => {
    const g = gatedHandler();
    const b = await start('B', g.handler);
    const a = await start('A', echo);
    const p = a.request(addr(b), 'hang', 5000);
    await poll('the request to reach B', () => g.seen.length === 1);
    await a.close();
    expect((await rejection(p)).code).toBe('unavailable');
    expect((await rejection(a.request(addr(b), 'x', 1000))).code).toBe('unavailable');
  });
});
