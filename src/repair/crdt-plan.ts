/**
 * Anti-entropy for crdt tables (issue 14): once both sides' stored states of the keys that differ
 * are in hand, which side must receive what. A state merges with its type's join, which is
 * idempotent, commutative and inflationary, so the join goes to whichever side does not already
 * hold exactly it; repeated sessions change nothing more once both hold the join. CRDT keys have
 * no tombstones, so nothing is held back as purgeable (the version plan's concern).
 *
 * Pure module: no I/O.
 */
import { joinEncoded } from '../crdt/index.js';
import { tableIdHexOfStorageKey, type RepairPolicy } from './plan.js';

/** What both sides store for one key of a crdt table; null = absent there. */
export interface CrdtKeyState {
  key: Uint8Array;
  local: Uint8Array | null;
  remote: Uint8Array | null;
}

export interface CrdtKeyAction {
  key: Uint8Array;
  /** The joined state to store (the receiver joins it again with what it holds: harmless). */
  state: Uint8Array;
}

export interface CrdtRepairPlan {
  toLocal: CrdtKeyAction[];
  toRemote: CrdtKeyAction[];
  /** Keys of tables this node does not know: left for a later session. */
  unknownTable: number;
  /** Both sides already hold the same state (the listing raced a write that made them so). */
  equal: number;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a === b || (a.length === b.length && Buffer.compare(a, b) === 0);
}

export function planCrdtKeyRepairs(states: readonly CrdtKeyState[], policy: Pick<RepairPolicy, 'modeOf' | 'localMayStore' | 'remoteMayStore'>): CrdtRepairPlan {
  const plan: CrdtRepairPlan = { toLocal: [], toRemote: [], unknownTable: 0, equal: 0 };
  for (const st of states) {
    const tableId = tableIdHexOfStorageKey(st.key);
    if (policy.modeOf(tableId) !== 'crdt') {
      plan.unknownTable++;
      continue;
    }
    const { local, remote } = st;
    if (local === null && remote === null) {
      plan.equal++;
      continue;
    }
    const joined = local === null ? remote! : remote === null ? local : joinEncoded(local, remote);
    const localStale = local === null || !sameBytes(joined, local);
    const remoteStale = remote === null || !sameBytes(joined, remote);
    if (!localStale && !remoteStale) {
      plan.equal++;
      continue;
    }
    if (localStale && policy.localMayStore(tableId)) plan.toLocal.push({ key: st.key, state: joined });
    if (remoteStale && policy.remoteMayStore(tableId)) plan.toRemote.push({ key: st.key, state: joined });
  }
  return plan;
}
