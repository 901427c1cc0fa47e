/**
 * Which local shard stores a token: a fixed function of the token and the node's shard count,
 * never of the ring. A ring change (a join, a leave) therefore never moves data between the shards
 * of a node, and every node computes its own shard for a key without being told (ScyllaDB's
 * sharding, design §2).
 *
 * The 64-bit token space is cut into PLACEMENT_PIECES equal contiguous pieces (the top
 * PLACEMENT_PIECE_BITS bits of the token) and piece p belongs to shard p mod S. Why pieces dealt
 * round-robin rather than S contiguous slices (shard = floor(token * S / 2^64)): a node stores the
 * ring ranges it replicates, which are a few dozen arcs of the ring; with S slices, how much of
 * those arcs falls into each slice is luck, and the busiest shard (one worker thread) caps the
 * node. Measured with the token allocator, 16 vnodes, N=3, S=4 (mean over 5 seeds of the busiest
 * shard's share / the mean share, per node): S slices 1.25 (6 nodes), 1.32 (12), 1.46 (48), 1.53
 * (200); 4,096 pieces 1.004, 1.006, 1.023, 1.08; 65,536 pieces 1.006 at 200 nodes. Pieces this
 * fine make every ring range span every shard, so each shard keeps a Merkle tree for every local
 * range and a scan reads all shards and merges them (shards.ts); nothing else depends on the piece
 * size, so it is chosen fine enough for the 1,000-node rings the ring table is sized for.
 *
 * Pure and allocation-free (worker-safe): the router and the shard actors call it per key.
 */

/** log2 of the number of pieces: a piece is the top 16 bits of the token's high word. */
export const PLACEMENT_PIECE_BITS = 16;
export const PLACEMENT_PIECES = 2 ** PLACEMENT_PIECE_BITS;

/** Shards a node may have (one worker thread each; also bounded by config). */
export const MAX_SHARDS = 64;

function assertShards(shards: number): void {
  if (!Number.isInteger(shards) || shards < 1 || shards > MAX_SHARDS) throw new RangeError(`shard count must be an integer in [1, ${MAX_SHARDS}], got ${String(shards)}`);
}

/** The local shard of a token, from its high uint32 word. O(1), no allocation. */
export function shardOfToken(tokenHi: number, shards: number): number {
  return (tokenHi >>> (32 - PLACEMENT_PIECE_BITS)) % shards;
}

/** The local shard of a storage key (its first 8 bytes are the token, big-endian). */
export function shardOfStorageKey(key: Uint8Array, shards: number): number {
  if (key.length < 2) throw new RangeError('storage key too short to carry a token');
  return ((key[0]! << 8) | key[1]!) % shards;
}

/** What the ownership rule needs of the ring: is this node a replica of the token (RingTable.isReplica)? */
export interface ReplicaView {
  isReplica(hi: number, lo: number): boolean;
}

/**
 * The local shard that stores token (hi, lo) on this node under `ring`, or -1 when this node is not
 * one of its replicas. The ring decides only *whether* the node stores the key; *which* shard
 * never depends on it. Shard workers refuse keys for which this is not their own shard.
 */
export function localShardOf(ring: ReplicaView, hi: number, lo: number, shards: number): number {
  return ring.isReplica(hi, lo) ? shardOfToken(hi, shards) : -1;
}

/** The pieces a shard owns, as a count (for tests and docs: S does not need to divide the piece count). */
export function piecesOfShard(shard: number, shards: number): number {
  assertShards(shards);
  if (!Number.isInteger(shard) || shard < 0 || shard >= shards) throw new RangeError(`shard ${String(shard)} outside [0, ${shards})`);
  return Math.floor(PLACEMENT_PIECES / shards) + (shard < PLACEMENT_PIECES % shards ? 1 : 0);
}

