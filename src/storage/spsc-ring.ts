/**
 * A single-producer / single-consumer ring of byte messages in a SharedArrayBuffer: the data
 * channel between the router (main thread) and one shard actor, one ring per direction
 * (docs/architecture.md, "Router <-> shard channel"). One thread only ever writes, one only ever
 * reads, so two monotonic counters published with Atomics are all the synchronisation needed.
 *
 * Layout: a 64-byte header of Int32 words, then `capacity` data bytes (a power of two).
 *   HEAD  bytes ever written (published after the message bytes: release)
 *   TAIL  bytes ever consumed (published after the consumer is done with them)
 *   SLEEP 1 while the consumer is parked waiting for data (see `park` / `push`)
 *   WAKES how many times the producer had to notify a parked consumer (statistics)
 * Counters are uint32 and wrap; `used = (head - tail) mod 2^32` never exceeds capacity.
 *
 * A message is `len u32 LE | bytes`, padded to a multiple of 4. A message never wraps around the
 * end of the data area: when it does not fit before the end, the producer writes a PAD marker and
 * starts over at offset 0 (the rest of that lap is skipped). So the largest message is bounded
 * (`maxMessageBytes`, half the capacity), and a full ring refuses a push (`false`): the caller
 * keeps the message (its bounded overflow queue) or answers `overloaded`. Nothing is unbounded.
 *
 * Waking: the consumer announces it is about to sleep (SLEEP = 1), then checks HEAD once more
 * before it waits on SLEEP, so a producer that published before seeing SLEEP = 1 is never missed
 * (both sides use sequentially consistent Atomics: Dekker's pattern). The producer notifies only a
 * parked consumer, so a busy consumer costs it nothing but one Atomics.load per push.
 *
 * Pure module apart from Atomics on the shared buffer: no timers, no I/O.
 */

export const RING_HEADER_BYTES = 64;
const HEAD = 0;
const TAIL = 1;
const SLEEP = 2;
const WAKES = 3;
const PAD = 0xffffffff;

export class RingError extends Error {
  constructor(message: string) {
    super(`spsc ring: ${message}`);
  }
}

/** Bytes of SharedArrayBuffer for a ring of `capacity` data bytes. */
export function ringBufferBytes(capacity: number): number {
  return RING_HEADER_BYTES + capacity;
}

const align4 = (n: number): number => (n + 3) & ~3;

export class SpscRing {
  readonly capacity: number;
  /** The largest payload one message may carry. */
  readonly maxMessageBytes: number;
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  private readonly mask: number;

  /** A new ring over a fresh SharedArrayBuffer of ringBufferBytes(capacity). */
  static create(capacity: number): SpscRing {
    if (!Number.isInteger(capacity) || capacity < 64 || (capacity & (capacity - 1)) !== 0 || capacity > 2 ** 30) {
      throw new RingError(`capacity must be a power of two in [64, 2^30], got ${capacity}`);
    }
    return new SpscRing(new SharedArrayBuffer(ringBufferBytes(capacity)));
  }

  /** Attach to a ring another thread created (the buffer crosses by postMessage / workerData). */
  constructor(readonly buffer: SharedArrayBuffer) {
    const capacity = buffer.byteLength - RING_HEADER_BYTES;
    if (capacity < 64 || (capacity & (capacity - 1)) !== 0) throw new RingError(`buffer of ${buffer.byteLength} bytes is not a ring`);
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.maxMessageBytes = capacity / 2 - 8;
    this.ctl = new Int32Array(buffer, 0, RING_HEADER_BYTES / 4);
    this.data = new Uint8Array(buffer, RING_HEADER_BYTES, capacity);
    this.view = new DataView(buffer, RING_HEADER_BYTES, capacity);
  }

  /** Bytes in the ring not yet consumed (messages, headers and padding). */
  get usedBytes(): number {
    return (Atomics.load(this.ctl, HEAD) - Atomics.load(this.ctl, TAIL)) >>> 0;
  }

  /** How many times a push had to wake a parked consumer. */
  get wakes(): number {
    return Atomics.load(this.ctl, WAKES);
  }

  // --- producer side ------------------------------------------------------------------------

  /**
   * Append one message (the parts concatenated) and publish it. Returns false, writing nothing,
   * when it does not fit now (the ring is full); throws for a message over maxMessageBytes, which
   * could never fit. Wakes the consumer if it is parked.
   */
  push(...parts: Uint8Array[]): boolean {
    let len = 0;
    for (const p of parts) len += p.length;
    if (len > this.maxMessageBytes) throw new RingError(`message of ${len} bytes exceeds the ring's ${this.maxMessageBytes}-byte message bound`);
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    const free = this.capacity - ((head - tail) >>> 0);
    const need = 4 + align4(len);
    let at = head & this.mask;
    const toEnd = this.capacity - at;
    let skip = 0;
    if (need > toEnd) skip = toEnd; // pad the rest of this lap, start over at 0
    if (skip + need > free) return false;
    if (skip > 0) {
      this.view.setUint32(at, PAD, true);
      at = 0;
    }
    this.view.setUint32(at, len, true);
    let o = at + 4;
    for (const p of parts) {
      this.data.set(p, o);
      o += p.length;
    }
    Atomics.store(this.ctl, HEAD, (head + skip + need) | 0);
    if (Atomics.load(this.ctl, SLEEP) === 1) {
      Atomics.store(this.ctl, SLEEP, 0);
      Atomics.add(this.ctl, WAKES, 1);
      Atomics.notify(this.ctl, SLEEP);
    }
    return true;
  }

  // --- consumer side ------------------------------------------------------------------------

  /** Is there a published message not yet consumed? */
  get hasData(): boolean {
    return Atomics.load(this.ctl, HEAD) !== Atomics.load(this.ctl, TAIL);
  }

  /**
   * Hand every published message to `each`, in order, as a view into the ring valid only during
   * the call (copy what must outlive it); then release their space. Returns the message count.
   * A malformed length (a bug: both ends are this process) throws RingError.
   */
  drain(each: (msg: Uint8Array) => void): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    let tail = Atomics.load(this.ctl, TAIL) >>> 0;
    let n = 0;
    while (tail !== head) {
      const at = tail & this.mask;
      const len = this.view.getUint32(at, true);
      if (len === PAD) {
        tail = (tail + (this.capacity - at)) >>> 0;
        continue;
      }
      if (len > this.maxMessageBytes || at + 4 + len > this.capacity || ((head - tail) >>> 0) < 4 + align4(len)) {
        throw new RingError(`corrupt message header at ${at}: length ${len}`);
      }
      try {
        each(this.data.subarray(at + 4, at + 4 + len));
      } finally {
        tail = (tail + 4 + align4(len)) >>> 0;
        Atomics.store(this.ctl, TAIL, tail | 0);
      }
      n++;
    }
    return n;
  }

  /**
   * Announce that the consumer is about to wait. Returns false (and does not park) when data
   * arrived meanwhile: drain again. After true, wait on `sleepWord()` for value 1.
   */
  park(): boolean {
    Atomics.store(this.ctl, SLEEP, 1);
    if (this.hasData) {
      Atomics.store(this.ctl, SLEEP, 0);
      return false;
    }
    return true;
  }

  /** Leave the parked state without having been woken (e.g. a timeout, or shutting down). */
  unpark(): void {
    Atomics.store(this.ctl, SLEEP, 0);
  }

  /** The word (array, index) a parked consumer waits on while it holds 1. */
  sleepWord(): [Int32Array, number] {
    return [this.ctl, SLEEP];
  }

  /** Wake a parked consumer without data (shutdown, or a control message that needs a drain). */
  nudge(): void {
    Atomics.store(this.ctl, SLEEP, 0);
    Atomics.notify(this.ctl, SLEEP);
  }
}
