/**
 * The registry of live coordinations: every read, write, scan and blind delete the router
 * coordinates is registered from its start until its answer, with its deadline.
 *
 * Each coordination carries its own deadline timer, so an entry should never outlive its deadline
 * by more than a timer's slack. The registry is the backstop that makes this an enforced invariant
 * rather than a hope: `overdue(now)` returns the entries past their deadline plus `graceMs`, the
 * router answers them itself (`timeout`), logs the bug and counts it. A request can then never hang
 * a client or burn a core past its deadline, whatever a coordination's state machine does wrong
 * (issue 10 item 1: a delete of a never-written key looped read -> delete -> read forever).
 *
 * Pure: no timers here; the caller passes the time and runs the sweep (src/router/router.ts).
 */
import { invariant } from '../util/errors.js';

export type CoordinationKind = 'read' | 'write' | 'delete' | 'scan' | 'crdt-update' | 'crdt-read';

/** How late past its deadline a coordination may answer before the backstop answers for it. */
export const OVERDUE_GRACE_MS = 1000;

/** One live coordination (one object per op: its answer callback is the only closure). */
interface Entry {
  id: number;
  kind: CoordinationKind;
  deadline: number;
  answered: boolean;
  done: (err: Error | null, result: never) => void;
}

export interface OverdueCoordination {
  kind: CoordinationKind;
  deadline: number;
  fail: (err: Error) => void;
}

export class LiveCoordinations {
  private readonly live = new Map<number, Entry>();
  private nextId = 0;
  /** whenAnswered() callers: the ids each still waits for. Empty almost always (checked per answer). */
  private barriers: Array<{ waiting: Set<number>; resolve: () => void }> = [];

  constructor(
    private readonly graceMs: number = OVERDUE_GRACE_MS,
    /** Told the number of live coordinations whenever it changes (the router's in-flight gauge). */
    private readonly onSize?: (size: number) => void,
  ) {
    invariant(Number.isInteger(graceMs) && graceMs >= 0, 'overdue grace must be a non-negative integer');
  }

  /** Coordinations started and not yet answered. */
  get size(): number {
    return this.live.size;
  }

  /**
   * Register a coordination that must answer by `deadline` (epoch ms). Returns the callback its
   * state machine answers through: the first call answers and unregisters, later calls are ignored
   * (the backstop may have answered first).
   */
  begin<T>(kind: CoordinationKind, deadline: number, done: (err: Error | null, result: T | undefined) => void): (err: Error | null, result: T | undefined) => void {
    invariant(Number.isFinite(deadline), 'a coordination needs a finite deadline');
    const e: Entry = { id: ++this.nextId, kind, deadline, answered: false, done: done as Entry['done'] };
    this.live.set(e.id, e);
    this.onSize?.(this.live.size);
    return (err, result) => this.answer(e, err, result);
  }

  private answer(e: Entry, err: Error | null, result: unknown): void {
    if (e.answered) return;
    e.answered = true;
    const had = this.live.delete(e.id);
    // The message is built only on failure: a template literal here cost a string per answer.
    if (!had) invariant(false, `coordination ${e.id} answered but was not registered`);
    this.onSize?.(this.live.size);
    if (this.barriers.length > 0) this.release(e.id);
    e.done(err, result as never);
  }

  /**
   * Resolves once every coordination registered now has answered (those begun later are not
   * waited for). Each has a deadline, and the backstop answers the overdue, so this settles.
   */
  whenAnswered(): Promise<void> {
    if (this.live.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.barriers.push({ waiting: new Set(this.live.keys()), resolve }));
  }

  private release(id: number): void {
    this.barriers = this.barriers.filter((b) => {
      b.waiting.delete(id);
      if (b.waiting.size > 0) return true;
      b.resolve();
      return false;
    });
  }

  /** Entries past `deadline + graceMs` at `now`, oldest first; the caller answers each through `fail`. */
  overdue(now: number): OverdueCoordination[] {
    const out: OverdueCoordination[] = [];
    for (const e of this.live.values()) if (now > e.deadline + this.graceMs) out.push({ kind: e.kind, deadline: e.deadline, fail: (err) => this.answer(e, err, undefined) });
    return out.sort((a, b) => a.deadline - b.deadline);
  }
}
