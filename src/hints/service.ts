import type { NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { logEvent } from '../log/events.js';
import type { PeerServices } from '../cluster/peer-services.js';
import type { RemoteReplicas, ReplicaWrite } from '../router/replica-protocol.js';
import { tableIdOf } from '../router/tables.js';
import { RingkvError } from '../util/errors.js';
import type { CellHint, CrdtHint, Hint, KvHint, StoredHint } from './protocol.js';
import { wideWriteMessage } from '../router/wide-protocol.js';
import { isExpired, ReplayThrottle, replayRate, replayWindow, settledPrefix } from './policy.js';
import type { HintStore } from './store.js';

/** Replay state of the hints this node holds for one target node (issue 4: "replay progress"). */
export interface ReplayProgress {
  /** Hints stored here for the target now. */
  pending: number;
  /** Whether the target is up as this node's failure detector sees it. */
  targetUp: boolean;
  /** A replay pass is running now. */
  replaying: boolean;
  /** Hints delivered (and deleted) in the current pass, or in the last one when none runs. */
  sent: number;
  /** Deliveries that failed in that pass (the pass stops at the first failed window). */
  failed: number;
  /** Hints of that pass dropped because they were older than maxHintWindowMs. */
  expired: number;
  /** Wall-clock ms the pass started, or null if none ever ran. */
  startedAt: number | null;
  /** Wall-clock ms the pass ended; null while it runs (or if none ever ran). */
  finishedAt: number | null;
  /** Hints/s over the pass so far (or over the whole last pass). */
  perSecond: number;
  /** Why the last pass stopped early, if it did. */
  lastError: string | null;
}

export interface HintStats {
  stored: number;
  refused: number;
  replayed: number;
  replayFailures: number;
  /** Hints dropped because their target no longer replicates the key (after a range movement). */
  obsolete: number;
  expired: number;
  /** Hints held on this node, per target node. */
  pending: Record<string, number>;
  /** Rate of the last completed replay pass (hints/s), per target. */
  lastReplay: Record<string, { hints: number; ms: number; perSecond: number }>;
  /** Replay progress per target that has hints here or had a pass recently. */
  replay: Record<string, ReplayProgress>;
}

/**
 * What the hint service needs of the cluster (the Cluster implements it): its own peer messages,
 * the replica writes a replay sends, and the membership facts that decide when to replay.
 */
export interface HintPeers extends PeerServices, Pick<RemoteReplicas, 'writeRecord'> {
  readonly selfId: string;
  /** Whether the failure detector sees the node up. */
  isUp(nodeId: string): boolean;
  /** The ring this node routes by (its digest is compared with the target's before a replay). */
  currentLayout(): { digest: string };
  /** A member's status as gossip knows it (undefined: unknown); hints for a node that `left` are dropped. */
  memberStatus(nodeId: string): string | undefined;
  /** A key-value replica write (the versions as objects): the replay of a key-value hint. */
  write(nodeId: string, op: ReplicaWrite, timeoutMs: number): Promise<unknown>;
}

const REPLAY_PAGE = 500;
/** Hints read per expiry op: one op holds the hints actor for about a millisecond. */
const EXPIRE_BUDGET = 2000;
/** Finished passes kept for the snapshot (targets are cluster nodes, but stay bounded anyway). */
const MAX_PROGRESS_ENTRIES = 256;

interface Pass {
  replaying: boolean;
  sent: number;
  failed: number;
  expired: number;
  startedAt: number;
  finishedAt: number | null;
  lastError: string | null;
}

/**
 * Hinted handoff: stores hints (locally or on a fallback node) and replays them to their owner when
 * the failure detector sees it up again — in seq order, throttled, deleted once acknowledged,
 * dropped after `maxHintWindowMs`.
 *
 * Replay order rule: one pass at a time per target. A pass reads the target's hints from its first
 * (lowest seq) on and sends them in windows: within a window the writes are issued in seq order and
 * run concurrently; after the window settles only its leading run of delivered (or expired) hints is
 * deleted (`settledPrefix`), and a failure ends the pass. So a hint is never deleted while an
 * earlier hint of the same target is still stored; a later hint that was delivered after an earlier
 * one failed is simply sent again next pass.
 */
export class HintService {
  private readonly passes = new Map<string, Pass>();
  /** Hints delivered per target since start (metrics); at most MAX_PROGRESS_ENTRIES targets. */
  private readonly replayedTo = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private expiring = false;
  private stopped = false;
  private readonly window: number;
  /** Targets whose hints are being dropped (they left the ring). */
  private readonly dropping = new Set<string>();
  readonly stats: Omit<HintStats, 'pending' | 'replay'> = { stored: 0, refused: 0, replayed: 0, replayFailures: 0, expired: 0, obsolete: 0, lastReplay: {} };
  onCountsChanged: ((total: number) => void) | undefined;

  constructor(private readonly o: { peers: HintPeers; store: HintStore; config: NodeConfig; log: Logger }) {
    this.window = replayWindow(o.config.hintReplayPerSecond);
    o.store.onCounts = () => this.publish();
    o.peers.registerService('hint-store', async (body) => {
      // Key-value and CRDT hints may be stored on another node (a wide-column hint stays with its coordinator).
      const hint = body['hint'] as KvHint | CrdtHint | undefined;
      const valid = hint && typeof hint.target === 'string' && (hint.mode === 'crdt' ? hint.state instanceof Uint8Array : hint.mode !== ('cell' as string) && Array.isArray(hint.versions));
      if (!valid) throw new RingkvError('bad_request', 'hint-store needs a key-value or crdt hint');
      return { stored: await this.storeLocal(hint) };
    });
    // Asked by a node about to replay hints to this one: which ring this node routes by.
    o.peers.registerService('hint-ring', async () => ({ digest: o.peers.currentLayout().digest }));
  }

  async start(): Promise<void> {
    this.publish();
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  /** The owner came back: replay now rather than at the next tick. */
  onLiveness(nodeId: string, up: boolean): void {
    if (up && this.o.store.pendingFor(nodeId) > 0) void this.replay(nodeId);
  }

  private async storeLocal(hint: Hint): Promise<boolean> {
    const ok = await this.o.store.store(hint);
    if (ok) this.stats.stored++;
    else this.stats.refused++;
    return ok;
  }

  /** Store a hint on `holder` (null = this node). Resolves true once it is durable there. */
  async hint(holder: string | null, h: Omit<KvHint, 'createdAt'> | Omit<CrdtHint, 'createdAt'> | Omit<CellHint, 'createdAt'>, timeoutMs: number): Promise<boolean> {
    // Only the hint's own fields (callers pass a replica op, which may carry more).
    const createdAt = Date.now();
    const hint: Hint =
      h.mode === 'cell'
        ? { target: h.target, table: h.table, mode: 'cell', tableId: h.tableId, key: h.key, entries: h.entries, createdAt }
        : h.mode === 'crdt'
          ? { target: h.target, table: h.table, mode: 'crdt', key: h.key, state: h.state, createdAt }
          : { target: h.target, table: h.table, mode: h.mode, key: h.key, versions: h.versions, createdAt };
    if (holder === null || holder === this.o.peers.selfId) return this.storeLocal(hint);
    const r = (await this.o.peers.request(holder, { t: 'hint-store', hint }, timeoutMs)) as { stored?: boolean };
    return r.stored === true;
  }

  private tick(): void {
    if (this.stopped) return;
    if (this.total() > 0) void this.expireOld();
    for (const [target, n] of Object.entries(this.o.store.pendingCounts())) {
      if (n > 0 && this.o.peers.memberStatus(target) === 'left') void this.dropLeft(target);
      else if (n > 0 && this.o.peers.isUp(target)) void this.replay(target);
    }
  }

  /**
   * Drop hints older than maxHintWindowMs in bounded steps (each one op in the hints actor's
   * mailbox, so stores, lists and deletes interleave with it). One expiry at a time: a tick that
   * finds the last one still running skips it.
   */
  private async expireOld(): Promise<void> {
    if (this.expiring) return;
    this.expiring = true;
    let removed = 0;
    try {
      const cutoff = Date.now() - this.o.config.maxHintWindowMs;
      for (;;) {
        if (this.stopped) break;
        const r = await this.o.store.expire(cutoff, EXPIRE_BUDGET);
        removed += r.removed;
        if (!r.more) break;
      }
    } catch (e) {
      this.o.log.warn({ err: String(e) }, 'hint expiry step failed');
    } finally {
      this.expiring = false;
      if (removed > 0) {
        this.stats.expired += removed;
        this.o.log.info({ removed }, 'expired hints older than maxHintWindowMs');
      }
    }
  }

  /**
   * Drop the hints of a node that left the ring (decommissioned, removed, replaced): it will never
   * take them, and its ranges' data reached their new replicas by streaming. One pass at a time.
   */
  private async dropLeft(target: string): Promise<void> {
    if (this.dropping.has(target)) return;
    this.dropping.add(target);
    let dropped = 0;
    try {
      for (;;) {
        const page = await this.o.store.list(target, REPLAY_PAGE);
        if (page.length === 0 || this.stopped) break;
        dropped += (await this.o.store.delete(target, page.map((h) => h.seq))).length;
      }
    } catch (e) {
      this.o.log.warn({ target, err: String(e) }, 'dropping the hints of a node that left failed');
    } finally {
      this.dropping.delete(target);
      if (dropped > 0) {
        this.stats.obsolete += dropped;
        this.o.log.info({ target, dropped }, 'dropped the hints of a node that left the ring');
        this.publish();
      }
    }
  }

  /** Replay every hint for `target` in seq order (see the class comment for the rule). */
  private async replay(target: string): Promise<void> {
    // One pass at a time per target: the running pass is the map entry with replaying set.
    if (this.passes.get(target)?.replaying === true || this.stopped) return;
    const pass: Pass = { replaying: true, sent: 0, failed: 0, expired: 0, startedAt: Date.now(), finishedAt: null, lastError: null };
    this.passes.delete(target); // re-insert: the map stays in pass-start order for eviction
    this.passes.set(target, pass);
    const throttle = new ReplayThrottle(this.o.config.hintReplayPerSecond, this.window, Date.now());
    const t0 = performance.now();
    // The events bracket passes that sent something: a pass that only finds the target's ring
    // differing (it retries every tick) stays out of the log.
    let started = false;
    try {
      for (;;) {
        if (this.stopped) break;
        if (!this.o.peers.isUp(target)) {
          pass.lastError = `${target} went down`;
          break;
        }
        const page = await this.o.store.list(target, REPLAY_PAGE);
        if (page.length === 0) break;
        const differs = await this.ringDiffers(target);
        if (differs !== null) {
          pass.lastError = differs;
          this.o.log.debug({ target }, differs);
          break;
        }
        if (!started) {
          started = true;
          logEvent(this.o.log, 'hints.replay.start', { target, pending: this.o.store.pendingFor(target) });
        }
        if (!(await this.replayPage(target, page, pass, throttle))) break;
      }
    } catch (e) {
      pass.lastError = e instanceof Error ? e.message : String(e);
      this.o.log.warn({ target, err: String(e) }, 'hint replay pass aborted');
    } finally {
      pass.replaying = false;
      pass.finishedAt = Date.now();
      this.trimPasses();
      this.publish();
      const ms = performance.now() - t0;
      if (pass.sent > 0) {
        this.stats.lastReplay[target] = { hints: pass.sent, ms: Math.round(ms), perSecond: Math.round((pass.sent * 1000) / Math.max(ms, 1)) };
      }
      if (started) {
        logEvent(this.o.log, 'hints.replay.end', {
          target,
          sent: pass.sent,
          failed: pass.failed,
          expired: pass.expired,
          pending: this.o.store.pendingFor(target),
          ms: Math.round(ms),
          error: pass.lastError,
        });
      }
    }
  }

  /**
   * Null when `target` routes by the same ring as this node, else why not. A node that has just
   * restarted knows only itself until its first gossip exchange, and would file a replayed write
   * under that one-node ring (a shard the full ring never reads); so replay waits until the target
   * reports the same ring digest (the next tick retries).
   */
  private async ringDiffers(target: string): Promise<string | null> {
    const mine = this.o.peers.currentLayout().digest;
    const r = (await this.o.peers.request(target, { t: 'hint-ring' }, this.o.config.requestTimeoutMs)) as { digest?: unknown };
    return r.digest === mine ? null : `${target} routes by ring ${String(r.digest)}, this node by ${mine}; replay waits for them to agree`;
  }

  /** Send one page window by window; false when the pass must stop (a failure). */
  private async replayPage(target: string, page: StoredHint[], pass: Pass, throttle: ReplayThrottle): Promise<boolean> {
    for (let i = 0; i < page.length; i += this.window) {
      if (this.stopped) return false;
      const win = page.slice(i, i + this.window);
      let allowed = throttle.take(win.length, Date.now());
      while (allowed < win.length) {
        await new Promise((r) => setTimeout(r, Math.max(1, throttle.waitMs(Date.now()))));
        allowed += throttle.take(win.length - allowed, Date.now());
      }
      const now = Date.now();
      // Issued in seq order (one peer connection keeps that order on the wire); they may finish out of order.
      const outcome = await Promise.all(
        win.map(async (h): Promise<'sent' | 'expired' | 'obsolete' | Error> => {
          if (isExpired(h.createdAt, now, this.o.config.maxHintWindowMs)) return 'expired';
          try {
            await this.deliver(target, h);
            return 'sent';
          } catch (e) {
            // The target no longer stores the key (a range movement moved it away, in the ring both
            // nodes agree on: ringDiffers checked it): the hint has no replica left to reach. The
            // write's acknowledged copies are on the key's replicas (a movement streams them).
            if (e instanceof RingkvError && e.code === 'not_owner') return 'obsolete';
            return e instanceof Error ? e : new Error(String(e));
          }
        }),
      );
      const k = settledPrefix(outcome.map((x) => !(x instanceof Error)));
      const removed = new Set(await this.o.store.delete(target, win.slice(0, k).map((h) => h.seq)));
      for (let j = 0; j < k; j++) {
        // Count only what this delete removed: an expiry may have taken a hint meanwhile.
        if (!removed.has(win[j]!.seq)) continue;
        if (outcome[j] === 'sent') {
          pass.sent++;
          this.stats.replayed++;
          const n = this.replayedTo.get(target);
          if (n !== undefined || this.replayedTo.size < MAX_PROGRESS_ENTRIES) this.replayedTo.set(target, (n ?? 0) + 1);
        } else if (outcome[j] === 'obsolete') {
          this.stats.obsolete++;
        } else {
          pass.expired++;
          this.stats.expired++;
        }
      }
      const failures = outcome.filter((x): x is Error => x instanceof Error);
      if (failures.length > 0) {
        pass.failed += failures.length;
        this.stats.replayFailures += failures.length;
        pass.lastError = failures[0]!.message;
        this.o.log.debug({ target, failures: failures.length, err: failures[0]!.message }, 'hint replay failed; will retry');
        return false;
      }
    }
    return true;
  }

  /** Replay one hint: the replica write it stands for (a wide-column hint is a partition mutation). */
  private async deliver(target: string, h: Hint): Promise<void> {
    const timeoutMs = this.o.config.requestTimeoutMs;
    if (h.mode === 'cell') {
      await this.o.peers.request(target, wideWriteMessage({ table: h.table, tableId: h.tableId, key: h.key, entries: h.entries }), timeoutMs);
      return;
    }
    const tableId = Buffer.from(tableIdOf(h.table), 'hex');
    if (h.mode === 'crdt') {
      // A CRDT state goes as it is: the target joins it with what it holds.
      await this.o.peers.writeRecord(target, { table: h.table, tableId, mode: 'crdt', key: h.key, record: h.state }, timeoutMs);
      return;
    }
    await this.o.peers.write(target, { table: h.table, tableId, mode: h.mode, key: h.key, versions: h.versions }, timeoutMs);
  }

  private trimPasses(): void {
    if (this.passes.size <= MAX_PROGRESS_ENTRIES) return;
    for (const [t, p] of this.passes) {
      if (this.passes.size <= MAX_PROGRESS_ENTRIES) break;
      if (!p.replaying) this.passes.delete(t);
    }
  }

  /** Hints delivered per target since this node started. */
  replayedByTarget(): ReadonlyMap<string, number> {
    return this.replayedTo;
  }

  pending(): Record<string, number> {
    return this.o.store.pendingCounts();
  }

  total(): number {
    return Object.values(this.o.store.pendingCounts()).reduce((a, b) => a + b, 0);
  }

  private publish(): void {
    this.onCountsChanged?.(this.total());
  }

  /** Replay progress per target: every target with hints here, and every recent pass. */
  progress(nowMs = Date.now()): Record<string, ReplayProgress> {
    const pending = this.o.store.pendingCounts();
    const out: Record<string, ReplayProgress> = {};
    for (const t of new Set([...Object.keys(pending), ...this.passes.keys()])) {
      const p = this.passes.get(t);
      out[t] = {
        pending: pending[t] ?? 0,
        targetUp: this.o.peers.isUp(t),
        replaying: p?.replaying ?? false,
        sent: p?.sent ?? 0,
        failed: p?.failed ?? 0,
        expired: p?.expired ?? 0,
        startedAt: p?.startedAt ?? null,
        finishedAt: p?.finishedAt ?? null,
        perSecond: p ? replayRate(p.sent, p.startedAt, p.finishedAt ?? nowMs) : 0,
        lastError: p?.lastError ?? null,
      };
    }
    return out;
  }

  snapshot(): HintStats {
    return { ...this.stats, lastReplay: { ...this.stats.lastReplay }, pending: this.pending(), replay: this.progress() };
  }
}
