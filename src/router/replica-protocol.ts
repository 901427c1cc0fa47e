/**
 * The replica side of the key-value protocol, shared by the coordinator (router.ts), the peer edge
 * that carries it (cluster.ts) and the hint replay: the replica operations, how a coordinator
 * reaches remote replicas, and the peer messages that carry them. A leaf module (types and one
 * registration helper), so none of those imports another to speak it.
 */
import type { ConflictMode } from '../config/config.js';
import type { WireWriteMode } from '../storage/shard-wire.js';
import { RingkvError } from '../util/errors.js';
import type { Version } from '../versions/index.js';
import type { PeerServices } from '../cluster/peer-services.js';
import type { PeerReplicaScan, ScanPage } from './scan.js';

/**
 * A replica's storage-level operation, as sent to a local shard or a remote node's router.
 * `tableId` is the table's id bytes (tableIdBytes, TABLE_ID_BYTES long); a receiving node checks it
 * against the name, so a peer that computes ids differently is refused rather than mixed in.
 */
export interface ReplicaWrite {
  table: string;
  tableId: Uint8Array;
  mode: ConflictMode;
  key: Uint8Array;
  versions: Version[];
  /** Ask the replica to answer with the merged versions it now stores. */
  returnMerged?: boolean;
}
export interface ReplicaRead {
  table: string;
  tableId: Uint8Array;
  key: Uint8Array;
}

/**
 * A replica write as it crosses the peer port: the versions as their canonical record bytes
 * (encodeRecord), which the receiving node validates and hands to its shard as they are. Objects
 * would cost a msgpack encode on the sender and a decode plus a record encode on the receiver.
 */
export interface PeerReplicaWrite {
  table: string;
  tableId: Uint8Array;
  /** The records' mode: a key-value table's versions, or a crdt table's state (`crdt`). */
  mode: WireWriteMode;
  key: Uint8Array;
  record: Uint8Array;
  returnMerged?: boolean;
}

/** How the router reaches replicas on other nodes (the peer transport implements it). Records are encodeRecord bytes. */
export interface RemoteReplicas {
  /** Resolves with the merged record when `op.returnMerged`, else null. */
  writeRecord(nodeId: string, op: PeerReplicaWrite, timeoutMs: number): Promise<Uint8Array | null>;
  /** Resolves with the replica's stored record, or null when it holds none. */
  readRecord(nodeId: string, op: ReplicaRead, timeoutMs: number): Promise<Uint8Array | null>;
  /** One page of the replica's rows of a scan segment (the caller checks it with checkScanPage). */
  scanRecords(nodeId: string, op: PeerReplicaScan, timeoutMs: number): Promise<ScanPage>;
}

/** What a node's replica side serves to other nodes' coordinators (`LocalReplicaService` implements it). */
export interface LocalReplicas {
  applyReplicaWrite(op: PeerReplicaWrite): Promise<Uint8Array | null>;
  applyReplicaRead(op: ReplicaRead): Promise<Uint8Array | null>;
  applyReplicaScan(op: PeerReplicaScan): Promise<ScanPage>;
}

/** The replica operations' peer messages and their replies. */
export type ReplicaPeerMessage = { t: 'write'; op: PeerReplicaWrite } | { t: 'read'; op: ReplicaRead } | { t: 'scan'; op: PeerReplicaScan };
export type ReplicaPeerReply = { t: 'ok' } | { t: 'record'; record: Uint8Array | null } | { t: 'scan-page'; rows: ScanPage['rows']; next: ScanPage['next'] };

/** The replica message types: before the router registers them the node answers `unavailable` (starting). */
export const REPLICA_PEER_TYPES: ReadonlySet<string> = new Set<ReplicaPeerMessage['t']>(['write', 'read', 'scan']);

/** Serve the replica messages of other nodes' coordinators from `replicas` (the router, at construction). */
export function registerReplicaHandlers(peers: Pick<PeerServices, 'registerService'>, replicas: LocalReplicas): void {
  peers.registerService('write', async (body) => {
    const op = (body as unknown as { op: PeerReplicaWrite }).op;
    if (typeof op !== 'object' || op === null) throw new RingkvError('bad_request', 'write without an op');
    const merged = await replicas.applyReplicaWrite(op);
    return (op.returnMerged ? { t: 'record', record: merged } : { t: 'ok' }) satisfies ReplicaPeerReply;
  });
  peers.registerService('read', async (body) => {
    const op = (body as unknown as { op: ReplicaRead }).op;
    if (typeof op !== 'object' || op === null) throw new RingkvError('bad_request', 'read without an op');
    return { t: 'record', record: await replicas.applyReplicaRead(op) } satisfies ReplicaPeerReply;
  });
  peers.registerService('scan', async (body) => {
    const op = (body as unknown as { op: PeerReplicaScan }).op;
    if (typeof op !== 'object' || op === null) throw new RingkvError('bad_request', 'scan without an op');
    const page = await replicas.applyReplicaScan({ ...op, after: op.after ?? null });
    return { t: 'scan-page', rows: page.rows, next: page.next } satisfies ReplicaPeerReply;
  });
}
