// The embeddable client: token-aware, pipelined access to a ringkv node over its IPC socket.
export {
  RingkvClient,
  ClientRing,
  type ClientOptions,
  type ConnectTarget,
  type PutOptions,
  type GetOptions,
  type DeleteOptions,
  type ConsistencyOptions,
  type WriteResult,
  type GetResult,
  type ClientBatchItem,
  type BatchItemResult,
  type ConsistencyLevel,
  type ConsistencyReport,
  type IpcKey,
  type RingInfo,
} from './client.js';
