/**
 * `b` itself when it spans its whole ArrayBuffer, else an exact copy. Use before structured
 * cloning bytes to another thread: a clone copies a view's *whole* backing ArrayBuffer (a decoded
 * socket chunk, or Node's 8 KiB Buffer pool slab), and pins it on the other side.
 */
export function detachedBytes(b: Uint8Array): Uint8Array {
  if (b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer)) return b;
  const out = new Uint8Array(b.byteLength);
  out.set(b);
  return out;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Does `s` have an exact UTF-8 form? A lone UTF-16 surrogate (e.g. from a JSON `"\ud800"` escape)
 * has none: encoding it substitutes U+FFFD, so different strings would become the same bytes.
 * (String.prototype.isWellFormed, which is not in our ES2022 lib typings.)
 */
export function isWellFormedText(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** `u` as a Buffer without copying (bytes posted between threads arrive as plain Uint8Arrays). */
export function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}
