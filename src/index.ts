// Package entry point (`import { RingkvClient } from 'ringkv'`): the client and its types. The node
// itself is started through the CLI (`ringkv start`), not imported.
export * from './client/index.js';
export { RingkvError, type ErrorCode } from './util/errors.js';
export { IPC_PROTOCOL_VERSION, type IpcLimits } from './api/ipc-protocol.js';
