/**
 * Partition key serialization: the bytes that are hashed for the token (xxh64, like a
 * key-value key) and stored in the partition's storage-key prefix.
 *
 *   one column:  the value's cell bytes (values.ts), e.g. '123' → 31 32 33
 *   composite:   per column, u16 BE length | value bytes | 00  (Cassandra's CompositeType)
 *
 * Unambiguous (every component is length-prefixed) and decodable with the schema, so a range
 * scan can render a partition's key columns from its storage key. A client routing by token
 * must serialize exactly this way (export it to the client with the schema).
 *
 * Pure module: no I/O.
 */
import type { CqlType } from '../cql/ast.js';
import { badRequest, RingkvError } from '../util/errors.js';
import { deserializeValue, serializeValue, type CqlValue } from './values.js';

/** Cassandra's bound on a partition key (its length travels as a u16). */
export const MAX_PARTITION_KEY_BYTES = 65535;

export interface KeyColumn {
  name: string;
  type: CqlType;
}

export function serializePartitionKey(cols: readonly KeyColumn[], values: readonly (CqlValue | null)[]): Uint8Array {
  if (values.length !== cols.length) throw badRequest(`the partition key has ${cols.length} columns, got ${values.length} values`);
  const parts: Uint8Array[] = [];
  for (let i = 0; i < cols.length; i++) {
    const c = cols[i]!;
    const v = values[i];
    if (v === null || v === undefined) throw badRequest(`Invalid null value in condition for column ${c.name}`, { column: c.name });
    const b = serializeValue(c.type, v);
    if (cols.length === 1 && b.length === 0) throw badRequest(`Key may not be empty ("${c.name}")`, { column: c.name });
    parts.push(b);
  }
  let out: Uint8Array;
  if (cols.length === 1) out = parts[0]!;
  else {
    let size = 0;
    for (const p of parts) size += 3 + p.length;
    const buf = Buffer.allocUnsafe(size);
    let pos = 0;
    for (const p of parts) {
      if (p.length > MAX_PARTITION_KEY_BYTES) break; // reported below
      buf.writeUInt16BE(p.length, pos);
      buf.set(p, pos + 2);
      buf[pos + 2 + p.length] = 0;
      pos += 3 + p.length;
    }
    out = buf;
  }
  if (out.length > MAX_PARTITION_KEY_BYTES) {
    throw new RingkvError('too_large', `partition key of ${out.length} bytes is larger than the ${MAX_PARTITION_KEY_BYTES} allowed`);
  }
  return out;
}

/** Inverse of serializePartitionKey; throws on bytes it cannot produce. */
export function deserializePartitionKey(cols: readonly KeyColumn[], b: Uint8Array): CqlValue[] {
  if (cols.length === 1) return [deserializeValue(cols[0]!.type, b)];
  const d = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  const out: CqlValue[] = [];
  let pos = 0;
  for (const c of cols) {
    if (pos + 2 > d.length) throw new Error('corrupt partition key: truncated component length');
    const len = d.readUInt16BE(pos);
    if (pos + 3 + len > d.length || d[pos + 2 + len] !== 0) throw new Error(`corrupt partition key: bad component for "${c.name}"`);
    out.push(deserializeValue(c.type, d.subarray(pos + 2, pos + 2 + len)));
    pos += 3 + len;
  }
  if (pos !== d.length) throw new Error('corrupt partition key: trailing bytes');
  return out;
}
