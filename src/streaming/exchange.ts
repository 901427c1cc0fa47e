/**
 * The peer side of range streaming and its client: this node answers the streaming peer messages
 * (messages.ts) from its shards, and a driver fetches from sources and applies to targets through
 * the same calls, locally when the node is itself the source or the target (no message then, and no
 * checksum to check: the rows never left the process).
 */
import type { Cluster } from '../cluster/cluster.js';
import type { TableMode, NodeConfig } from '../config/config.js';
import type { Router } from '../router/router.js';
import type { TableRegistry } from '../router/tables.js';
import type { ShardPool } from '../storage/shards.js';
import { RingkvError } from '../util/errors.js';
import { decodeBatch, encodeBatch, type StreamRow } from './batch.js';
import { departureOf } from './membership.js';
import { asFetch, asMemberQuery, type FetchReply, type MemberReply, type WireRange } from './messages.js';
import type { FetchedPage } from './mover.js';
import { applyRows } from './receiver.js';
import { fetchBatch, readRangePage, tableModesOf } from './sender.js';

/** Deadline of one stream-fetch or stream-apply (a batch is at most STREAM_LIMITS.streamBatchBytesMax). */
const PEER_TIMEOUT_MS = 30_000;

export interface ExchangeDeps {
  cluster: Cluster;
  router: Router;
  shards: ShardPool;
  tables: TableRegistry;
  config: NodeConfig;
}

export class StreamExchange {
  constructor(private readonly d: ExchangeDeps) {
    const c = d.cluster;
    c.registerService('stream-settle', () => this.onSettle());
    c.registerService('stream-fetch', (b) => this.onFetch(b));
    c.registerService('stream-apply', (b) => this.onApply(b));
    c.registerService('stream-member', (b) => Promise.resolve(this.memberView(asMemberQuery(b))));
  }

  /** How this node sees node `id` (the `stream-member` answer). */
  memberView(id: string): MemberReply {
    const c = this.d.cluster;
    const st = c.gossip.get(id);
    return { known: st !== undefined, status: st?.info.status ?? null, up: st !== undefined && c.isUp(id), departed: departureOf(c.gossip.all(), id), tokens: st ? [...st.info.tokens] : [] };
  }

  /** One page of `source`'s records of a range after `after` (its checksum checked when it crossed the network). */
  async fetch(source: string, range: WireRange, after: Uint8Array | null, maxBytes: number, maxRows: number): Promise<FetchedPage> {
    if (source === this.d.cluster.selfId) {
      const p = await readRangePage(this.d.shards, range, after, maxBytes, maxRows);
      return { rows: p.rows, tables: new Map(tableModesOf(p.rows, this.d.tables)), next: p.next };
    }
    const reply = (await this.d.cluster.request(source, { t: 'stream-fetch', range, after, maxBytes, maxRows }, PEER_TIMEOUT_MS)) as Partial<FetchReply>;
    const { rows, tables } = decodeBatch(reply.batch);
    const next = reply.next ?? null;
    if (next !== null && !(next instanceof Uint8Array)) throw new RingkvError('bad_request', `stream-fetch from ${source}: bad cursor`);
    return { rows, tables, next };
  }

  /** Write rows on `target` through its shards (merged with each table's conflict mode). */
  async apply(target: string, rows: readonly StreamRow[], tables: ReadonlyMap<string, TableMode>): Promise<void> {
    if (target === this.d.cluster.selfId) {
      await applyRows(this.d, rows, tables);
      return;
    }
    await this.d.cluster.request(target, { t: 'stream-apply', batch: encodeBatch(rows, [...tables]) }, PEER_TIMEOUT_MS);
  }

  private async onSettle(): Promise<unknown> {
    // Writes this node coordinated with an older view are sent once their coordinations answered.
    await Promise.race([this.d.router.coordinationsSettled(), new Promise((r) => setTimeout(r, this.d.config.requestTimeoutMs + 1000).unref())]);
    return { digest: this.d.cluster.movementView().digest };
  }

  private async onFetch(b: Record<string, unknown>): Promise<FetchReply> {
    const q = asFetch(b);
    const { batch, next } = await fetchBatch(this.d.shards, this.d.tables, q.range, q.after, q.maxBytes, q.maxRows);
    return { batch, next };
  }

  private async onApply(b: Record<string, unknown>): Promise<unknown> {
    const { rows, tables } = decodeBatch(b['batch']);
    return applyRows(this.d, rows, tables);
  }
}
