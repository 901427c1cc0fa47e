/**
 * Cluster membership view exchanged by gossip, with Cassandra's three-message
 * round (GossipDigestSyn / Ack / Ack2).
 *
 * Every node owns exactly one EndpointState — its own — and is the only one
 * that ever mints new versions of it. A state is versioned by
 * (generation, version): `generation` changes when the process restarts (e.g.
 * boot time in seconds, persisted so it only grows), `version` is a counter
 * within a generation bumped on every heartbeat or info change. Comparing the
 * pair lexicographically therefore orders all states ever produced for a node,
 * and merging two views is a per-node "take the max": a join-semilattice, so
 * gossip converges regardless of message order, duplication or loss.
 *
 * Unlike Cassandra there is one version per endpoint rather than one per
 * application-state key, and states are shipped whole instead of as deltas:
 * NodeInfo is small (≈ a few hundred bytes plus tokens) and this keeps the
 * merge trivially a lattice.
 *
 * Pure state machine: no clock, timers or IO. The caller picks gossip
 * partners, moves messages and decides what to do with the changed ids.
 */

import { MAX_VNODES_PER_NODE } from '../ring/table.js';

export type MemberStatus = 'joining' | 'normal' | 'leaving' | 'left';

export const MEMBER_STATUSES: readonly MemberStatus[] = Object.freeze([
  'joining',
  'normal',
  'leaving',
  'left',
]);

/**
 * What a node advertises about itself. Closed type: unknown top-level fields
 * are rejected by validation. Forward-compatible additions go in `extra`,
 * which every version carries opaquely — silently stripping unknown fields
 * instead would be worse: a node would re-gossip a truncated copy under the
 * *same* version, and peers that received it first would never get the full
 * one (equal versions are never re-sent).
 *
 * States held by GossipState are deep-frozen; treat them as immutable.
 */
export interface NodeInfo {
  /** Gossip/internode address, `host:port` (IPv6 as `[addr]:port`). */
  peer: string;
  /** Client-facing HTTP endpoint. */
  http: string;
  /** Optional local IPC endpoint (same-host fast path). */
  ipc?: string;
  rack: string;
  dc: string;
  /** Ring tokens owned by the node, each 16 lowercase hex chars (64-bit). */
  tokens: string[];
  /** Number of storage shards (worker threads) on the node. */
  shards: number;
  status: MemberStatus;
  /** Bytes of data stored. */
  load: number;
  /** Hints pending delivery held by this node. */
  hints?: number;
  extra?: Record<string, string | number>;
  /** JSON of the table schemas this node knows (small, but larger than an `extra` string may be). */
  schema?: string;
}

export interface EndpointState {
  id: string;
  generation: number;
  version: number;
  info: NodeInfo;
}

export interface Digest {
  id: string;
  generation: number;
  version: number;
}

export interface Syn {
  from: string;
  digests: Digest[];
}

/**
 * `states`: states the SYN sender lacks or holds older versions of.
 * `requests`: ids whose SYN digest was newer than ours, carrying OUR
 * (generation, version) — (0, 0) if we know nothing — so the SYN sender only
 * ships what is actually newer.
 */
export interface Ack {
  from: string;
  states: EndpointState[];
  requests: Digest[];
}

export interface Ack2 {
  from: string;
  states: EndpointState[];
}

/** Thrown for malformed gossip input; the caller should drop that peer's message/connection. */
export class GossipValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GossipValidationError';
  }
}

// Bounds exist so a buggy or hostile peer cannot make us hold (and re-gossip
// to everyone) unbounded data.
const MAX_STRING = 512;
const MAX_SCHEMA = 256 * 1024;
/** Tokens per node: the bound config `vnodes` has (a node never announces more). */
const MAX_TOKENS = MAX_VNODES_PER_NODE;
const MAX_EXTRA_KEYS = 64;
const MAX_BATCH = 100_000;
const TOKEN_RE = /^[0-9a-f]{16}$/;
const PEER_RE = /^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):(\d{1,5})$/;
const EXTRA_KEY_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
const NODE_INFO_KEYS = new Set([
  'peer',
  'http',
  'ipc',
  'rack',
  'dc',
  'tokens',
  'shards',
  'status',
  'load',
  'hints',
  'extra',
  'schema',
]);

function fail(path: string, what: string): never {
  throw new GossipValidationError(`${path}: ${what}`);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return false;
  const proto: unknown = Object.getPrototypeOf(x);
  return proto === Object.prototype || proto === null;
}

function str(x: unknown, path: string, allowEmpty = false): string {
  if (typeof x !== 'string') fail(path, `expected string, got ${typeof x}`);
  if (!allowEmpty && x.length === 0) fail(path, 'must not be empty');
  if (x.length > MAX_STRING) fail(path, `longer than ${MAX_STRING}`);
  return x;
}

function int(x: unknown, path: string, min: number): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x)) fail(path, `expected safe integer, got ${String(x)}`);
  if (x < min) fail(path, `must be >= ${min}, got ${x}`);
  return x;
}

function validateNodeInfo(x: unknown, path: string): NodeInfo {
  if (!isPlainObject(x)) fail(path, 'expected object');
  for (const k of Object.keys(x)) {
    if (!NODE_INFO_KEYS.has(k)) fail(path, `unknown field '${k}' (put extensions in 'extra')`);
  }
  const peer = str(x.peer, `${path}.peer`);
  const m = PEER_RE.exec(peer);
  if (m === null || Number(m[1]) < 1 || Number(m[1]) > 65535) fail(`${path}.peer`, `not host:port: '${peer}'`);
  const http = str(x.http, `${path}.http`);
  const rack = str(x.rack, `${path}.rack`);
  const dc = str(x.dc, `${path}.dc`);

  if (!Array.isArray(x.tokens)) fail(`${path}.tokens`, 'expected array');
  const rawTokens: unknown[] = x.tokens;
  if (rawTokens.length > MAX_TOKENS) fail(`${path}.tokens`, `more than ${MAX_TOKENS}`);
  const seen = new Set<string>();
  const tokens: string[] = [];
  for (let i = 0; i < rawTokens.length; i++) {
    const t = rawTokens[i];
    if (typeof t !== 'string' || !TOKEN_RE.test(t)) fail(`${path}.tokens[${i}]`, 'expected 16 lowercase hex chars');
    if (seen.has(t)) fail(`${path}.tokens[${i}]`, `duplicate token ${t}`);
    seen.add(t);
    tokens.push(t);
  }

  const shards = int(x.shards, `${path}.shards`, 1);
  const status = x.status;
  if (typeof status !== 'string' || !(MEMBER_STATUSES as readonly string[]).includes(status)) {
    fail(`${path}.status`, `expected one of ${MEMBER_STATUSES.join('|')}`);
  }
  const load = int(x.load, `${path}.load`, 0);

  const info: NodeInfo = { peer, http, rack, dc, tokens, shards, status: status as MemberStatus, load };
  if (x.ipc !== undefined) info.ipc = str(x.ipc, `${path}.ipc`);
  if (x.hints !== undefined) info.hints = int(x.hints, `${path}.hints`, 0);
  if (x.schema !== undefined) {
    if (typeof x.schema !== 'string') fail(`${path}.schema`, 'expected string');
    if (x.schema.length > MAX_SCHEMA) fail(`${path}.schema`, `longer than ${MAX_SCHEMA}`);
    info.schema = x.schema;
  }
  if (x.extra !== undefined) {
    if (!isPlainObject(x.extra)) fail(`${path}.extra`, 'expected object');
    const keys = Object.keys(x.extra);
    if (keys.length > MAX_EXTRA_KEYS) fail(`${path}.extra`, `more than ${MAX_EXTRA_KEYS} keys`);
    const extra: Record<string, string | number> = {};
    for (const k of keys) {
      // '__proto__' passes the charset check but would set the prototype on
      // assignment instead of creating a key.
      if (!EXTRA_KEY_RE.test(k) || k === '__proto__') fail(`${path}.extra`, `bad key '${k}'`);
      const v = x.extra[k];
      if (typeof v === 'string') extra[k] = str(v, `${path}.extra.${k}`, true);
      else if (typeof v === 'number' && Number.isFinite(v)) extra[k] = v;
      else fail(`${path}.extra.${k}`, 'expected string or finite number');
    }
    info.extra = extra;
  }
  return info;
}

function freezeState(s: EndpointState): EndpointState {
  Object.freeze(s.info.tokens);
  if (s.info.extra !== undefined) Object.freeze(s.info.extra);
  Object.freeze(s.info);
  return Object.freeze(s);
}

/**
 * Validate an EndpointState from an untrusted source and return a fresh,
 * deep-frozen, normalised copy (only known fields, no shared references).
 * `generation` must be >= 1 so that (0, 0) can mean "nothing known" in ACK
 * requests.
 */
export function validateEndpointState(x: unknown, path = 'state'): EndpointState {
  if (!isPlainObject(x)) fail(path, 'expected object');
  const id = str(x.id, `${path}.id`);
  const generation = int(x.generation, `${path}.generation`, 1);
  const version = int(x.version, `${path}.version`, 0);
  const info = validateNodeInfo(x.info, `${path}.info`);
  return freezeState({ id, generation, version, info });
}

/** Validate a Digest; (0, 0) is allowed and means "I have no state for this id". */
export function validateDigest(x: unknown, path = 'digest'): Digest {
  if (!isPlainObject(x)) fail(path, 'expected object');
  const id = str(x.id, `${path}.id`);
  const generation = int(x.generation, `${path}.generation`, 0);
  const version = int(x.version, `${path}.version`, 0);
  if (generation === 0 && version !== 0) fail(path, 'generation 0 is only valid as the (0, 0) "unknown" digest');
  return { id, generation, version };
}

function arr(x: unknown, path: string): unknown[] {
  if (!Array.isArray(x)) fail(path, 'expected array');
  if (x.length > MAX_BATCH) fail(path, `more than ${MAX_BATCH} entries`);
  return x;
}

function digestsOf(x: unknown, path: string): Digest[] {
  const out = arr(x, path).map((d, i) => validateDigest(d, `${path}[${i}]`));
  const ids = new Set<string>();
  for (const d of out) {
    // Duplicates make "which one did you mean" ambiguous; only a broken peer sends them.
    if (ids.has(d.id)) fail(path, `duplicate id '${d.id}'`);
    ids.add(d.id);
  }
  return out;
}

function statesOf(x: unknown, path: string): EndpointState[] {
  return arr(x, path).map((s, i) => validateEndpointState(s, `${path}[${i}]`));
}

/**
 * Order two versions of the SAME endpoint: (generation, version)
 * lexicographically. Returns -1, 0 or 1. Throws if the ids differ: comparing
 * versions of different endpoints is meaningless and indicates a bug.
 */
export function compareVersions(a: Digest, b: Digest): number {
  if (a.id !== b.id) throw new Error(`compareVersions: different endpoints '${a.id}' vs '${b.id}'`);
  if (a.generation !== b.generation) return a.generation < b.generation ? -1 : 1;
  if (a.version !== b.version) return a.version < b.version ? -1 : 1;
  return 0;
}

function cmpStr(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpNum(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function cmpOpt<T>(a: T | undefined, b: T | undefined, cmp: (x: T, y: T) => number): number {
  if (a === undefined) return b === undefined ? 0 : -1;
  if (b === undefined) return 1;
  return cmp(a, b);
}

function cmpExtraValue(a: string | number, b: string | number): number {
  if (typeof a !== typeof b) return typeof a === 'number' ? -1 : 1;
  return typeof a === 'number' ? cmpNum(a, b as number) : cmpStr(a, b as string);
}

/**
 * Arbitrary but total and deterministic order on NodeInfo, used only to break
 * ties between two *different* infos carrying the same (generation, version).
 * That cannot happen while owners never reuse a version, but if it does (e.g.
 * a node restarted within the same generation) every replica must still pick
 * the same winner, or merge would stop being commutative.
 */
function compareInfo(a: NodeInfo, b: NodeInfo): number {
  if (a === b) return 0;
  let c =
    cmpStr(a.peer, b.peer) ||
    cmpStr(a.http, b.http) ||
    cmpOpt(a.ipc, b.ipc, cmpStr) ||
    cmpStr(a.rack, b.rack) ||
    cmpStr(a.dc, b.dc) ||
    cmpNum(a.shards, b.shards) ||
    cmpStr(a.status, b.status) ||
    cmpNum(a.load, b.load) ||
    cmpOpt(a.hints, b.hints, cmpNum) ||
    cmpOpt(a.schema, b.schema, cmpStr) ||
    cmpNum(a.tokens.length, b.tokens.length);
  if (c !== 0) return c;
  for (let i = 0; i < a.tokens.length; i++) {
    c = cmpStr(a.tokens[i]!, b.tokens[i]!);
    if (c !== 0) return c;
  }
  return cmpOpt(a.extra, b.extra, (x, y) => {
    const kx = Object.keys(x).sort();
    const ky = Object.keys(y).sort();
    let d = cmpNum(kx.length, ky.length);
    for (let i = 0; d === 0 && i < kx.length; i++) {
      d = cmpStr(kx[i]!, ky[i]!) || cmpExtraValue(x[kx[i]!]!, y[ky[i]!]!);
    }
    return d;
  });
}

/** Join of two states for the same endpoint: the newer wins; ties broken by content. */
function joinStates(a: EndpointState, b: EndpointState): EndpointState {
  const c = compareVersions(a, b);
  if (c !== 0) return c > 0 ? a : b;
  return compareInfo(a.info, b.info) >= 0 ? a : b;
}

function assertKeyed(m: ReadonlyMap<string, EndpointState>, name: string): void {
  for (const [k, v] of m) {
    if (k !== v.id) throw new Error(`mergeViews: ${name} maps key '${k}' to state of '${v.id}'`);
  }
}

/**
 * Pure per-endpoint join of two views: for each id the state with the greater
 * (generation, version) wins (content tie-break for equal versions, see
 * compareInfo). Commutative, associative and idempotent up to entry order.
 * The winning state objects are reused, not copied. GossipState.apply uses the
 * same join, except that it never lets a remote state replace its own.
 */
export function mergeViews(
  a: ReadonlyMap<string, EndpointState>,
  b: ReadonlyMap<string, EndpointState>,
): Map<string, EndpointState> {
  assertKeyed(a, 'a');
  assertKeyed(b, 'b');
  const out = new Map(a);
  for (const [id, sb] of b) {
    const sa = out.get(id);
    out.set(id, sa === undefined ? sb : joinStates(sa, sb));
  }
  return out;
}

function digestOf(s: EndpointState): Digest {
  return { id: s.id, generation: s.generation, version: s.version };
}

function byId(a: { id: string }, b: { id: string }): number {
  return cmpStr(a.id, b.id);
}

/**
 * How far a state minted for another (dead) node jumps ahead of its last version: 2^20 heartbeats
 * is 12 days of gossip rounds at 1 s, far more than a dead node's peers can have seen beyond us.
 */
export const FOREIGN_VERSION_STEP = 1 << 20;

export class GossipState {
  readonly selfId: string;
  private readonly view = new Map<string, EndpointState>();

  constructor(self: EndpointState) {
    const s = validateEndpointState(self, 'self');
    this.selfId = s.id;
    this.view.set(s.id, s);
  }

  self(): EndpointState {
    const s = this.view.get(this.selfId);
    if (s === undefined) throw new Error('GossipState: invariant violated: own state missing');
    return s;
  }

  get(id: string): EndpointState | undefined {
    return this.view.get(id);
  }

  /** Every known endpoint (including self), sorted by id. */
  all(): EndpointState[] {
    return [...this.view.values()].sort(byId);
  }

  /** Heartbeat: bump own version so peers see we are alive. Call once per gossip round. */
  beat(): void {
    const s = this.self();
    this.setSelf(s.generation, s.version + 1, s.info);
  }

  /**
   * Change own advertised info and bump the version. Keys set to `undefined`
   * in the patch remove optional fields. Throws GossipValidationError (and
   * changes nothing) if the result is invalid.
   */
  updateSelf(patch: Partial<NodeInfo>): void {
    const s = this.self();
    const merged: Record<string, unknown> = { ...s.info };
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) delete merged[k];
      else merged[k] = v;
    }
    const info = validateNodeInfo(merged, 'updateSelf');
    this.setSelf(s.generation, s.version + 1, info);
  }

  /**
   * Publish a new version of ANOTHER node's state, patched. The one exception to "only a node mints
   * its own versions", as in Cassandra's removenode (Gossiper.advertiseRemoving /
   * advertiseTokenRemoved): the node being removed is dead and cannot announce that it leaves, so
   * the node running the removal does it for it. The version jumps by FOREIGN_VERSION_STEP so the
   * minted state beats every heartbeat the dead node ever sent in this generation; a restart of
   * that node (a higher generation) still beats it, which is why a removed node checks how its
   * peers see it before it gossips (src/streaming/manager.ts). Throws (changing nothing) when the
   * id is our own or unknown, or the result is invalid.
   */
  mintForeign(id: string, patch: Partial<NodeInfo>): EndpointState {
    if (id === this.selfId) throw new Error('GossipState.mintForeign: a node mints its own state with updateSelf');
    const cur = this.view.get(id);
    if (cur === undefined) throw new GossipValidationError(`mintForeign: node ${id} is not known`);
    const merged: Record<string, unknown> = { ...cur.info };
    for (const [k, v] of Object.entries(patch)) {
      if (v === undefined) delete merged[k];
      else merged[k] = v;
    }
    const info = validateNodeInfo(merged, 'mintForeign');
    const version = cur.version + FOREIGN_VERSION_STEP;
    if (!Number.isSafeInteger(version)) throw new RangeError(`GossipState: version overflow minting for ${id}`);
    const next = freezeState({ id, generation: cur.generation, version, info });
    this.view.set(id, next);
    return next;
  }

  makeSyn(): Syn {
    return { from: this.selfId, digests: this.all().map(digestOf) };
  }

  /**
   * Answer a SYN: ship every state newer than (or absent from) the sender's
   * digests — including endpoints the sender did not mention at all, so a
   * single round makes both views identical — and request the ones where the
   * sender is ahead. Does not change our view, except to refute a claim that
   * someone holds a newer version of *us*.
   */
  onSyn(syn: Syn): Ack {
    const { digests } = validateSyn(syn);
    const states: EndpointState[] = [];
    const requests: Digest[] = [];
    const mentioned = new Set<string>();
    for (const d of digests) {
      mentioned.add(d.id);
      if (d.id === this.selfId) this.refute(d);
      const local = this.view.get(d.id);
      if (local === undefined) {
        requests.push({ id: d.id, generation: 0, version: 0 });
        continue;
      }
      const c = compareVersions(local, d);
      if (c > 0) states.push(local);
      else if (c < 0) requests.push(digestOf(local));
    }
    for (const [id, st] of this.view) if (!mentioned.has(id)) states.push(st);
    states.sort(byId);
    requests.sort(byId);
    return { from: this.selfId, states, requests };
  }

  /**
   * Apply the ACK's states, then answer its requests with whatever we hold
   * that is newer than the requester's digest (answering after applying means
   * we ship our best knowledge).
   */
  onAck(ack: Ack): { ack2: Ack2; changed: string[] } {
    if (!isPlainObject(ack)) fail('ack', 'expected object');
    str(ack.from, 'ack.from');
    const requests = digestsOf(ack.requests, 'ack.requests');
    const changed = this.apply(ack.states);
    const states: EndpointState[] = [];
    for (const r of requests) {
      const local = this.view.get(r.id);
      if (local !== undefined && compareVersions(local, r) > 0) states.push(local);
    }
    states.sort(byId);
    return { ack2: { from: this.selfId, states }, changed };
  }

  onAck2(ack2: Ack2): string[] {
    if (!isPlainObject(ack2)) fail('ack2', 'expected object');
    str(ack2.from, 'ack2.from');
    return this.apply(ack2.states);
  }

  /**
   * Merge states into the view (same join as mergeViews). Atomic: every state
   * is validated before anything changes, so a malformed batch throws
   * GossipValidationError and leaves the view untouched.
   *
   * States about ourselves are never adopted — only we mint our versions. If
   * one is newer than ours (the peer saw a previous incarnation with a higher
   * generation, or we restarted without persisting our counter) we refute it
   * by moving our own version past it: a higher generation becomes
   * generation + 1 (peers will then treat us like a restarted node), a higher
   * version in our generation becomes version + 1. Either way our real state
   * then wins everywhere. Refutation is not reported in the returned ids.
   *
   * Returns the sorted ids of remote endpoints whose stored state changed.
   */
  apply(states: readonly EndpointState[]): string[] {
    const incoming = statesOf(states, 'states');
    const changed = new Set<string>();
    for (const s of incoming) {
      if (s.id === this.selfId) {
        this.refute(s);
        continue;
      }
      const cur = this.view.get(s.id);
      const next = cur === undefined ? s : joinStates(cur, s);
      if (next !== cur) {
        this.view.set(s.id, next);
        changed.add(s.id);
      }
    }
    return [...changed].sort();
  }

  private refute(claim: Digest): void {
    const s = this.self();
    if (compareVersions(claim, s) <= 0) return;
    if (claim.generation > s.generation) this.setSelf(claim.generation + 1, s.version + 1, s.info);
    else this.setSelf(s.generation, claim.version + 1, s.info);
    if (compareVersions(this.self(), claim) <= 0) throw new Error('GossipState: refutation failed to supersede claim');
  }

  private setSelf(generation: number, version: number, info: NodeInfo): void {
    if (!Number.isSafeInteger(generation) || !Number.isSafeInteger(version)) {
      throw new RangeError(`GossipState: own version overflow (${generation}, ${version})`);
    }
    const prev = this.self();
    const next = freezeState({ id: this.selfId, generation, version, info });
    // Own versions only ever move forward; that is what makes the merge a lattice.
    if (compareVersions(next, prev) <= 0) throw new Error('GossipState: own version must increase');
    this.view.set(this.selfId, next);
  }
}

function validateSyn(x: unknown): Syn {
  if (!isPlainObject(x)) fail('syn', 'expected object');
  const from = str(x.from, 'syn.from');
  return { from, digests: digestsOf(x.digests, 'syn.digests') };
}
