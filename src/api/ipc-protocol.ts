/**
 * Message definitions of the IPC protocol (local Unix socket, and the peer port for authenticated
 * remote clients), shared by the server (src/api/ipc-server.ts) and the client (src/client).
 *
 * Framing is src/net/frames.ts: uint32 BE payload length + one msgpack value. docs/ipc-protocol.md
 * is the normative description for non-TypeScript clients; keep the two in step (a unit test
 * replays the doc's byte-level example against a real server).
 *
 * Binary data (keys given as bin, values, siblings) are msgpack `bin` on the wire and Node Buffers
 * after decoding; strings are msgpack `str` (UTF-8).
 */
import type { ConsistencyLevel } from '../router/consistency.js';
import type { ConsistencyReport } from '../router/types.js';
import type { ErrorCode } from '../util/errors.js';

export type { ConsistencyLevel, ConsistencyReport, ErrorCode };

/** Bumped on incompatible wire changes; reported in the `ring` reply. */
export const IPC_PROTOCOL_VERSION = 1;

export const IPC_OPS = ['put', 'get', 'del', 'scan', 'batch', 'ring', 'status', 'query', 'crdt_update', 'crdt_get', 'define_table'] as const;
export type IpcOp = (typeof IPC_OPS)[number];
export const IPC_ITEM_OPS = ['put', 'get', 'del'] as const;
export type IpcItemOp = (typeof IPC_ITEM_OPS)[number];

/** The fields each op takes (besides `id` and `op`); other fields the protocol knows are refused. */
export const OP_FIELDS = {
  put: ['table', 'key', 'value', 'context', 'consistency', 'n', 'w', 'timeoutMs', 'ttl'],
  get: ['table', 'key', 'consistency', 'n', 'r', 'timeoutMs'],
  del: ['table', 'key', 'context', 'consistency', 'n', 'w', 'timeoutMs'],
  scan: ['table', 'key', 'limit', 'exclusive', 'pagingState', 'consistency', 'n', 'r', 'timeoutMs'],
  batch: ['items', 'timeoutMs'],
  ring: ['digest'],
  status: [],
  query: ['query', 'params', 'consistency', 'pageSize', 'pagingState', 'timeoutMs'],
  crdt_update: ['table', 'key', 'operation', 'consistency', 'n', 'w', 'timeoutMs'],
  crdt_get: ['table', 'key', 'consistency', 'n', 'r', 'timeoutMs'],
  define_table: ['table', 'conflicts', 'type', 'n', 'quorum'],
} as const satisfies Record<string, readonly string[]>;


/**
 * Request ids are chosen by the client, unique among its in-flight requests on one connection, and
 * echoed in the reply. Unsigned 32-bit: every msgpack library reads them back as a plain integer
 * (msgpackr would encode larger numbers as float64).
 */
export type RequestId = number;
export const MAX_REQUEST_ID = 0xffffffff;

/** A key is a UTF-8 string or raw bytes; either way the stored key (and its ring token) is the bytes. */
export type IpcKey = string | Uint8Array;

/** Optional quorum knobs shared by reads and writes (same meaning as the HTTP query parameters). */
export interface ConsistencyFields {
  /** ONE | TWO | QUORUM | ALL | ANY (ANY: writes only). Case-insensitive. Exclusive with w / r. */
  consistency?: ConsistencyLevel | Lowercase<ConsistencyLevel>;
  /** Replicas to involve (1..5, default: the table's n). */
  n?: number;
  /** Coordinator deadline for this request in ms (1..600000, default: the node's requestTimeoutMs). */
  timeoutMs?: number;
}

export interface PutFields extends ConsistencyFields {
  op: 'put';
  table: string;
  key: IpcKey;
  /** bin: stored byte-exact. str: stored as its UTF-8 bytes. Reads always return bin. */
  value: Uint8Array | string;
  /** The `context` of a previous read: this write supersedes the versions that read saw. */
  context?: string;
  /** Acks required (1..n). */
  w?: number;
  /** Seconds until the value expires (reads then find it absent; the sweep purges it gc grace later). */
  ttl?: number;
}

export interface GetFields extends ConsistencyFields {
  op: 'get';
  table: string;
  key: IpcKey;
  /** Replies required (1..n). */
  r?: number;
}

export interface DelFields extends ConsistencyFields {
  op: 'del';
  table: string;
  key: IpcKey;
  context?: string;
  w?: number;
}

/**
 * Rows in token order from the start key's token (`token(k) >= token(key)`, or `>` with
 * `exclusive`), wrapping the ring at most once, until `limit` live rows. Not a batch item.
 */
export interface ScanFields extends ConsistencyFields {
  op: 'scan';
  table: string;
  /** Start key: the scan starts at its token (the key itself need not exist). Not with `pagingState`. */
  key?: IpcKey;
  /** Live rows wanted, 1..1000. */
  limit: number;
  /** Start strictly after the start key's token. */
  exclusive?: boolean;
  /** The next page of an earlier scan: the `pagingState` its reply carried (instead of `key`). */
  pagingState?: string;
  /** Replies required per ring range (1..n). */
  r?: number;
}

/**
 * One CQL statement (the same language as HTTP `POST /api/v1/query`). `params` fill the `?` markers
 * in order: any msgpack value (a float for a double column, bin for a blob, str for text, a
 * decimal str for a bigint beyond 2^53). Not a batch item.
 */
export interface QueryFields {
  op: 'query';
  query: string;
  params?: unknown[];
  /** ONE | TWO | QUORUM | ALL | ANY (ANY: writes only). */
  consistency?: ConsistencyLevel | Lowercase<ConsistencyLevel>;
  /** Rows per page of a SELECT, 1..10000 (default 5000). */
  pageSize?: number;
  /** The `pagingState` of the previous page of the same query. */
  pagingState?: string;
  timeoutMs?: number;
}

/**
 * Apply an operation to a convergent data type (a key of a `crdt` table). `operation` has the
 * HTTP body's shape: `{increment: 5}`, `{add: ["a"]}`, `{remove: ["c"], context: "..."}`,
 * `{assign: "v"}`, `{enable: true}`, `{update: {...}, remove: [...], context: "..."}`. Not a batch
 * item; never resent by the client (an increment resent counts twice).
 */
export interface CrdtUpdateFields extends ConsistencyFields {
  op: 'crdt_update';
  table: string;
  key: IpcKey;
  operation: Record<string, unknown>;
  w?: number;
}

/** Read a convergent data type's value and context. */
export interface CrdtGetFields extends ConsistencyFields {
  op: 'crdt_get';
  table: string;
  key: IpcKey;
  r?: number;
}

/** Define (create, or change the settings of) a table, as `PUT /api/v1/tables/{t}` does. */
export interface DefineTableFields {
  op: 'define_table';
  table: string;
  conflicts?: 'vclock' | 'lww' | 'crdt';
  /** With conflicts `crdt`: counter, set, map, register or flag. */
  type?: string;
  n?: number;
  quorum?: 'sloppy' | 'strict';
}

/** A CRDT value as replies carry it: a number, a list of strings, a str or nil, a bool, or a map of field values. */
export type CrdtValueWire = number | boolean | string | null | string[] | { [field: string]: CrdtValueWire };

export interface CrdtUpdateOk {
  /** The value after the update, at the replica that applied it. */
  value: CrdtValueWire;
  /** Sets, flags and maps: the context for later removes. */
  context?: string;
  consistency: ConsistencyReport;
}

export interface CrdtGetOk {
  /** False when no replica that answered holds the key; `value` is then the type's empty value. */
  found: boolean;
  value: CrdtValueWire;
  context?: string;
  /** Bytes of the stored (joined) state. */
  bytes: number;
  consistency: ConsistencyReport;
}

export type BatchItem = PutFields | GetFields | DelFields;

export type PutRequest = PutFields & { id: RequestId };
export type GetRequest = GetFields & { id: RequestId };
export type DelRequest = DelFields & { id: RequestId };
export type ScanRequest = ScanFields & { id: RequestId };
export type CrdtUpdateRequest = CrdtUpdateFields & { id: RequestId };
export type CrdtGetRequest = CrdtGetFields & { id: RequestId };
export type DefineTableRequest = DefineTableFields & { id: RequestId };
export interface BatchRequest {
  id: RequestId;
  op: 'batch';
  items: BatchItem[];
  /** Default deadline for items that do not carry their own timeoutMs. */
  timeoutMs?: number;
}
export interface RingRequest {
  id: RequestId;
  op: 'ring';
  /** The ring digest the client already holds: when it is current the reply omits `ring`. */
  digest?: string;
}
export interface StatusRequest {
  id: RequestId;
  op: 'status';
}
export type QueryRequest = QueryFields & { id: RequestId };
export type IpcRequest =
  | PutRequest
  | GetRequest
  | DelRequest
  | ScanRequest
  | BatchRequest
  | RingRequest
  | StatusRequest
  | QueryRequest
  | CrdtUpdateRequest
  | CrdtGetRequest
  | DefineTableRequest;

/** The ring as clients need it for token-aware (zero-hop) routing. */
export interface RingInfo {
  /** Digest of the layout; every reply carries the server's current one as `rv`. */
  digest: string;
  /** Local publication counter of the answering node (informational; digests are what compare). */
  version: number;
  /** Indexed by the numbers in `pref`. `ipc` is a socket path on that node's machine ('' if unknown). */
  nodes: Array<{ id: string; peer: string; http: string; ipc: string; up: boolean }>;
  /** 16 lowercase hex digits each (unsigned 64-bit, high word first), sorted ascending. */
  tokens: string[];
  /** Entries per token in `pref`. */
  replicas: number;
  /** tokens.length * replicas node indexes: the preference list of token i is pref[i*replicas ...]. */
  pref: number[];
}

/** Server limits a client should respect (reported by `ring`). */
export interface IpcLimits {
  maxKeyBytes: number;
  maxValueBytes: number;
  maxFrameBytes: number;
  maxInFlightPerConnection: number;
  /** Items one `batch` may carry (default DEFAULT_MAX_BATCH_ITEMS). */
  maxBatchItems?: number;
}

export const DEFAULT_MAX_BATCH_ITEMS = 10_000;

export interface WriteOk {
  /** Causal context of the new version; pass it to a later write to supersede it. */
  context: string;
  consistency: ConsistencyReport;
}

export interface GetOk {
  found: boolean;
  /** Present when exactly one live version exists. */
  value?: Buffer;
  /** Present (2+ entries) when concurrent writes left siblings; resolve and write back with `context`. */
  siblings?: Buffer[];
  context: string;
  consistency: ConsistencyReport;
}

/** One row of a scan: a live key, its value or siblings, and its context (as a `get` answers). */
export interface ScanRowOk {
  /** The stored key bytes. */
  key: Buffer;
  value?: Buffer;
  siblings?: Buffer[];
  context: string;
}

export interface ScanOk {
  rows: ScanRowOk[];
  /** True when the reply byte bound stopped the scan before `limit` rows. */
  truncated: boolean;
  /** The scan has walked its whole turn of the ring: stop paging. */
  endOfRing: boolean;
  /** Present exactly when `endOfRing` is false: send it back (`scan` with `pagingState`) for the next page. */
  pagingState?: string;
  consistency: ConsistencyReport;
}

export interface ItemError {
  ok: false;
  code: ErrorCode;
  message: string;
  /** The request field at fault, for validation errors. */
  field?: string;
}

/**
 * Extra fields of a `too_large` answer to a `get` whose siblings do not fit in one frame: the
 * context (a put with it supersedes them all), the siblings that fit with nil in place of each
 * left out, the indexes left out, and every sibling's size in bytes.
 */
export interface TooLargeGetDetails {
  context: string;
  siblings: Array<Buffer | null>;
  omitted: number[];
  sizes: number[];
}

export type BatchItemResult = ({ ok: true } & WriteOk) | ({ ok: true } & GetOk) | ItemError;

interface ReplyBase {
  id: RequestId;
  ok: true;
  /** The answering node's ring digest; a client holding another digest should re-fetch the ring. */
  rv: string;
}
export type PutReply = ReplyBase & WriteOk;
export type DelReply = ReplyBase & WriteOk;
export type GetReply = ReplyBase & GetOk;
export type ScanReply = ReplyBase & ScanOk;
export type BatchReply = ReplyBase & { results: BatchItemResult[] };
export type RingReply = ReplyBase & {
  protocol: number;
  /** Id of the answering node ('' when the server was not told), so a client can verify where it connected. */
  node: string;
  limits: IpcLimits;
  /** Set (and `ring` omitted) when the request's digest is current; absent (never false) otherwise. */
  unchanged?: true;
  ring?: RingInfo;
};
export type StatusReply = ReplyBase & { status: unknown };

/** A JSON value of a result row (timestamps ISO text, blobs 0x… text, bigints beyond 2^53 decimal text). */
export type QueryValue = string | number | boolean | null;

/** The table a statement touched and its partition key columns: how a client routes the next one by partition key. */
export interface QueryRouting {
  table: string;
  partitionKey: Array<{ name: string; type: string }>;
}

/** A SELECT's page, or the acknowledgement of any other statement. */
export type QueryOk =
  | { kind: 'rows'; columns: string[]; rows: Array<Record<string, QueryValue>>; pagingState?: string; routing: QueryRouting }
  | { kind: 'applied'; applied: true; routing?: QueryRouting };
export type QueryReply = ReplyBase & QueryOk;

/**
 * A failed request. `id` is null for a connection-level error (bad frame, missing id); the server
 * closes the connection right after sending it.
 */
export interface ErrorReply extends Partial<TooLargeGetDetails> {
  id: RequestId | null;
  ok: false;
  code: ErrorCode;
  message: string;
  field?: string;
  /** crdt_update / crdt_get / define_table errors: the error's details (precondition, limit, outcome, ...). */
  details?: Record<string, unknown>;
  rv?: string;
}

export type IpcReply = PutReply | GetReply | ScanReply | BatchReply | RingReply | StatusReply | QueryReply | ErrorReply;

/** Loose shape every decoded reply has; narrowed by the client per op. */
export interface AnyReply {
  id: RequestId | null;
  ok: boolean;
  rv?: string;
  code?: ErrorCode;
  message?: string;
  field?: string;
  [k: string]: unknown;
}

export const ERROR_CODES: readonly ErrorCode[] = [
  'bad_request',
  'not_found',
  'too_large',
  'unavailable',
  'timeout',
  'overloaded',
  'not_owner',
  'conflict',
  'internal',
  'unauthorized',
];

export function isErrorCode(x: unknown): x is ErrorCode {
  return typeof x === 'string' && (ERROR_CODES as readonly string[]).includes(x);
}
