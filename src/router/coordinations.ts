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

/**
 * One live coordination (one object per op: its answer callback is the only closure), linked into
 * the registry's list of live entries in the order they began.
 */
class Entry {
  answered = false;
  prev: Entry | null = null;
  next: Entry | null = null;

  constructor(
    readonly id: number,
    readonly kind: CoordinationKind,
    readonly deadline: number,
    readonly done: (err: Error | null, result: never) => void,
  ) {}
}

export interface OverdueCoordination {
  kind: CoordinationKind;
  deadline: number;
  fail: (err: Error) => void;
}

/**
 * The live entries are an intrusive doubly linked list in begin order, not a Map by id: an op's
 * begin and answer are two pointer updates instead of a hash insert and delete (and the Map's
 * rehashing garbage) on the router's hot path; only the sweep and whenAnswered walk the list.
 */
export class LiveCoordinations {
  private head: Entry | null = null;
  private tail: Entry | null = null;
  private count = 0;
  private nextId = 0;
  /**
   * whenAnswered() callers, each with the newest id live at its call: ids rise in begin order, so a
   * barrier is done once the oldest live entry is newer than that. Empty almost always (checked per answer).
   */
  private barriers: Array<{ upTo: number; resolve: () => void }> = [];

  constructor(
    private readonly graceMs: number = OVERDUE_GRACE_MS,
    /** Told the number of live coordinations whenever it changes (the router's in-flight gauge). */
    private readonly onSize?: (size: number) => void,
  ) {
    invariant(Number.isInteger(graceMs) && graceMs >= 0, 'overdue grace must be a non-negative integer');
  }

  /** Coordinations started and not yet answered. */
  get size(): number {
    return this.count;
  }

  /**
   * Register a coordination that must answer by `deadline` (epoch ms). Returns the callback its
   * state machine answers through: the first call answers and unregisters, later calls are ignored
   * (the backstop may have answered first).
   */
  begin<T>(kind: CoordinationKind, deadline: number, done: (err: Error | null, result: T | undefined) => void): (err: Error | null, result: T | undefined) => void {
    invariant(Number.isFinite(deadline), 'a coordination needs a finite deadline');
    const e = new Entry(++this.nextId, kind, deadline, done as Entry['done']);
    e.prev = this.tail;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
    this.count++;
    this.onSize?.(this.count);
    return (err, result) => this.answer(e, err, result);
  }

  private answer(e: Entry, err: Error | null, result: unknown): void {
    if (e.answered) return;
    e.answered = true;
    // Unlink: an entry is answered once, so it is in the list until now.
    const linked = e.prev ? e.prev.next === e : this.head === e;
    // The message is built only on failure: a template literal here cost a string per answer.
    if (!linked) invariant(false, `coordination ${e.id} answered but was not registered`);
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = null;
    this.count--;
    this.onSize?.(this.count);
    if (this.barriers.length > 0) this.release();
    e.done(err, result as never);
  }

  /**
   * Resolves once every coordination registered now has answered (those begun later are not
   * waited for). Each has a deadline, and the backstop answers the overdue, so this settles.
   */
  whenAnswered(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    const upTo = this.tail!.id;
    return new Promise((resolve) => this.barriers.push({ upTo, resolve }));
  }

  private release(): void {
    const oldest = this.head?.id ?? Infinity;
    this.barriers = this.barriers.filter((b) => {
      if (oldest <= b.upTo) return true;
      b.resolve();
      return false;
    });
  }

  /** Entries past `deadline + graceMs` at `now`, oldest first; the caller answers each through `fail`. */
  overdue(now: number): OverdueCoordination[] {
    const out: OverdueCoordination[] = [];
    for (let e = this.head; e; e = e.next) if (now > e.deadline + this.graceMs) out.push({ kind: e.kind, deadline: e.deadline, fail: (err) => this.answer(e, err, undefined) });
    return out.sort((a, b) => a.deadline - b.deadline);
  }
}
