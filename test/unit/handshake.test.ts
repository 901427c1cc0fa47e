/**
 * The peer-port handshake's pure parts (src/cluster/handshake.ts): the server's check of a hello,
 * and pre-auth framing. The socket-driven sides are covered by the transport tests with real sockets.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { computeMac, HANDSHAKE_MAX_FRAME_BYTES, NONCE_BYTES, takeFrame, verifyHello } from '../../src/cluster/handshake.js';
import { encodeFrame } from '../../src/net/frames.js';

const SECRET = 'a-long-enough-cluster-secret-for-tests';
const serverNonce = randomBytes(NONCE_BYTES);
const server = { secret: SECRET, serverNonce, clusterName: 'prod', selfId: 'node1' };
const helloOf = (o: { nodeId?: string; role?: string; cluster?: string; mac?: Uint8Array; nonce?: Uint8Array } = {}): Record<string, unknown> => {
  const nodeId = o.nodeId ?? 'node2';
  return {
    t: 'hello',
    role: o.role ?? 'peer',
    nodeId,
    nonce: o.nonce ?? randomBytes(NONCE_BYTES),
    mac: o.mac ?? computeMac(SECRET, 'client', serverNonce, nodeId),
    ...(o.cluster !== undefined ? { cluster: o.cluster } : { cluster: 'prod' }),
  };
};

describe('handshake: the server checks a hello', () => {
  it('accepts a peer of its cluster and a client (which names no cluster) that prove the secret over its nonce', () => {
    const peer = verifyHello(helloOf(), server);
    expect(peer).toMatchObject({ ok: true, nodeId: 'node2', hello: { role: 'peer' } });
    const { cluster: _none, ...client } = helloOf({ role: 'client', nodeId: 'app-1' });
    expect(verifyHello(client, server)).toMatchObject({ ok: true, nodeId: 'app-1', hello: { role: 'client' } });
  });

  it('refuses a MAC made with another secret, over another nonce, for another id, or with the server label (a reflection)', () => {
    const bad = [
      computeMac('another-secret-of-some-length-here', 'client', serverNonce, 'node2'),
      computeMac(SECRET, 'client', randomBytes(NONCE_BYTES), 'node2'),
      computeMac(SECRET, 'client', serverNonce, 'node3'),
      computeMac(SECRET, 'server', serverNonce, 'node2'),
    ];
    for (const mac of bad) expect(verifyHello(helloOf({ mac }), server)).toEqual({ ok: false, message: 'authentication failed', logReason: 'bad MAC from a connection claiming to be node2' });
  });

  it('refuses a peer of another cluster (after its MAC checks out), naming both clusters', () => {
    const v = verifyHello(helloOf({ cluster: 'staging' }), server);
    expect(v).toMatchObject({ ok: false, reason: 'wrong_cluster' });
    expect(!v.ok && v.message).toMatch(/node node1 is in cluster "prod", the connecting node said "staging"/);
  });

  it('refuses malformed hellos without computing anything from them', () => {
    for (const m of [null, 'hello', [], { ...helloOf(), t: 'welcome' }, { ...helloOf(), role: 'admin' }, { ...helloOf(), nodeId: '' }, { ...helloOf(), nodeId: 'x'.repeat(257) }, { ...helloOf(), nonce: randomBytes(31) }, { ...helloOf(), mac: randomBytes(16) }]) {
      expect(verifyHello(m, server)).toEqual({ ok: false, message: 'authentication failed: malformed hello', logReason: 'malformed hello' });
    }
  });
});

describe('handshake: pre-auth framing', () => {
  it('takes exactly one frame and leaves the bytes after it untouched; waits for a partial one', () => {
    const a = encodeFrame({ t: 'challenge' });
    const tail = Buffer.from([1, 2, 3]);
    const r = takeFrame(Buffer.concat([a, tail]), HANDSHAKE_MAX_FRAME_BYTES);
    expect(r?.msg).toEqual({ t: 'challenge' });
    expect(r?.rest.equals(tail)).toBe(true);
    expect(takeFrame(a.subarray(0, a.length - 1), HANDSHAKE_MAX_FRAME_BYTES)).toBeNull();
  });

  it('refuses a frame over the pre-auth limit before buffering it, and bytes that are not msgpack', () => {
    const big = Buffer.alloc(8);
    big.writeUInt32BE(HANDSHAKE_MAX_FRAME_BYTES + 1, 0);
    expect(() => takeFrame(big, HANDSHAKE_MAX_FRAME_BYTES)).toThrow(/exceeds the limit of 1024/);
    const junk = Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from([0xd9, 0x05, 0x61])]); // a str8 of 5 bytes holding 1
    expect(() => takeFrame(junk, HANDSHAKE_MAX_FRAME_BYTES)).toThrow(/not valid msgpack/);
  });
});
