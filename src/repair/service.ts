/**
 * Anti-entropy repair (design §7): compare this node's Merkle trees with each other replica's,
 * descend only into differing subtrees, exchange (key, digest) lists of differing leaves only, then
 * fetch both sides' versions of the keys that differ, merge them with the table's conflict mode, and
 * write the merge to whichever side lacks it.
 *
 * Where the work runs: trees live in the shard actors (built and patched there, see workers/shard.ts);
 * this main-thread service only moves hashes, key lists and the versions of differing keys, and
 * runs the merges for those keys.
 *
 * Node-level trees: every local shard keeps a tree of its own keys of each range this node stores,
 * over the range's leaf boundaries (a key's shard is a function of its token, placement.ts, so a
 * range's keys are spread over all shards). Tree nodes are XORs of their entries, so the node's
 * tree of a range is the XOR of its shards' trees at every level: roots and node hashes are XORed
 * across shards here, and nodes with different shard counts compare equal when they hold equal
 * data. Key listings walk the shards one after the other; fetches and writes go to each key's shard. A peer's questions are answered from its shards through the same
 * mailboxes as client traffic, so repair can never race a write to the same key.
 *
 * Every message and page is bounded (REPAIR_LIMITS); a session walks ranges with bounded
 * concurrency; only one session runs at a time on a node.
 *
 * This file is the session coordinator. The replica side (this node's trees, key listings,
 * fetches and merged writes, and the peer services answering other nodes' sessions) is
 * local-replica.ts; the messages and reports are protocol.ts.
 */
import type { NodeConfig, TableMode } from '../config/config.js';
import type { Cluster } from '../cluster/cluster.js';
import type { Logger } from '../log/logger.js';
import { logEvent } from '../log/events.js';
import { diffTrees, initMerkle, type Hash64 } from '../merkle/index.js';
import { encodePayload } from '../net/frames.js';
import type { RingLayout } from '../ring/builder.js';
import type { RingTable, SelfRange } from '../ring/table.js';
import type { Router } from '../router/router.js';
import { tableIdBytes, type TableRegistry } from '../router/tables.js';
import { REPAIR_LIMITS, type RangeRef } from '../storage/shard-protocol.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError, invariant } from '../util/errors.js';
import { LocalReplica } from './local-replica.js';
import { batchBySize, diffKeyDigests, planKeyRepairs, type KeyDigest, type KeyState, type RepairPolicy } from './plan.js';
import { asObj, NotReady, refOf, sameRef, type GcReport, type NodeLeafCursor, type NodeLeafPage, type RangeInfo, type RepairPeerMessage, type RepairProgress, type RepairReport } from './protocol.js';

export type { GcReport, RangeInfo, RepairPeerMessage, RepairProgress, RepairReport } from './protocol.js';

export interface RepairService {
  /** Where the running session is, and how the last one ended. */
  progress(): RepairProgress;
  /** Run a repair session now (waits for a running one first); `table` limits which keys stream. */
  runSession(opts?: { table?: string | undefined }): Promise<RepairReport>;
  /** Every range this node stores, with its replicas and this node's Merkle root. */
  ranges(): Promise<RangeInfo[]>;
  /** Run the tombstone sweep on every shard now. */
  gc(): Promise<GcReport>;
  stop(): void;
}

export interface RepairDeps {
  cluster: Cluster;
  shards: ShardPool;
  /**
   * Unused for now: repaired versions go to shards by storage key (`repair-write`, batched), which
   * needs neither table names nor a message per key as the replica side's `applyReplicaWrite` would.
   */
  router: Router;
  tables: TableRegistry;
  ring: RingTable;
  config: NodeConfig;
  log: Logger;
  /** A table's own gc grace by storage id (hex), when it sets one (wide-column tables); else config.gcGraceSeconds. */
  gcGraceOf?: (tableId: string) => number | undefined;
}
const PEER_TIMEOUT_MS = 30_000;
/** Differing ranges repaired at once per peer (each is a chain of round trips). */
const RANGE_CONCURRENCY = 4;
/** Leaves whose keys are listed and repaired together: bounds the key lists held in memory. */
const LEAVES_PER_ROUND = 64;
/** Sessions allowed to wait for the running one; more callers are told to retry. */
const MAX_WAITING_SESSIONS = 4;
const MAX_REPORTED_ERRORS = 20;
/** How long a session waits for this node's trees to finish a rebuild before skipping them. */
const LOCAL_READY_WAIT_MS = 30_000;
class RepairServiceImpl implements RepairService {
  private running: Promise<RepairReport> | null = null;
  private readonly prog: RepairProgress = {
    running: false,
    startedAt: null,
    pairsTotal: 0,
    pairsDone: 0,
    sessions: 0,
    failedSessions: 0,
    last: null,
    totals: { keysSent: 0, keysReceived: 0, bytesSent: 0, bytesReceived: 0, rangesDiffered: 0 },
  };
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  private readonly local: LocalReplica;

  constructor(private readonly d: RepairDeps) {
    this.local = new LocalReplica(d);
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** Periodic sessions, jittered ±20% so the nodes of a cluster do not all repair at once. */
  private schedule(): void {
    const every = this.d.config.antiEntropyIntervalMs;
    if (every <= 0 || this.stopped) return;
    const delay = Math.round(every * (0.8 + 0.4 * Math.random()));
    this.timer = setTimeout(() => {
      // A periodic run never queues behind an on-demand one: it simply waits for the next period.
      const run = this.running ? Promise.resolve() : this.runSession({}, 'periodic').then(() => undefined);
      run.catch((e: unknown) => this.d.log.warn({ err: String(e) }, 'periodic repair session failed')).finally(() => this.schedule());
    }, delay);
    this.timer.unref();
  }

  progress(): RepairProgress {
    return { ...this.prog, totals: { ...this.prog.totals } };
  }

  async runSession(opts: { table?: string | undefined } = {}, trigger: 'periodic' | 'on-demand' = 'on-demand'): Promise<RepairReport> {
    while (this.running) {
      if (this.waiting >= MAX_WAITING_SESSIONS) throw new RingkvError('overloaded', 'a repair session is running and others are already waiting; retry later');
      this.waiting++;
      try {
        await this.running.catch(() => undefined);
      } finally {
        this.waiting--;
      }
    }
    const p = this.session(opts.table);
    this.running = p;
    Object.assign(this.prog, { running: true, startedAt: Date.now(), pairsTotal: 0, pairsDone: 0 });
    try {
      const r = await p;
      this.finished(r, trigger);
      return r;
    } catch (e) {
      this.prog.failedSessions++;
      logEvent(this.d.log, 'repair.session', { trigger, table: opts.table ?? null, failed: true, error: e instanceof Error ? e.message : String(e) });
      throw e;
    } finally {
      this.running = null;
      this.prog.running = false;
    }
  }

  private finished(r: RepairReport, trigger: string): void {
    const p = this.prog;
    p.sessions++;
    p.last = r;
    p.totals.keysSent += r.keysSent;
    p.totals.keysReceived += r.keysReceived;
    p.totals.bytesSent += r.bytesSent;
    p.totals.bytesReceived += r.bytesReceived;
    p.totals.rangesDiffered += r.rangesDiffered;
    logEvent(this.d.log, 'repair.session', {
      trigger,
      table: r.table,
      peers: r.peers,
      rangesCompared: r.rangesCompared,
      rangesDiffered: r.rangesDiffered,
      rangesSkipped: r.rangesSkipped,
      keysSent: r.keysSent,
      keysReceived: r.keysReceived,
      bytesSent: r.bytesSent,
      bytesReceived: r.bytesReceived,
      ms: r.durationMs,
      errors: r.errors.length,
    });
  }

  /** Replication factor repair maintains: the largest table N (never more than the ring's replicas). */
  private replicationFactor(layout: RingLayout): number {
    let n = this.d.config.tables.n;
    for (const t of this.d.tables.all()) n = Math.max(n, t.n);
    return Math.max(1, Math.min(n, layout.replicas));
  }

  ranges(): Promise<RangeInfo[]> {
    return this.local.ranges();
  }

  gc(): Promise<GcReport> {
    return this.local.gc();
  }

  // ----------------------------------------------------------------------------------------------
  // Session

  private async session(table: string | undefined): Promise<RepairReport> {
    const t0 = performance.now();
    await initMerkle();
    const def = table === undefined ? undefined : this.d.tables.get(table);
    if (table !== undefined && !def) throw new RingkvError('not_found', `table ${table} does not exist`);
    const report: RepairReport = {
      table: table ?? null,
      peers: [],
      rangesCompared: 0,
      rangesDiffered: 0,
      rangesSkipped: 0,
      hashesCompared: 0,
      keysCompared: 0,
      keysSent: 0,
      keysReceived: 0,
      keysSkipped: 0,
      bytesSent: 0,
      bytesReceived: 0,
      durationMs: 0,
      errors: [],
    };
    const fail = (what: string, e: unknown): void => {
      if (report.errors.length < MAX_REPORTED_ERRORS) report.errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    };

    let roots = await this.local.localRoots();
    const readyBy = Date.now() + LOCAL_READY_WAIT_MS;
    while ([...roots.values()].some((r) => !r.ready) && Date.now() < readyBy) {
      await new Promise((r) => setTimeout(r, 50));
      roots = await this.local.localRoots();
    }
    // Read in one synchronous step so the layout (node ids) and the ring table agree.
    const layout = this.d.cluster.currentLayout();
    const mine = this.d.ring.rangesOfSelf();
    const selfIdx = this.d.ring.selfIndex();
    const rf = this.replicationFactor(layout);
    const work = new Map<string, Array<{ range: SelfRange; selfPos: number; peerPos: number }>>();
    for (const r of mine) {
      const selfPos = r.replicas.indexOf(selfIdx);
      if (selfPos < 0 || selfPos >= rf) continue; // a spare copy past every table's N: not ours to keep in sync
      for (let k = 0; k < Math.min(rf, r.replicas.length); k++) {
        if (k === selfPos) continue;
        const peer = layout.nodeIds[r.replicas[k]!];
        invariant(peer !== undefined, 'ring range names a node outside the layout');
        let l = work.get(peer);
        if (!l) work.set(peer, (l = []));
        l.push({ range: r, selfPos, peerPos: k });
      }
    }

    const prog = this.prog;
    for (const items of work.values()) prog.pairsTotal += items.length;
    for (const [peer, items] of [...work].sort(([a], [b]) => (a < b ? -1 : 1))) {
      const pairsBefore = prog.pairsDone;
      if (!this.d.cluster.isUp(peer)) {
        prog.pairsDone += items.length;
        report.rangesSkipped += items.length;
        fail(peer, new Error('down'));
        continue;
      }
      let theirs: Map<number, { root: Hash64; ready: boolean }>;
      try {
        const res = asObj(await this.call(report, peer, { t: 'repair-roots', digest: layout.digest }), 'repair-roots answer');
        theirs = new Map();
        for (const row of res['ranges'] as unknown[]) {
          const [pos, hi, lo, ready] = row as [number, number, number, number];
          theirs.set(pos, { root: { hi, lo }, ready: ready === 1 });
        }
      } catch (e) {
        prog.pairsDone += items.length;
        report.rangesSkipped += items.length;
        fail(peer, e);
        continue;
      }
      report.peers.push(peer);
      const differing: Array<{ range: SelfRange; selfPos: number; peerPos: number; theirRoot: Hash64 }> = [];
      for (const it of items) {
        const a = roots.get(it.range.pos);
        const b = theirs.get(it.range.pos);
        if (!a || !b || !a.ready || !b.ready || !sameRef(a.ref, refOf(it.range))) {
          report.rangesSkipped++;
          continue;
        }
        report.rangesCompared++;
        report.hashesCompared++;
        if (a.root.hi === b.root.hi && a.root.lo === b.root.lo) continue;
        report.rangesDiffered++;
        differing.push({ ...it, theirRoot: b.root });
      }
      // Equal and skipped pairs are done now; each differing one when its repair ends.
      prog.pairsDone += items.length - differing.length;
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(RANGE_CONCURRENCY, differing.length) }, async () => {
          while (next < differing.length) {
            const it = differing[next++]!;
            try {
              await this.repairRange(report, peer, layout.digest, it, def ? tableIdBytes(def) : null);
            } catch (e) {
              if (e instanceof NotReady) report.rangesSkipped++;
              else fail(`${peer} range #${it.range.pos}`, e);
            }
            prog.pairsDone++;
          }
        }),
      );
      invariant(prog.pairsDone === pairsBefore + items.length, 'repair progress counts every (range, peer) pair once');
    }
    report.durationMs = Math.round(performance.now() - t0);
    return report;
  }

  /** One peer request, counted in the report's byte totals. */
  private async call(report: RepairReport, peer: string, body: RepairPeerMessage): Promise<unknown> {
    report.bytesSent += encodePayload(body).length;
    const reply = await this.d.cluster.request(peer, body, PEER_TIMEOUT_MS);
    report.bytesReceived += encodePayload(reply).length;
    return reply;
  }

  private async repairRange(
    report: RepairReport,
    peer: string,
    digest: string,
    it: { range: SelfRange; selfPos: number; peerPos: number; theirRoot: Hash64 },
    table: Uint8Array | null,
  ): Promise<void> {
    const ref = refOf(it.range);
    const local = await this.local.localTree(ref);
    const { leaves, hashesCompared } = await diffTrees(local, async (level, indexes) => {
      // The roots were just exchanged: no round trip for level 0.
      if (level === 0) return [it.theirRoot];
      const res = asObj(await this.call(report, peer, { t: 'repair-nodes', digest, range: ref, level, indexes }), 'repair-nodes answer');
      if (res['ready'] !== true) throw new NotReady();
      const flat = res['hashes'] as number[];
      const out: Hash64[] = [];
      for (let k = 0; k + 1 < flat.length; k += 2) out.push({ hi: flat[k]!, lo: flat[k + 1]! });
      return out;
    });
    report.hashesCompared += hashesCompared - 1; // the root pair is already counted
    const tableOf = (id: string): { mode: TableMode; n: number } | undefined => {
      const t = this.d.tables.byId(id);
      return t ? { mode: t.conflicts, n: t.n } : undefined;
    };
    const policy: RepairPolicy = {
      modeOf: (id) => tableOf(id)?.mode,
      localMayStore: (id) => it.selfPos < (tableOf(id)?.n ?? Infinity),
      remoteMayStore: (id) => it.peerPos < (tableOf(id)?.n ?? Infinity),
      graceSecondsOf: (id) => this.d.gcGraceOf?.(id) ?? this.d.config.gcGraceSeconds,
      maxSiblings: this.d.config.maxSiblings,
      nowMs: Date.now(),
    };
    for (let i = 0; i < leaves.length; i += LEAVES_PER_ROUND) {
      const group = leaves.slice(i, i + LEAVES_PER_ROUND);
      const [localList, remoteList] = await Promise.all([this.listLocal(ref, group, table), this.listRemote(report, peer, digest, ref, group, table)]);
      const diff = diffKeyDigests(localList, remoteList);
      report.keysCompared += diff.compared;
      const items: Array<{ key: Uint8Array; local: boolean; remote: boolean }> = [
        ...diff.both.map((key) => ({ key, local: true, remote: true })),
        ...diff.onlyLocal.map((key) => ({ key, local: true, remote: false })),
        ...diff.onlyRemote.map((key) => ({ key, local: false, remote: true })),
      ];
      for (let j = 0; j < items.length; j += REPAIR_LIMITS.maxKeysPerOp) {
        await this.repairKeys(report, peer, items.slice(j, j + REPAIR_LIMITS.maxKeysPerOp), policy);
      }
    }
  }

  private async listLocal(range: RangeRef, leaves: number[], table: Uint8Array | null): Promise<KeyDigest[]> {
    const out: KeyDigest[] = [];
    let cursor: NodeLeafCursor | null = null;
    for (;;) {
      const page: NodeLeafPage = await this.local.nodeLeafKeys(range, leaves, table ?? undefined, cursor, REPAIR_LIMITS.maxLeafKeysPage);
      if (!page.ready) throw new NotReady();
      for (const e of page.entries) out.push(e);
      if (page.next === null) return out;
      cursor = page.next;
    }
  }

  private async listRemote(report: RepairReport, peer: string, digest: string, range: RangeRef, leaves: number[], table: Uint8Array | null): Promise<KeyDigest[]> {
    const out: KeyDigest[] = [];
    let cursor: NodeLeafCursor | null = null;
    for (;;) {
      const res = asObj(await this.call(report, peer, { t: 'repair-keys', digest, range, leaves, table, cursor }), 'repair-keys answer');
      if (res['ready'] !== true) throw new NotReady();
      for (const row of res['entries'] as unknown[]) {
        const [key, hi, lo] = row as [Uint8Array, number, number];
        out.push({ key, hi, lo });
      }
      const next = res['next'] as NodeLeafCursor | null;
      if (next === null) return out;
      cursor = next;
    }
  }

  /** Fetch what each side holds for these keys, plan, and write the merges where they are missing. */
  private async repairKeys(report: RepairReport, peer: string, items: ReadonlyArray<{ key: Uint8Array; local: boolean; remote: boolean }>, policy: RepairPolicy): Promise<void> {
    const localKeys = items.filter((x) => x.local).map((x) => x.key);
    const remoteKeys = items.filter((x) => x.remote).map((x) => x.key);
    const [localRecs, remoteRecs] = await Promise.all([this.fetchAllLocal(localKeys), this.fetchAllRemote(report, peer, remoteKeys)]);
    const states: KeyState[] = [];
    let li = 0;
    let ri = 0;
    for (const x of items) {
      states.push({ key: x.key, local: x.local ? (localRecs[li++] ?? null) : null, remote: x.remote ? (remoteRecs[ri++] ?? null) : null });
    }
    const plan = planKeyRepairs(states, policy);
    report.keysSkipped += plan.unknownTable + plan.purgeable;
    for (let i = 0; i < plan.toLocal.length; i += REPAIR_LIMITS.maxKeysPerOp) {
      await this.local.writeLocal(plan.toLocal.slice(i, i + REPAIR_LIMITS.maxKeysPerOp));
    }
    report.keysReceived += plan.toLocal.length;
    const pushes = plan.toRemote.map((a) => ({ key: a.key, mode: a.mode, record: a.record }));
    for (const batch of batchBySize(pushes, (p) => p.record.length + p.key.length, REPAIR_LIMITS.maxKeysPerOp, REPAIR_LIMITS.maxFetchBytes)) {
      await this.call(report, peer, { t: 'repair-push', entries: batch });
      report.keysSent += batch.length;
    }
  }

  private async fetchAllLocal(keys: readonly Uint8Array[]): Promise<Array<Uint8Array | null>> {
    const out: Array<Uint8Array | null> = [];
    while (out.length < keys.length) {
      const recs = await this.local.fetchLocal(keys.slice(out.length));
      let k = 0;
      while (k < recs.length && recs[k] !== undefined) out.push(recs[k++] ?? null);
      invariant(k > 0, 'a local fetch made no progress');
    }
    return out;
  }

  private async fetchAllRemote(report: RepairReport, peer: string, keys: readonly Uint8Array[]): Promise<Array<Uint8Array | null>> {
    const out: Array<Uint8Array | null> = [];
    while (out.length < keys.length) {
      const res = asObj(await this.call(report, peer, { t: 'repair-fetch', keys: keys.slice(out.length) }), 'repair-fetch answer');
      const answered = res['answered'];
      const records = res['records'] as Array<Uint8Array | null>;
      if (typeof answered !== 'number' || answered < 1 || !Array.isArray(records) || records.length !== answered) {
        throw new RingkvError('internal', `peer ${peer} answered repair-fetch without progress`);
      }
      for (const r of records) out.push(r ?? null);
    }
    return out;
  }
}

export function startRepairService(deps: RepairDeps): RepairService {
  // Hashing on this thread (diffing a local tree snapshot) needs the wasm module; sessions await it too.
  void initMerkle().catch((e: unknown) => deps.log.error({ err: String(e) }, 'cannot load the Merkle hash module'));
  return new RepairServiceImpl(deps);
}
