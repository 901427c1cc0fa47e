import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { mountHttpAuth } from '../../src/api/http-auth.js';
import { clusterSecret, ConfigError, resolveConfig } from '../../src/config/config.js';
import { DEV_SECRET, generateSecret, isLoopbackHost } from '../../src/config/secret.js';

const dir = mkdtempSync(path.join(tmpdir(), 'rkv-secret-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('cluster secret and protected mode', () => {
  it('takes the secret from --secret, --secret-file, $RINGKV_SECRET, then the config file, in that order', () => {
    const file = path.join(dir, 'secret');
    writeFileSync(file, 'from-the-file-secret\n');
    const cfg = { cluster: { secret: 'from-the-config' } } as never;
    expect(resolveConfig(cfg, { secret: 'from-the-flag', secretFile: file }, { RINGKV_SECRET: 'from-the-env' }).cluster.secret).toBe('from-the-flag');
    expect(resolveConfig(cfg, { secretFile: file }, { RINGKV_SECRET: 'from-the-env' }).cluster.secret).toBe('from-the-file-secret');
    expect(resolveConfig(cfg, {}, { RINGKV_SECRET: 'from-the-env' }).cluster.secret).toBe('from-the-env');
    expect(resolveConfig(cfg, {}, {}).cluster.secret).toBe('from-the-config');
    expect(resolveConfig({ cluster: { secretFile: file } } as never, {}, {}).cluster.secret).toBe('from-the-file-secret');
    expect(() => resolveConfig({ cluster: { secret: 'a-secret-here', secretFile: file } } as never, {}, {})).toThrow(/set one of them/);
    expect(() => resolveConfig(undefined, { secretFile: path.join(dir, 'missing') }, {})).toThrow(/cannot read secret file/);
    expect(() => resolveConfig(undefined, { secret: DEV_SECRET }, {})).toThrow(/public/);
  });

  it('without a secret: loopback only (peer and HTTP), using the development secret; any other address is refused, saying how to set one', () => {
    const c = resolveConfig(undefined, {}, {});
    expect(c.cluster.secret).toBeUndefined();
    expect(clusterSecret(c)).toBe(DEV_SECRET);
    expect(() => resolveConfig(undefined, { peer: '0.0.0.0:7000' }, {})).toThrow(ConfigError);
    expect(() => resolveConfig(undefined, { peer: '0.0.0.0:7000' }, {})).toThrow(/refusing to listen on 0\.0\.0\.0:7000 \(peer port\) without a cluster secret.*ringkv secret.*--secret-file/);
    expect(() => resolveConfig(undefined, { http: '10.1.2.3:7070' }, {})).toThrow(/refusing to listen on 10\.1\.2\.3:7070 \(HTTP API\)/);
    expect(resolveConfig(undefined, { peer: '[::1]:7000', http: 'localhost:7070' }, {}).peer.host).toBe('::1');
    // With a secret any address is fine.
    expect(resolveConfig(undefined, { peer: '0.0.0.0:7000', http: '0.0.0.0:7070' }, { RINGKV_SECRET: generateSecret() }).peer.host).toBe('0.0.0.0');
  });

  it('knows loopback addresses', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) expect(isLoopbackHost(h)).toBe(true);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '127.0.0.256', 'example.com', '128.0.0.1', '::ffff:10.0.0.1']) expect(isLoopbackHost(h)).toBe(false);
    expect(generateSecret()).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('HTTP from other hosts needs the secret as a bearer token; loopback and /healthz do not', async () => {
    const app = Fastify();
    mountHttpAuth(app, 's3cret-s3cret');
    app.setErrorHandler((e, _req, reply) => void reply.code((e as { status?: number }).status ?? 500).send({ error: (e as Error).message }));
    app.get('/healthz', async () => ({ status: 'ok' }));
    app.get('/data', async () => ({ secret: 'data' }));
    const remote = '10.0.0.9';
    expect((await app.inject({ url: '/data', remoteAddress: remote })).statusCode).toBe(401);
    expect((await app.inject({ url: '/data', remoteAddress: remote, headers: { authorization: 'Bearer wrong' } })).statusCode).toBe(401);
    expect((await app.inject({ url: '/data', remoteAddress: remote, headers: { authorization: 'Bearer s3cret-s3cret' } })).statusCode).toBe(200);
    expect((await app.inject({ url: '/healthz', remoteAddress: remote })).statusCode).toBe(200);
    expect((await app.inject({ url: '/data', remoteAddress: '127.0.0.1' })).statusCode).toBe(200);
    await app.close();
  });
});
