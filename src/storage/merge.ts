/**
 * The one merge of stored values, by the table's conflict mode: what a replica holds under a key
 * and what arrives for it (a replica write, a hint replay, read repair, anti-entropy, a streamed
 * range) become the bytes the replica stores next.
 *
 *  - `vclock` / `lww`: version records (src/versions/record.ts), merged with `mergeVersions`;
 *  - `crdt`: states of a convergent data type (src/crdt), merged with the type's join
 *    (`joinEncoded`, which returns the stored bytes themselves when the incoming state adds
 *    nothing, so the caller can skip the write).
 *
 * Both encodings are canonical (equal contents, equal bytes), which is what lets Merkle trees
 * hash stored bytes and callers compare bytes to tell "changed" from "unchanged". A stored value
 * says which kind it is in its first byte (RECORD_FORMAT vs CRDT_STATE_FORMAT).
 *
 * The shard actor keeps its own decoded-versions path for vclock/lww (several writes to one key in
 * one group commit merge without re-encoding between them) and calls this for crdt; repair and
 * the CRDT coordinator call it for their modes.
 *
 * Pure module: no I/O, worker-safe.
 */
import type { ConflictMode } from '../config/config.js';
import { CRDT_STATE_FORMAT, decodeCrdt, joinEncoded } from '../crdt/index.js';
import { decodeRecord, encodeRecord, mergeVersions, versionsEqual } from '../versions/index.js';

/** True when stored bytes are a CRDT state rather than a version record. */
export function isCrdtState(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] === CRDT_STATE_FORMAT;
}

/**
 * `stored` (null: the key is absent here) merged with `incoming`. `changed` is false when the
 * result is exactly what is stored. Throws on bytes that are not of the mode's kind (a corrupt
 * record or state, or a mode that does not match what the key holds).
 */
export function mergeStored(mode: ConflictMode, stored: Uint8Array | null, incoming: Uint8Array, maxSiblings: number): { bytes: Uint8Array; changed: boolean } {
  if (mode === 'crdt') {
    if (stored === null) {
      decodeCrdt(incoming); // validated like any merge input: nothing undecodable is stored
      return { bytes: incoming, changed: true };
    }
    const bytes = joinEncoded(stored, incoming);
    return { bytes, changed: bytes !== stored };
  }
  const before = stored === null ? [] : decodeRecord(stored);
  const merged = mergeVersions(mode, before, decodeRecord(incoming), maxSiblings);
  if (stored !== null && versionsEqual(merged, before)) return { bytes: stored, changed: false };
  return { bytes: encodeRecord(merged), changed: true };
}
