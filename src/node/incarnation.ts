/**
 * The actor id under which this node applies CRDT operations: its node id plus an *incarnation*.
 *
 * Why not the node id alone (docs/crdt.md, "Actor uniqueness"): an actor must never mint a dot or
 * raise its counter entry on a state that lacks its own earlier ones, or the new dot collides with
 * one other replicas already hold (a set add silently dropped) and the new counter total equals an
 * old one (an increment lost in the join's max). A node can lose its own acknowledged state:
 *  - after an unclean shutdown under `durability: periodic` (the last second of WAL may be gone);
 *  - when its data directory is wiped and it is restarted with the same `--node-id`.
 * A new incarnation is a new actor, so nothing it does can collide with what the lost one did.
 *
 * The incarnation is random (8 hex digits), not a counter: a wiped directory has no memory of the
 * previous counter. It is kept in the `meta` family with a "running" mark set at start and cleared
 * by a clean shutdown (after the shards have closed). A start that finds the mark still set under
 * `periodic` durability (a kill -9, a crash, a power cut) takes a new incarnation; under `sync`
 * every acknowledged write was fsynced first, so nothing was lost and the incarnation stays.
 *
 * Cost: each new incarnation adds one entry (~20 bytes) to every key the node coordinates an
 * update of afterwards, bounded by `crdt.maxActors` per key (then a replica already an actor
 * coordinates, see crdt-write.ts).
 */
import { randomBytes } from 'node:crypto';
import type { Durability } from '../config/config.js';
import type { MetaStore } from '../storage/meta.js';

const INCARNATION_KEY = 'crdt/incarnation';
const RUNNING_KEY = 'crdt/running';

export interface Incarnation {
  /** `nodeId@incarnation`: the CRDT actor id of this run. */
  actor: string;
  /** Why a new incarnation was taken, or null when the stored one was kept. */
  renewed: 'first start' | 'unclean shutdown' | null;
}

/** Decide this run's incarnation and mark the node running (fsynced, like every meta write). */
export function startIncarnation(meta: MetaStore, nodeId: string, durability: Durability): Incarnation {
  const stored = meta.get<string>(INCARNATION_KEY);
  const wasRunning = meta.get<boolean>(RUNNING_KEY) === true;
  let renewed: Incarnation['renewed'] = null;
  let inc = stored;
  if (typeof inc !== 'string' || inc === '') renewed = 'first start';
  else if (wasRunning && durability === 'periodic') renewed = 'unclean shutdown';
  if (renewed !== null) {
    inc = randomBytes(4).toString('hex');
    meta.set(INCARNATION_KEY, inc);
  }
  meta.set(RUNNING_KEY, true);
  return { actor: `${nodeId}@${inc!}`, renewed };
}

/** A clean shutdown: every write the shards acknowledged is in the WAL and synced. */
export function markCleanShutdown(meta: MetaStore): void {
  meta.set(RUNNING_KEY, false);
}
