/**
 * Stored values are opaque bytes. The HTTP API speaks JSON, so it stores a value as its JSON text
 * (UTF-8) and parses it back on reads. Bytes that are not JSON (written as binary through the IPC
 * socket) come back over HTTP as `{ "$base64": "..." }` so nothing is ever lost or mangled.
 */
export function jsonToValueBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

export function valueBytesToJson(bytes: Uint8Array): unknown {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    return { $base64: buf.toString('base64') };
  }
}
