/**
 * One coordinated CRDT read: ask the key's N target replicas for their states, answer once R
 * replied with the join of what they hold (no siblings, ever), then, once every replica answered or
 * the deadline passed, send the join to the replicas whose state differs from it (read repair,
 * per `readRepair`: async, blocking or off), each of which joins it with what it holds. The quorum,
 * deadline and repair timing are the shared skeleton of every read (quorum-read.ts).
 */
import { readEncoded, type CrdtValue } from '../crdt/index.js';
import { mergeStoredRecords } from '../storage/records.js';
import { RingkvError } from '../util/errors.js';
import type { NodeConfig } from '../config/config.js';
import type { ResolvedConsistency } from './consistency.js';
import type { CrdtDeps, CrdtReplicaIo } from './crdt-replicas.js';
import { QuorumReadCoordination } from './quorum-read.js';
import type { ConsistencyReport, Done, Replica } from './types.js';

export interface CrdtReadResult {
  /** False when no replica that answered holds the key; `value` is then the type's empty value. */
  found: boolean;
  value: CrdtValue;
  /** The token a later remove/disable passes back (sets, flags, maps). */
  context?: string;
  /** Bytes of the joined state as stored (what the key costs on each replica). */
  bytes: number;
  consistency: ConsistencyReport;
}

function sameBytes(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  return a === b || (a.length === b.length && Buffer.compare(a, b) === 0);
}

/** The answer for a joined state (null: nobody holds the key). */
export function crdtReadResult(io: CrdtReplicaIo, joined: Uint8Array | null, consistency: ConsistencyReport): CrdtReadResult {
  const { value, context } = readEncoded(io.table.type!, joined ?? undefined);
  const out: CrdtReadResult = { found: joined !== null, value, bytes: joined?.length ?? 0, consistency };
  if (context !== undefined) out.context = context;
  return out;
}

/** One coordinated CRDT read (the skeleton: quorum-read.ts). */
export class CrdtReadCoordination extends QuorumReadCoordination<Uint8Array, CrdtReadResult> {
  private readonly replies: Array<{ replica: Replica; state: Uint8Array | null }> = [];
  private joined: Uint8Array | null = null;

  constructor(
    private readonly d: CrdtDeps,
    private readonly io: CrdtReplicaIo,
    cons: ResolvedConsistency,
    targets: readonly Replica[],
    timeoutMs: number,
    repairMode: NodeConfig['readRepair'],
    done: Done<CrdtReadResult>,
  ) {
    super({ counters: d.router.counters, isUp: (r) => d.router.isUp(r), quorumError: (...a) => d.router.quorumError(...a) }, cons, targets, timeoutMs, repairMode, done);
  }

  protected readReplica(r: Replica, timeoutMs: number, cb: (err: Error | null, state: Uint8Array | null) => void): void {
    this.io.read(r, timeoutMs, cb);
  }

  protected accept(r: Replica, state: Uint8Array | null): boolean {
    if (state !== null) {
      try {
        this.joined = this.joined === null ? state : mergeStoredRecords('crdt', this.joined, state, 1);
      } catch (e) {
        // A state that does not decode (or is of another type) counts as a failed replica.
        this.io.log.warn({ err: String(e), replica: r.nodeId }, 'undecodable crdt state from a replica');
        return false;
      }
    }
    this.replies.push({ replica: r, state });
    return true;
  }

  protected result(consistency: ConsistencyReport): CrdtReadResult {
    try {
      return crdtReadResult(this.io, this.joined, consistency);
    } catch (e) {
      throw new RingkvError('internal', `cannot read the joined state: ${(e as Error).message}`);
    }
  }

  protected async repair(timeoutMs: number): Promise<void> {
    const joined = this.joined;
    if (joined === null || this.replies.length < 2) return;
    await Promise.all(
      this.replies
        .filter((x) => !sameBytes(x.state, joined))
        .map(
          (x) =>
            new Promise<void>((resolve) => {
              this.d.router.counters.readRepairs++;
              this.io.write(x.replica, joined, timeoutMs, (err) => {
                if (err) this.io.log.debug({ err: String(err), replica: x.replica.nodeId }, 'crdt read repair write failed');
                resolve();
              });
            }),
        ),
    );
  }
}
