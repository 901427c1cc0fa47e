/**
 * UUIDs for CQL: text ⇄ 16 bytes, version-1 (time-based) generation for `now()`, and the time a
 * timeuuid carries.
 *
 * A v1 uuid holds a 60-bit count of 100-ns intervals since 1582-10-15 (the Gregorian reform),
 * split into time_low (bytes 0-3), time_mid (4-5) and time_hi (6-7, under the version nibble),
 * then a 14-bit clock sequence and a 48-bit node. The generator is monotonic within a process:
 * two calls in the same millisecond get successive 100-ns ticks (10,000 per ms), as Cassandra's
 * UUIDGen does, so `now()` values written by one coordinator sort in issue order.
 *
 * The clock and the randomness are injected, so the generator is deterministic in tests.
 */
import { randomBytes } from 'node:crypto';
import { invariant } from '../util/errors.js';

const UUID_TEXT_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** 100-ns intervals between 1582-10-15T00:00Z and the Unix epoch. */
const GREGORIAN_OFFSET_100NS = 122_192_928_000_000_000n;

export function isUuidText(s: string): boolean {
  return UUID_TEXT_RE.test(s);
}

export function uuidToBytes(s: string): Uint8Array {
  invariant(UUID_TEXT_RE.test(s), `not a uuid: ${s}`);
  return Buffer.from(s.replace(/-/g, ''), 'hex');
}

export function uuidFromBytes(b: Uint8Array): string {
  invariant(b.length === 16, `a uuid has 16 bytes, got ${b.length}`);
  const h = Buffer.from(b.buffer, b.byteOffset, 16).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The version nibble of a uuid's bytes. */
export function uuidVersion(b: Uint8Array): number {
  return b[6]! >> 4;
}

/** The 60-bit timestamp (100-ns since 1582-10-15) of a v1 uuid. */
export function timeuuidTicks(b: Uint8Array): bigint {
  const d = Buffer.from(b.buffer, b.byteOffset, 16);
  const low = BigInt(d.readUInt32BE(0));
  const mid = BigInt(d.readUInt16BE(4));
  const hi = BigInt(d.readUInt16BE(6) & 0x0fff);
  return (hi << 48n) | (mid << 32n) | low;
}

/** Unix milliseconds of a v1 uuid (`toTimestamp(timeuuid)`). */
export function timeuuidToMillis(b: Uint8Array): number {
  return Number((timeuuidTicks(b) - GREGORIAN_OFFSET_100NS) / 10_000n);
}

/** A v1 uuid from a tick count, clock sequence and node (the layout of RFC 4122 §4.1). */
export function makeTimeuuid(ticks: bigint, clockSeq: number, node: Uint8Array): Uint8Array {
  invariant(ticks >= 0n && ticks < 1n << 60n, 'timeuuid ticks out of range');
  invariant(node.length === 6, 'a timeuuid node has 6 bytes');
  const out = Buffer.alloc(16);
  out.writeUInt32BE(Number(ticks & 0xffffffffn), 0);
  out.writeUInt16BE(Number((ticks >> 32n) & 0xffffn), 4);
  out.writeUInt16BE(Number((ticks >> 48n) & 0x0fffn) | 0x1000, 6);
  out[8] = 0x80 | ((clockSeq >> 8) & 0x3f); // RFC 4122 variant 10xx
  out[9] = clockSeq & 0xff;
  out.set(node, 10);
  return out;
}

export interface TimeuuidGeneratorOptions {
  /** Unix ms now. */
  nowMs?: () => number;
  /** Random bytes (node id and clock sequence). */
  random?: (n: number) => Uint8Array;
}

/** Monotonic v1 uuid generator (`now()`); one per process is enough. */
export class TimeuuidGenerator {
  private readonly nowMs: () => number;
  private readonly node: Uint8Array;
  private readonly clockSeq: number;
  private lastTicks = -1n;

  constructor(opts: TimeuuidGeneratorOptions = {}) {
    this.nowMs = opts.nowMs ?? Date.now;
    const random = opts.random ?? ((n: number) => randomBytes(n));
    const r = random(8);
    // A random node id has the multicast bit set (RFC 4122 §4.5): it can't collide with a MAC.
    this.node = Uint8Array.from(r.subarray(0, 6));
    this.node[0] = this.node[0]! | 0x01;
    this.clockSeq = ((r[6]! << 8) | r[7]!) & 0x3fff;
  }

  next(): Uint8Array {
    let ticks = BigInt(Math.floor(this.nowMs())) * 10_000n + GREGORIAN_OFFSET_100NS;
    // Same (or an earlier) millisecond as the last uuid: take the next 100-ns tick.
    if (ticks <= this.lastTicks) ticks = this.lastTicks + 1n;
    this.lastTicks = ticks;
    return makeTimeuuid(ticks, this.clockSeq, this.node);
  }
}

/** A random (v4) uuid, for `uuid()`. */
export function randomUuid(random: (n: number) => Uint8Array = (n) => randomBytes(n)): Uint8Array {
  const b = Uint8Array.from(random(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  return b;
}
