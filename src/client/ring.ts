/**
 * Ring math on the client: its copy of the ring, answered by a node's \`ring\` reply.
 */
import type { IpcKey, RingInfo } from '../api/ipc-protocol.js';
import { compareTokens, tokenFromHex, tokenOf, tokenPosition, type Token } from '../ring/hash.js';
import { RingkvError } from '../util/errors.js';

/**
 * The client's copy of the ring: the same lookup the coordinator does (src/ring/table.ts), over the
 * `ring` reply. token = xxh64(key bytes, seed 0); position = first token >= it, wrapping to 0; the
 * replicas are that position's preference list.
 */
export class ClientRing {
  readonly digest: string;
  readonly nodes: RingInfo['nodes'];
  readonly replicas: number;
  private readonly tokens: Token[];
  private readonly pref: Uint16Array;

  constructor(readonly info: RingInfo) {
    const bad = (why: string): RingkvError => new RingkvError('internal', `server sent an invalid ring: ${why}`);
    if (!info || typeof info.digest !== 'string' || !Array.isArray(info.tokens) || !Array.isArray(info.pref) || !Array.isArray(info.nodes)) {
      throw bad('missing digest, tokens, pref or nodes');
    }
    const r = info.replicas;
    if (!Number.isInteger(r) || r < 0 || (info.tokens.length > 0 && r < 1)) throw bad(`replicas=${String(r)}`);
    if (info.pref.length !== info.tokens.length * r) throw bad(`pref has ${info.pref.length} entries, expected ${info.tokens.length * r}`);
    this.tokens = info.tokens.map((t) => {
      try {
        return tokenFromHex(t);
      } catch {
        throw bad(`token ${JSON.stringify(t)}`);
      }
    });
    for (let i = 1; i < this.tokens.length; i++) if (compareTokens(this.tokens[i - 1]!, this.tokens[i]!) >= 0) throw bad('tokens are not strictly ascending');
    for (const p of info.pref) if (!Number.isInteger(p) || p < 0 || p >= info.nodes.length) throw bad(`pref names node ${String(p)} of ${info.nodes.length}`);
    this.pref = Uint16Array.from(info.pref);
    this.digest = info.digest;
    this.nodes = info.nodes;
    this.replicas = r;
  }

  get size(): number {
    return this.tokens.length;
  }

  /** First position whose token is >= t, or 0 past the last token (the ring wraps). */
  positionOf(t: Token): number {
    return tokenPosition(this.tokens, t);
  }

  /** Node indexes (into `nodes`) of the key's replicas, in preference order; [] for an empty ring. */
  replicasFor(key: IpcKey): number[] {
    return Array.from(this.replicaView(key));
  }

  /** The key's preference list as a view (no copy): node indexes, best first. */
  replicaView(key: IpcKey): Uint16Array {
    if (this.tokens.length === 0) return new Uint16Array(0);
    const pos = this.positionOf(tokenOf(key));
    return this.pref.subarray(pos * this.replicas, (pos + 1) * this.replicas);
  }
}
