import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { MAX_VNODES_PER_NODE } from '../ring/table.js';
import { MAX_SHARDS } from '../storage/placement.js';
import { crdtLimits, DEFAULT_CRDT_LIMITS, type CrdtLimits } from '../crdt/limits.js';
import { DEFAULT_REPLY_LIMITS } from '../net/reply-budget.js';
import { DEFAULT_HANDSHAKE_POOL_LIMITS } from '../cluster/handshake-pool.js';
import { DEV_SECRET, isLoopbackHost, protectedModeMessage, readSecretFile, SECRET_ENV, SecretFileError } from './secret.js';

/** How a key-value table reconciles versions (dotted version vectors, or last write wins). */
export type ConflictMode = 'vclock' | 'lww';
/**
 * How the stored records of a table merge: a key-value table's conflict mode; `crdt` for a table of
 * a convergent data type (one state per key, merged with the type's join, src/crdt; the table
 * definition names the type); or `cell` for a wide-column table (one record per cell, reconciled by
 * Cassandra's per-cell rule, src/wide/cell.ts). Shards, repair, hints and read repair merge any
 * record with src/storage/records.ts by this mode.
 */
export type TableMode = ConflictMode | 'crdt' | 'cell';
export type QuorumMode = 'sloppy' | 'strict';
export type Durability = 'sync' | 'periodic';
export type ReadRepairMode = 'async' | 'blocking' | 'off';

export interface HostPort {
  host: string;
  port: number;
}

export interface TableDefaults {
  /** Tables created on first use: `crdt` needs a type, so only an explicit definition makes one. */
  conflicts: ConflictMode;
  n: number;
  quorum: QuorumMode;
}

export interface NodeConfig {
  /** Fixed node id; normally generated once and kept in the data directory's `meta` family. */
  nodeId: string | undefined;
  dataDir: string;
  http: HostPort;
  peer: HostPort;
  ipc: string;
  shards: number;
  vnodes: number;
  durability: Durability;
  syncIntervalMs: number;
  requestTimeoutMs: number;
  tables: TableDefaults;
  maxSiblings: number;
  maxClockEntries: number;
  readRepair: ReadRepairMode;
  /** Anti-entropy (Merkle repair) period, jittered ±20%; 0 disables the periodic run. */
  antiEntropyIntervalMs: number;
  /** Merkle tree depth: 2^depth leaves per vnode range. */
  merkleDepth: number;
  /** Tombstones older than this are purged by the sweep (Cassandra's gc_grace_seconds). */
  gcGraceSeconds: number;
  tombstoneSweepIntervalMs: number;
  /** Longest a shard spins for the router's next request before parking on its ring (0: never spins). */
  shardSpinMicros: number;
  /** Hints older than this are dropped (anti-entropy covers the rest). */
  maxHintWindowMs: number;
  /** Hint replay throttle (hints per second per target node). */
  hintReplayPerSecond: number;
  /** Range streaming throttle: MiB per second pulled from each source node (a token bucket per source). */
  streamThroughputMiBs: number;
  /** `--replace NODE_ID` (flag only): this new node takes the dead node's tokens and streams their data. */
  replace: string | undefined;
  limits: {
    maxKeyBytes: number;
    maxValueBytes: number;
    maxShardQueue: number;
    /**
     * Deepest nesting of arrays/objects accepted in an HTTP JSON body (deeper: 400), and the deepest
     * stored JSON text HTTP reads parse (deeper reads as a string).
     */
    maxJsonDepth: number;
    /**
     * Reply bytes one client connection (IPC, peer port, HTTP) may have outstanding: reserved for
     * its requests in flight + replies written and not yet drained. Past it, its reading pauses.
     */
    maxReplyBytesPerConnection: number;
    /** The same over all connections of the node. */
    maxReplyBytesTotal: number;
  };
  /** Bounds on convergent data types (`crdt.*`, src/crdt/limits.ts): an operation past one is refused naming it. */
  crdt: CrdtLimits;
  cluster: {
    /** Peers of another cluster name are refused at the handshake (Cassandra's cluster_name). */
    name: string;
    /**
     * Proven by every peer-port connection. None configured: the node uses the public development
     * secret and must listen on loopback only (protected mode; see src/config/secret.ts).
     */
    secret: string | undefined;
    /** A file holding the secret (instead of `secret`). */
    secretFile: string | undefined;
    seeds: string[];
    rack: string;
    dc: string;
    gossipIntervalMs: number;
    phiThreshold: number;
    /** An accepted peer-port connection must authenticate within this, or it is closed. */
    handshakeTimeoutMs: number;
    /** Peer-port connections still in the handshake held at once; a full pool evicts its oldest. */
    maxUnauthenticatedConnections: number;
    /** Of those, from one source address. */
    maxUnauthenticatedPerAddress: number;
    /** Authenticated peer-port connections (peers and remote clients) at once; past it a hello is denied. */
    maxAuthenticatedConnections: number;
  };
  log: { level: string; format: 'json' | 'pretty' | 'auto' };
  /**
   * `enabled: false` turns off request timing on the hot path, the per-second dashboard samples and
   * the process metrics; `/metrics` then answers 404 (for measuring what metrics cost).
   */
  metrics: { enabled: boolean };
  /** Enables fault-injection endpoints. Only settable by the `--test-mode` flag, never from a file. */
  testMode: boolean;
}

/** Highest `limits.maxJsonDepth` a config may set. */
export const MAX_JSON_DEPTH_CEILING = 2000;

export const DEFAULT_CONFIG: NodeConfig = {
  nodeId: undefined,
  dataDir: './data',
  http: { host: '127.0.0.1', port: 7070 },
  peer: { host: '127.0.0.1', port: 7000 },
  ipc: '', // '' = <dataDir>/ringkv.sock
  shards: Math.min(4, availableParallelism()),
  vnodes: 16,
  durability: 'periodic',
  syncIntervalMs: 1000,
  requestTimeoutMs: 5000,
  tables: { conflicts: 'vclock', n: 3, quorum: 'sloppy' },
  maxSiblings: 16,
  maxClockEntries: 16,
  readRepair: 'async',
  antiEntropyIntervalMs: 600_000,
  merkleDepth: 10,
  gcGraceSeconds: 864_000,
  tombstoneSweepIntervalMs: 60_000,
  shardSpinMicros: 0,
  maxHintWindowMs: 3 * 3600 * 1000,
  hintReplayPerSecond: 5000,
  streamThroughputMiBs: 64,
  replace: undefined,
  limits: {
    maxKeyBytes: 64 * 1024,
    maxValueBytes: 1024 * 1024,
    maxShardQueue: 50_000,
    maxJsonDepth: 512,
    maxReplyBytesPerConnection: DEFAULT_REPLY_LIMITS.maxReplyBytesPerConnection,
    maxReplyBytesTotal: DEFAULT_REPLY_LIMITS.maxReplyBytesTotal,
  },
  crdt: { ...DEFAULT_CRDT_LIMITS },
  cluster: {
    name: 'ringkv',
    secret: undefined,
    secretFile: undefined,
    seeds: [],
    rack: 'rack1',
    dc: 'dc1',
    gossipIntervalMs: 1000,
    phiThreshold: 8,
    handshakeTimeoutMs: 2000,
    maxUnauthenticatedConnections: DEFAULT_HANDSHAKE_POOL_LIMITS.maxUnauthenticatedConnections,
    maxUnauthenticatedPerAddress: DEFAULT_HANDSHAKE_POOL_LIMITS.maxUnauthenticatedPerAddress,
    maxAuthenticatedConnections: 1024,
  },
  log: { level: 'info', format: 'auto' },
  metrics: { enabled: true },
  testMode: false,
};

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function parseHostPort(s: string, what: string): HostPort {
  const m = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(s.trim());
  if (!m) throw new ConfigError(`${what}: expected HOST:PORT, got ${JSON.stringify(s)}`);
  const port = Number(m[2]);
  if (port < 0 || port > 65535) throw new ConfigError(`${what}: port out of range in ${JSON.stringify(s)}`);
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

export function formatHostPort(hp: HostPort): string {
  return hp.host.includes(':') ? `[${hp.host}]:${hp.port}` : `${hp.host}:${hp.port}`;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Deep-merge a partial JSON config over defaults, rejecting unknown keys and wrong types by name. */
function mergeInto(target: Record<string, unknown>, src: Record<string, unknown>, where: string): void {
  for (const [k, v] of Object.entries(src)) {
    if (k === 'testMode') throw new ConfigError(`${where}${k}: test mode can only be enabled with the --test-mode flag`);
    if (k === 'replace') throw new ConfigError(`${where}${k}: a replacement is started with the --replace flag, not from a config file`);
    if (!(k in target)) throw new ConfigError(`${where}${k}: unknown config key`);
    const cur = target[k];
    if (isObj(cur) && !Array.isArray(cur)) {
      if (!isObj(v)) throw new ConfigError(`${where}${k}: expected an object`);
      mergeInto(cur, v, `${where}${k}.`);
    } else if (cur !== undefined && cur !== null && typeof cur !== typeof v && !(Array.isArray(cur) && Array.isArray(v))) {
      throw new ConfigError(`${where}${k}: expected ${Array.isArray(cur) ? 'an array' : typeof cur}, got ${JSON.stringify(v)}`);
    } else {
      target[k] = v;
    }
  }
}

export function loadConfigFile(file: string): Partial<NodeConfig> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as Json;
    if (!isObj(parsed)) throw new ConfigError(`config file ${file}: expected a JSON object`);
    return parsed as Partial<NodeConfig>;
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`config file ${file}: invalid JSON: ${(e as Error).message}`);
  }
}

export interface ConfigOverrides {
  dataDir?: string;
  http?: string;
  peer?: string;
  ipc?: string;
  shards?: number;
  nodeId?: string;
  seeds?: string[];
  testMode?: boolean;
  logFormat?: 'json' | 'pretty' | 'auto';
  logLevel?: string;
  secret?: string;
  /** --secret-file: read the secret from this file. */
  secretFile?: string;
  clusterName?: string;
  rack?: string;
  replace?: string;
}

/**
 * defaults ← config file ← command-line flags; then validated as a whole. The secret, first found:
 * --secret, --secret-file, $RINGKV_SECRET (from `env`), cluster.secret, cluster.secretFile.
 */
export function resolveConfig(file: Partial<NodeConfig> | undefined, o: ConfigOverrides, env: Readonly<Record<string, string | undefined>> = {}): NodeConfig {
  const cfg = structuredClone(DEFAULT_CONFIG) as unknown as Record<string, unknown>;
  if (file) mergeInto(cfg, file as Record<string, unknown>, '');
  const c = cfg as unknown as NodeConfig;
  if (o.dataDir !== undefined) c.dataDir = o.dataDir;
  if (o.http !== undefined) c.http = parseHostPort(o.http, '--http');
  if (o.peer !== undefined) c.peer = parseHostPort(o.peer, '--peer');
  if (o.ipc !== undefined) c.ipc = o.ipc;
  if (o.shards !== undefined) c.shards = o.shards;
  if (o.nodeId !== undefined) c.nodeId = o.nodeId;
  if (o.seeds !== undefined) c.cluster.seeds = o.seeds;
  c.cluster.secret = resolveSecret(c.cluster, o, env);
  if (o.clusterName !== undefined) c.cluster.name = o.clusterName;
  if (o.rack !== undefined) c.cluster.rack = o.rack;
  if (o.replace !== undefined) c.replace = o.replace;
  if (o.logFormat !== undefined) c.log.format = o.logFormat;
  if (o.logLevel !== undefined) c.log.level = o.logLevel;
  c.testMode = o.testMode === true;
  c.dataDir = path.resolve(c.dataDir);
  c.ipc = c.ipc ? path.resolve(c.ipc) : path.join(c.dataDir, 'ringkv.sock');
  validateConfig(c);
  return c;
}

function resolveSecret(cluster: NodeConfig['cluster'], o: ConfigOverrides, env: Readonly<Record<string, string | undefined>>): string | undefined {
  if (cluster.secret !== undefined && cluster.secretFile !== undefined) throw new ConfigError('cluster.secret and cluster.secretFile: set one of them, not both');
  try {
    if (o.secret !== undefined) return o.secret;
    if (o.secretFile !== undefined) return readSecretFile(o.secretFile);
    const fromEnv = env[SECRET_ENV];
    if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
    if (cluster.secretFile !== undefined) {
      if (typeof cluster.secretFile !== 'string') throw new ConfigError('cluster.secretFile: expected a file path');
      return readSecretFile(cluster.secretFile);
    }
  } catch (e) {
    if (e instanceof SecretFileError) throw new ConfigError(e.message);
    throw e;
  }
  return cluster.secret;
}

/** The secret a node proves: the configured one, or (protected mode, loopback only) the development secret. */
export function clusterSecret(c: NodeConfig): string {
  return c.cluster.secret ?? DEV_SECRET;
}

function intIn(v: number, lo: number, hi: number, name: string): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new ConfigError(`${name}: expected an integer in [${lo}, ${hi}], got ${v}`);
}

export function validateConfig(c: NodeConfig): void {
  intIn(c.shards, 1, MAX_SHARDS, 'shards');
  intIn(c.vnodes, 1, MAX_VNODES_PER_NODE, 'vnodes');
  intIn(c.syncIntervalMs, 1, 60_000, 'syncIntervalMs');
  intIn(c.requestTimeoutMs, 1, 600_000, 'requestTimeoutMs');
  intIn(c.tables.n, 1, 5, 'tables.n');
  intIn(c.maxSiblings, 1, 1000, 'maxSiblings');
  intIn(c.maxClockEntries, 2, 1000, 'maxClockEntries');
  intIn(c.antiEntropyIntervalMs, 0, 7 * 24 * 3600 * 1000, 'antiEntropyIntervalMs');
  intIn(c.merkleDepth, 1, 16, 'merkleDepth');
  intIn(c.gcGraceSeconds, 0, 10 * 365 * 86400, 'gcGraceSeconds');
  intIn(c.tombstoneSweepIntervalMs, 10, 24 * 3600 * 1000, 'tombstoneSweepIntervalMs');
  intIn(c.shardSpinMicros, 0, 10_000, 'shardSpinMicros');
  intIn(c.maxHintWindowMs, 0, 30 * 86400 * 1000, 'maxHintWindowMs');
  intIn(c.hintReplayPerSecond, 1, 10_000_000, 'hintReplayPerSecond');
  if (typeof c.streamThroughputMiBs !== 'number' || !(c.streamThroughputMiBs >= 0.01 && c.streamThroughputMiBs <= 100_000)) {
    throw new ConfigError(`streamThroughputMiBs: expected a number in [0.01, 100000], got ${JSON.stringify(c.streamThroughputMiBs)}`);
  }
  if (c.replace !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(c.replace)) throw new ConfigError(`--replace: expected a node id [A-Za-z0-9_.-]{1,64}, got ${JSON.stringify(c.replace)}`);
  intIn(c.limits.maxKeyBytes, 1, 1024 * 1024, 'limits.maxKeyBytes');
  intIn(c.limits.maxValueBytes, 1, 64 * 1024 * 1024, 'limits.maxValueBytes');
  intIn(c.limits.maxShardQueue, 1, 10_000_000, 'limits.maxShardQueue');
  // The ceiling keeps JSON.stringify (recursive in V8) far from the stack limit (~7,000 levels).
  intIn(c.limits.maxJsonDepth, 1, MAX_JSON_DEPTH_CEILING, 'limits.maxJsonDepth');
  intIn(c.limits.maxReplyBytesPerConnection, 64 * 1024, 2 ** 40, 'limits.maxReplyBytesPerConnection');
  intIn(c.limits.maxReplyBytesTotal, c.limits.maxReplyBytesPerConnection, 2 ** 42, 'limits.maxReplyBytesTotal');
  intIn(c.cluster.handshakeTimeoutMs, 10, 60_000, 'cluster.handshakeTimeoutMs');
  intIn(c.cluster.maxUnauthenticatedConnections, 1, 100_000, 'cluster.maxUnauthenticatedConnections');
  intIn(c.cluster.maxUnauthenticatedPerAddress, 1, c.cluster.maxUnauthenticatedConnections, 'cluster.maxUnauthenticatedPerAddress');
  intIn(c.cluster.maxAuthenticatedConnections, 1, 1_000_000, 'cluster.maxAuthenticatedConnections');
  try {
    c.crdt = crdtLimits(c.crdt);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  if (c.durability !== 'sync' && c.durability !== 'periodic') throw new ConfigError(`durability: expected "sync" or "periodic", got ${JSON.stringify(c.durability)}`);
  if (c.tables.conflicts !== 'vclock' && c.tables.conflicts !== 'lww') throw new ConfigError(`tables.conflicts: expected "vclock" or "lww" (a crdt table needs a type: define it with PUT /api/v1/tables/{t})`);
  if (c.tables.quorum !== 'sloppy' && c.tables.quorum !== 'strict') throw new ConfigError(`tables.quorum: expected "sloppy" or "strict"`);
  if (!['async', 'blocking', 'off'].includes(c.readRepair)) throw new ConfigError(`readRepair: expected "async", "blocking" or "off"`);
  if (c.nodeId !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(c.nodeId)) throw new ConfigError(`node id: expected [A-Za-z0-9_.-]{1,64}, got ${JSON.stringify(c.nodeId)}`);
  for (const s of c.cluster.seeds) parseHostPort(s, 'seed');
  if (typeof c.cluster.name !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(c.cluster.name)) throw new ConfigError(`cluster.name: expected [A-Za-z0-9_.-]{1,64}, got ${JSON.stringify(c.cluster.name)}`);
  if (c.cluster.secret !== undefined) {
    if (typeof c.cluster.secret !== 'string' || c.cluster.secret.length < 8) throw new ConfigError('cluster.secret: expected a string of at least 8 characters');
    if (c.cluster.secret === DEV_SECRET) throw new ConfigError('cluster.secret: the development secret is public; generate one with `ringkv secret`');
  } else {
    // Protected mode: no secret, so nothing but this machine may reach the node.
    if (!isLoopbackHost(c.peer.host)) throw new ConfigError(protectedModeMessage('peer port', formatHostPort(c.peer)));
    if (!isLoopbackHost(c.http.host)) throw new ConfigError(protectedModeMessage('HTTP API', formatHostPort(c.http)));
  }
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/** Is `seed` this node's own peer address? (Loopback spellings name the same host.) */
export function isOwnAddress(seed: string, self: HostPort): boolean {
  let hp: HostPort;
  try {
    hp = parseHostPort(seed, 'seed');
  } catch {
    return false;
  }
  if (hp.port !== self.port) return false;
  const a = hp.host.toLowerCase();
  const b = self.host.toLowerCase();
  return a === b || (LOOPBACK.has(a) && LOOPBACK.has(b));
}
