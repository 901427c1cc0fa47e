import type { NodeConfig } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import type { Cluster } from '../cluster/cluster.js';
import { RingkvError } from '../util/errors.js';
import type { Hint } from './protocol.js';
import { isExpired, ReplayThrottle } from './policy.js';
import type { HintStore } from './store.js';

export interface HintStats {
  stored: number;
  refused: number;
  replayed: number;
  replayFailures: number;
  expired: number;
  /** Hints held on this node, per target node. */
  pending: Record<string, number>;
  /** Replay rate over the last completed replay pass (hints/s), per target. */
  lastReplay: Record<string, { hints: number; ms: number; perSecond: number }>;
}

const REPLAY_PAGE = 500;
const REPLAY_WINDOW = 100;

/**
 * Hinted handoff: stores hints (locally or on a fallback node) and replays them to their owner when
 * the failure detector sees it up again — in arrival order, throttled, deleted once acknowledged,
 * dropped after `maxHintWindowMs`.
 */
export class HintService {
  private readonly replaying = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private readonly throttle: ReplayThrottle;
  private pendingCounts: Record<string, number> = {};
  readonly stats: Omit<HintStats, 'pending'> = { stored: 0, refused: 0, replayed: 0, replayFailures: 0, expired: 0, lastReplay: {} };
  onCountsChanged: ((total: number) => void) | undefined;

  constructor(
    private readonly o: { cluster: Cluster; store: HintStore; config: NodeConfig; log: Logger },
  ) {
    this.throttle = new ReplayThrottle(o.config.hintReplayPerSecond, Math.max(REPLAY_WINDOW, o.config.hintReplayPerSecond / 10), Date.now());
    o.cluster.registerService('hint-store', async (body) => {
      const hint = body['hint'] as Hint | undefined;
      if (!hint || typeof hint.target !== 'string' || !Array.isArray(hint.versions)) throw new RingkvError('bad_request', 'hint-store needs a hint');
      return { stored: await this.storeLocal(hint) };
    });
  }

  async start(): Promise<void> {
    this.pendingCounts = await this.o.store.counts();
    this.publish();
    this.timer = setInterval(() => void this.tick(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** The owner came back: replay now rather than at the next tick. */
  onLiveness(nodeId: string, up: boolean): void {
    if (up && (this.pendingCounts[nodeId] ?? 0) > 0) void this.replay(nodeId);
  }

  private async storeLocal(hint: Hint): Promise<boolean> {
    const ok = await this.o.store.store(hint);
    if (ok) {
      this.stats.stored++;
      this.pendingCounts[hint.target] = (this.pendingCounts[hint.target] ?? 0) + 1;
      this.publish();
    } else this.stats.refused++;
    return ok;
  }

  /** Store a hint on `holder` (null = this node). Resolves true once it is durable there. */
  async hint(holder: string | null, h: Omit<Hint, 'createdAt'>, timeoutMs: number): Promise<boolean> {
    const hint: Hint = { ...h, createdAt: Date.now() };
    if (holder === null || holder === this.o.cluster.selfId) return this.storeLocal(hint);
    const r = (await this.o.cluster.request(holder, { t: 'hint-store', hint }, timeoutMs)) as { stored?: boolean };
    return r.stored === true;
  }

  private async tick(): Promise<void> {
    const cutoff = Date.now() - this.o.config.maxHintWindowMs;
    if (Object.keys(this.pendingCounts).length > 0) {
      const removed = await this.o.store.expire(cutoff).catch(() => 0);
      if (removed > 0) {
        this.stats.expired += removed;
        this.o.log.info({ removed }, 'expired hints older than maxHintWindowMs');
        this.pendingCounts = await this.o.store.counts();
        this.publish();
      }
    }
    for (const [target, n] of Object.entries(this.pendingCounts)) {
      if (n > 0 && this.o.cluster.isUp(target)) void this.replay(target);
    }
  }

  /** Replay every hint for `target`, page by page, in order; stop at the first failure. */
  private async replay(target: string): Promise<void> {
    if (this.replaying.has(target)) return;
    this.replaying.add(target);
    const t0 = performance.now();
    let sent = 0;
    try {
      for (;;) {
        if (!this.o.cluster.isUp(target)) break;
        const page = await this.o.store.list(target, REPLAY_PAGE);
        if (page.length === 0) break;
        let failed = false;
        for (let i = 0; i < page.length && !failed; i += REPLAY_WINDOW) {
          const window = page.slice(i, i + REPLAY_WINDOW);
          let allowed = this.throttle.take(window.length, Date.now());
          while (allowed < window.length) {
            await new Promise((r) => setTimeout(r, Math.max(1, this.throttle.waitMs(Date.now()))));
            allowed += this.throttle.take(window.length - allowed, Date.now());
          }
          const now = Date.now();
          const acked: number[] = [];
          await Promise.all(
            window.map(async (h) => {
              if (isExpired(h.createdAt, now, this.o.config.maxHintWindowMs)) {
                acked.push(h.seq);
                this.stats.expired++;
                return;
              }
              try {
                await this.o.cluster.write(target, { table: h.table, tableId: h.tableId, mode: h.mode, key: h.key, versions: h.versions }, this.o.config.requestTimeoutMs);
                acked.push(h.seq);
              } catch (e) {
                failed = true;
                this.stats.replayFailures++;
                this.o.log.debug({ target, err: String(e) }, 'hint replay failed; will retry');
              }
            }),
          );
          await this.o.store.delete(target, acked);
          sent += acked.length;
          this.stats.replayed += acked.length;
          this.pendingCounts[target] = Math.max(0, (this.pendingCounts[target] ?? 0) - acked.length);
        }
        if (failed) break;
      }
    } catch (e) {
      this.o.log.warn({ target, err: String(e) }, 'hint replay pass aborted');
    } finally {
      this.replaying.delete(target);
      if ((this.pendingCounts[target] ?? 0) === 0) delete this.pendingCounts[target];
      this.publish();
      if (sent > 0) {
        const ms = performance.now() - t0;
        this.stats.lastReplay[target] = { hints: sent, ms: Math.round(ms), perSecond: Math.round((sent * 1000) / Math.max(ms, 1)) };
        this.o.log.info({ target, hints: sent, ms: Math.round(ms) }, 'hints replayed');
      }
    }
  }

  pending(): Record<string, number> {
    return { ...this.pendingCounts };
  }

  total(): number {
    return Object.values(this.pendingCounts).reduce((a, b) => a + b, 0);
  }

  private publish(): void {
    this.onCountsChanged?.(this.total());
  }

  snapshot(): HintStats {
    return { ...this.stats, pending: this.pending() };
  }
}
