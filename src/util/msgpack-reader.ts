/**
 * The pieces of a msgpack reader the hand-written decoders share (issue 12): the IPC fast path
 * (src/api/ipc-fast-decode.ts) and the record body reader (src/versions/record.ts). Each reads only
 * the shapes it expects and answers NOT_READ for anything else, so its caller can fall back to
 * msgpackr, which decides (and names) what is wrong. Pure: no I/O.
 */

/** A value this reader does not read: the caller falls back to the full decoder. */
export const NOT_READ = Symbol('not read');

export class MsgpackReader {
  readonly view: DataView;

  constructor(
    readonly b: Uint8Array,
    public pos = 0,
  ) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  /** An array header's element count (fix, 16- or 32-bit), or -1 (nothing consumed) when the next value is not an array. */
  arrayLength(): number {
    const b = this.b;
    const t = b[this.pos];
    if (t !== undefined && t >= 0x90 && t <= 0x9f) {
      this.pos++;
      return t & 0x0f;
    }
    if (t === 0xdc && this.pos + 3 <= b.length) {
      this.pos += 3;
      return this.view.getUint16(this.pos - 2);
    }
    if (t === 0xdd && this.pos + 5 <= b.length) {
      this.pos += 5;
      return this.view.getUint32(this.pos - 4);
    }
    return -1;
  }

  /** A map header's entry count (fix or 16-bit), or -1 (nothing consumed) when the next value is not such a map. */
  mapLength(): number {
    const b = this.b;
    const t = b[this.pos];
    if (t !== undefined && t >= 0x80 && t <= 0x8f) {
      this.pos++;
      return t & 0x0f;
    }
    if (t === 0xde && this.pos + 3 <= b.length) {
      this.pos += 3;
      return this.view.getUint16(this.pos - 2);
    }
    return -1;
  }

  /**
   * The value after tag byte `t` (already consumed) when it is nil, a bool or an unsigned int of at
   * most 32 bits (as msgpackr returns them); NOT_READ for any other tag or a truncated value.
   */
  basic(t: number): number | boolean | null | typeof NOT_READ {
    const b = this.b;
    if (t <= 0x7f) return t;
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xcc:
        return this.pos + 1 <= b.length ? b[this.pos++]! : NOT_READ;
      case 0xcd:
        if (this.pos + 2 > b.length) return NOT_READ;
        this.pos += 2;
        return this.view.getUint16(this.pos - 2);
      case 0xce:
        if (this.pos + 4 > b.length) return NOT_READ;
        this.pos += 4;
        return this.view.getUint32(this.pos - 4);
      default:
        return NOT_READ;
    }
  }

  /**
   * After bin tag `t` (0xc4, 0xc5, 0xc6; already consumed): the payload's length, with the header
   * consumed and the payload known to be there; -1 for another tag or a truncated bin.
   */
  binLength(t: number): number {
    const w = t === 0xc4 ? 1 : t === 0xc5 ? 2 : t === 0xc6 ? 4 : 0;
    if (w === 0 || this.pos + w > this.b.length) return -1;
    const n = w === 1 ? this.b[this.pos]! : w === 2 ? this.view.getUint16(this.pos) : this.view.getUint32(this.pos);
    this.pos += w;
    return this.pos + n <= this.b.length ? n : -1;
  }
}
