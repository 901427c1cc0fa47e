/**
 * The distinct storage keys of one shard turn, each with its slot (index) in the turn's multi-get:
 * the same key touched twice in a turn (two writes, a read and a write) shares one slot. Found by a
 * 30-bit hash of the key's bytes and compared as bytes on a hit: no string per key (a latin1 string
 * per key as a Map key, with its hash, was ~5% of the shard threads' CPU under batched ingest).
 *
 * The hash covers the whole key, not only its token: the cells and rows of one wide-column
 * partition share a token, and a turn can carry thousands of them (a time-series batch), which a
 * token-only hash would chain into one bucket (quadratic compares). Pure: no I/O.
 */

import { TOKEN_BYTES } from './keys.js';

export class KeySlots {
  /** The keys in slot order (the multi-get's input). */
  readonly keys: Buffer[] = [];
  /** hash -> the last slot added with that hash */
  private readonly lastOfHash = new Map<number, number>();
  /** slot -> the previous slot with the same hash, or -1 */
  private readonly sameHash: number[] = [];

  /** The slot of `k`, added if new. */
  slotOf(k: Buffer): number {
    const h = keyHash(k);
    const head = this.lastOfHash.get(h);
    for (let idx = head ?? -1; idx >= 0; idx = this.sameHash[idx]!) if (this.keys[idx]!.equals(k)) return idx;
    const idx = this.keys.length;
    this.keys.push(k);
    this.sameHash.push(head ?? -1);
    this.lastOfHash.set(h, idx);
    return idx;
  }

  /** The longest run of distinct keys that share a hash (for tests: bounds the compares per lookup). */
  longestChain(): number {
    let longest = 0;
    for (const head of this.lastOfHash.values()) {
      let n = 0;
      for (let idx = head; idx >= 0; idx = this.sameHash[idx]!) n++;
      longest = Math.max(longest, n);
    }
    return longest;
  }
}

/** FNV-1a over the key's bytes after the token, seeded with the token's low half; 30 bits (a small integer for the Map). A key shorter than a token (not a storage key) hashes by its length. */
function keyHash(k: Uint8Array): number {
  if (k.length < TOKEN_BYTES) return k.length;
  let h = ((k[4]! << 24) | (k[5]! << 16) | (k[6]! << 8) | k[7]!) ^ 0x811c9dc5;
  for (let i = TOKEN_BYTES; i < k.length; i++) h = Math.imul(h ^ k[i]!, 0x01000193);
  return h & 0x3fffffff;
}
