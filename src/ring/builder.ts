/**
 * The pure ring builder: membership in, ring layout out.
 *
 * Every node builds its layout from the gossiped membership, so the result must depend only on the
 * membership *set* (never on the order members arrived in) and nodes compare layouts by `digest`.
 * The layout is flat typed arrays so it can be copied as-is into the shared ring table.
 */
import { compareTokens, assertToken, tokenPosition, xxh64Hex, type Token } from './hash.js';
import { invariant } from '../util/errors.js';

export type MemberStatus = 'joining' | 'normal' | 'leaving' | 'left';

export interface RingMember {
  id: string;
  tokens: Token[];
  rack?: string;
  status: MemberStatus;
}

export interface RingLayout {
  /** node index -> id, sorted by id. Only owning members (status normal or leaving) appear. */
  nodeIds: string[];
  /** Sorted ascending, unique. */
  tokens: Token[];
  /** Node index owning each position. */
  owner: Uint16Array;
  /** Entries per position in pref: min(maxReplicas, number of owning nodes). */
  replicas: number;
  /**
   * tokens.length * replicas: preference list (distinct node indexes) of each position. Which local
   * shard of a replica stores a key is not part of the layout: it is a function of the key's token
   * alone (src/storage/placement.ts), so a ring change never moves data between shards.
   */
  pref: Uint16Array;
  /** xxh64 hex of the canonical encoding; equal membership => equal digest. */
  digest: string;
}

const STATUSES: ReadonlySet<string> = new Set<MemberStatus>(['joining', 'normal', 'leaving', 'left']);
/** Node indexes are stored as uint16. */
const MAX_U16 = 0xffff;

function owns(status: MemberStatus): boolean {
  // A leaving node keeps serving its ranges until it is gone; a joining node gets ranges only once
  // it is normal (streaming to joining nodes is handled outside the layout).
  return status === 'normal' || status === 'leaving';
}

function validateMember(m: RingMember): void {
  if (m === null || typeof m !== 'object') throw new Error('ring member must be an object');
  if (typeof m.id !== 'string' || m.id.length === 0) throw new Error(`ring member id must be a non-empty string, got ${JSON.stringify(m.id)}`);
  if (!STATUSES.has(m.status)) throw new Error(`ring member ${m.id}: unknown status ${JSON.stringify(m.status)}`);
  if (m.rack !== undefined && typeof m.rack !== 'string') throw new Error(`ring member ${m.id}: rack must be a string`);
  if (!Array.isArray(m.tokens)) throw new Error(`ring member ${m.id}: tokens must be an array`);
  for (const t of m.tokens) assertToken(t, `ring member ${m.id} token`);
}

export function buildRing(members: RingMember[], opts: { maxReplicas: number }): RingLayout {
  if (!Number.isInteger(opts.maxReplicas) || opts.maxReplicas < 1) {
    throw new Error(`maxReplicas must be a positive integer, got ${String(opts.maxReplicas)}`);
  }
  const seen = new Set<string>();
  for (const m of members) {
    validateMember(m);
    if (seen.has(m.id)) throw new Error(`ring member ${m.id} appears twice in the membership`);
    seen.add(m.id);
  }

  // Sorting by id first makes everything below independent of the input order.
  const owning = members.filter((m) => owns(m.status)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (owning.length > MAX_U16 + 1) throw new Error(`ring supports at most ${MAX_U16 + 1} owning nodes, got ${owning.length}`);
  const nodeIds = owning.map((m) => m.id);

  // All (token, node) pairs sorted by token, then node index. A token claimed by two members is a
  // (practically impossible with random/allocated tokens) collision: the lower node id keeps it and
  // the other member's copy is dropped, so every node resolves the clash the same way.
  const pairs: { t: Token; n: number }[] = [];
  owning.forEach((m, n) => {
    for (const t of m.tokens) pairs.push({ t, n });
  });
  pairs.sort((a, b) => compareTokens(a.t, b.t) || a.n - b.n);
  const tokens: Token[] = [];
  const ownerList: number[] = [];
  for (const p of pairs) {
    const last = tokens.length - 1;
    if (last >= 0 && compareTokens(tokens[last]!, p.t) === 0) continue;
    tokens.push({ hi: p.t.hi, lo: p.t.lo });
    ownerList.push(p.n);
  }
  const owner = Uint16Array.from(ownerList);

  // Only nodes that actually own a position can be replicas.
  const owningNodes = new Set(ownerList).size;
  const replicas = Math.min(opts.maxReplicas, owningNodes);
  const pref = new Uint16Array(tokens.length * replicas);
  fillPreferenceLists(owning, owner, replicas, pref);

  const layout: RingLayout = {
    nodeIds,
    tokens,
    owner,
    replicas,
    pref,
    digest: xxh64Hex(canonicalEncoding(owning, tokens, owner, replicas)),
  };
  checkLayout(layout);
  return layout;
}

/**
 * Preference list of each position: walk clockwise from the position collecting distinct nodes.
 * With racks (NetworkTopologyStrategy style): a node whose rack is already represented is skipped
 * until every rack is represented (or the walk wrapped), then skipped nodes fill the list in the
 * order they were met, then the walk continues. Members without a rack share the rack "" so a mix
 * of racked and rack-less members still spreads across racks. Without any racks this is the plain
 * "next R distinct nodes" walk.
 */
function fillPreferenceLists(owning: RingMember[], owner: Uint16Array, replicas: number, pref: Uint16Array): void {
  const n = owner.length;
  if (n === 0 || replicas === 0) return;
  const rackIds = new Map<string, number>();
  const rackOf = owning.map((m) => {
    const r = m.rack ?? '';
    let id = rackIds.get(r);
    if (id === undefined) rackIds.set(r, (id = rackIds.size));
    return id;
  });
  // Count racks among nodes that actually own tokens: a rack with no owning node can never be used.
  const owningRacks = new Set(Array.from(owner, (o) => rackOf[o]!)).size;

  // Generation stamps avoid clearing the "seen" arrays for every position.
  const nodeSeen = new Uint32Array(owning.length);
  const rackSeen = new Uint32Array(rackIds.size);
  const skipped: number[] = [];
  for (let i = 0; i < n; i++) {
    const gen = i + 1;
    let picked = 0;
    let racksUsed = 0;
    skipped.length = 0;
    const base = i * replicas;
    for (let step = 0; step < n && picked < replicas; step++) {
      const node = owner[(i + step) % n]!;
      if (nodeSeen[node] === gen) continue;
      nodeSeen[node] = gen;
      const rack = rackOf[node]!;
      if (racksUsed < owningRacks && rackSeen[rack] === gen) {
        skipped.push(node);
        continue;
      }
      if (rackSeen[rack] !== gen) {
        rackSeen[rack] = gen;
        racksUsed++;
      }
      pref[base + picked++] = node;
      if (racksUsed === owningRacks) {
        // Every rack is represented: the skipped nodes come next, in walk order.
        for (let k = 0; k < skipped.length && picked < replicas; k++) pref[base + picked++] = skipped[k]!;
        skipped.length = 0;
      }
    }
    for (let k = 0; k < skipped.length && picked < replicas; k++) pref[base + picked++] = skipped[k]!;
    invariant(picked === replicas, `position ${i}: preference list has ${picked} of ${replicas} nodes`);
  }
}

/**
 * Canonical bytes of everything the layout depends on: version tag, replicas, then per node
 * (id, rack), then per position (token, owner). Format 2: shard counts left the layout. Strings are length-prefixed so no two
 * different memberships encode the same. Status is not included: normal and leaving nodes produce
 * the same layout, and non-owning members do not affect it.
 */
function canonicalEncoding(owning: RingMember[], tokens: Token[], owner: Uint16Array, replicas: number): Uint8Array {
  const enc = new TextEncoder();
  const ids = owning.map((m) => enc.encode(m.id));
  const racks = owning.map((m) => (m.rack === undefined ? null : enc.encode(m.rack)));
  let size = 4 + 4 + 4 + 4;
  for (let k = 0; k < owning.length; k++) size += 4 + ids[k]!.length + 1 + 4 + (racks[k]?.length ?? 0);
  size += tokens.length * 10;
  const buf = new Uint8Array(size);
  const dv = new DataView(buf.buffer);
  let o = 0;
  const u32 = (v: number): void => {
    dv.setUint32(o, v);
    o += 4;
  };
  const bytes = (b: Uint8Array): void => {
    u32(b.length);
    buf.set(b, o);
    o += b.length;
  };
  u32(0x52494e47); // "RING", format version 2 follows
  u32(2);
  u32(replicas);
  u32(owning.length);
  for (let k = 0; k < owning.length; k++) {
    bytes(ids[k]!);
    const r = racks[k];
    dv.setUint8(o++, r === null || r === undefined ? 0 : 1);
    bytes(r ?? new Uint8Array(0));
  }
  for (let i = 0; i < tokens.length; i++) {
    u32(tokens[i]!.hi);
    u32(tokens[i]!.lo);
    dv.setUint16(o, owner[i]!);
    o += 2;
  }
  invariant(o === size, `canonical ring encoding wrote ${o} of ${size} bytes`);
  return buf;
}

/** Cheap structural checks on every built layout (O(tokens * replicas)). */
function checkLayout(l: RingLayout): void {
  const n = l.tokens.length;
  invariant(l.owner.length === n, 'owner length equals token count');
  invariant(l.pref.length === n * l.replicas, 'pref shape is tokens x replicas');
  invariant(n === 0 || l.replicas >= 1, 'a non-empty ring has at least one replica');
  for (let i = 1; i < n; i++) invariant(compareTokens(l.tokens[i - 1]!, l.tokens[i]!) < 0, 'tokens strictly ascending');
  for (let i = 0; i < n; i++) {
    invariant(l.pref[i * l.replicas] === l.owner[i], `position ${i}: first replica is the owner`);
  }
}

/**
 * Position owning token t: the first i with tokens[i] >= t, or 0 when t is past the last token
 * (the range (last, first] wraps around zero). Returns 0 for an empty ring; callers check length.
 */
export function positionOf(layout: RingLayout, t: Token): number {
  return tokenPosition(layout.tokens, t);
}
