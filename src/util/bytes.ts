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
