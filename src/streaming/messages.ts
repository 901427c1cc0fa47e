/**
 * Peer messages of range streaming (served by the MovementManager of the receiving node through
 * Cluster.registerService), with the checks every incoming one passes before anything happens.
 *
 *  - `stream-settle`: "which movements do you see?" Answered, once every coordination the peer had
 *    started before has answered, with its movement digest (membership.ts). A movement streams
 *    only once every live peer answers with the driver's own digest.
 *  - `stream-fetch`: the source side: one page of the stored records of every table in a token
 *    range after a storage-key cursor, at most `maxBytes`, as a checksummed batch (batch.ts).
 *  - `stream-apply`: the target side: write a batch through the shard actors with each table's
 *    merge (a driver that is not the target pushes to it: decommission, removenode).
 *  - `stream-member`: how the peer sees one node (status, liveness, whether it left the ring).
 */
import type { TokenRangeWords } from '../storage/shard-protocol.js';
import { RingkvError } from '../util/errors.js';
import { STREAM_LIMITS, type WireBatch } from './batch.js';

/** A token range (start, end] as uint32 words (start == end: the whole ring). */
export type WireRange = TokenRangeWords;

export type StreamPeerMessage =
  | { t: 'stream-settle' }
  | { t: 'stream-fetch'; range: WireRange; after: Uint8Array | null; maxBytes: number; maxRows: number }
  | { t: 'stream-apply'; batch: WireBatch }
  | { t: 'stream-member'; node: string };

export interface SettleReply {
  digest: string;
}
export interface FetchReply {
  batch: WireBatch;
  /** Where the next page starts (the last key examined), or null: the range is done. */
  next: Uint8Array | null;
}
export interface ApplyReply {
  rows: number;
  changed: number;
}
export interface MemberReply {
  known: boolean;
  status: string | null;
  up: boolean;
  /** Why the node no longer belongs to the ring in the peer's view (membership.departureOf), or null. */
  departed: string | null;
  tokens: string[];
}

export const STREAM_MESSAGE_TYPES = ['stream-settle', 'stream-fetch', 'stream-apply', 'stream-member'] as const;

function u32(x: unknown, what: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RingkvError('bad_request', `${what} must be a uint32`);
  return x;
}

export function asWireRange(x: unknown): WireRange {
  if (typeof x !== 'object' || x === null) throw new RingkvError('bad_request', 'range must be an object');
  const r = x as Record<string, unknown>;
  return { startHi: u32(r['startHi'], 'range.startHi'), startLo: u32(r['startLo'], 'range.startLo'), endHi: u32(r['endHi'], 'range.endHi'), endLo: u32(r['endLo'], 'range.endLo') };
}

export function asFetch(b: Record<string, unknown>): Extract<StreamPeerMessage, { t: 'stream-fetch' }> {
  const after = b['after'] ?? null;
  if (after !== null && !(after instanceof Uint8Array)) throw new RingkvError('bad_request', 'stream-fetch cursor must be bytes or null');
  const maxBytes = b['maxBytes'];
  const maxRows = b['maxRows'];
  if (typeof maxBytes !== 'number' || !Number.isInteger(maxBytes) || maxBytes < 1 || maxBytes > STREAM_LIMITS.streamBatchBytesMax) {
    throw new RingkvError('bad_request', `stream-fetch maxBytes must be 1..${STREAM_LIMITS.streamBatchBytesMax}`);
  }
  if (typeof maxRows !== 'number' || !Number.isInteger(maxRows) || maxRows < 1 || maxRows > STREAM_LIMITS.streamBatchRowsMax) {
    throw new RingkvError('bad_request', `stream-fetch maxRows must be 1..${STREAM_LIMITS.streamBatchRowsMax}`);
  }
  return { t: 'stream-fetch', range: asWireRange(b['range']), after, maxBytes, maxRows };
}

export function asMemberQuery(b: Record<string, unknown>): string {
  const node = b['node'];
  if (typeof node !== 'string' || node.length === 0 || node.length > 128) throw new RingkvError('bad_request', 'stream-member needs a node id');
  return node;
}
