/**
 * Stored values are opaque bytes. How the HTTP API maps them to and from JSON:
 *
 * - **Writes** (`PUT /api/v1/store/{table}`) store the value's JSON text (UTF-8).
 * - **Reads** return, in this order of preference:
 *   1. the parsed JSON value, when the bytes are valid UTF-8 JSON text. Every value written over
 *      HTTP is, so HTTP writes round-trip exactly;
 *   2. the UTF-8 string, when the bytes are valid UTF-8 but not JSON. A string written raw through
 *      the IPC socket, the client or `ringkv put t k hello` reads back as `"hello"`;
 *   3. `{ "$base64": "..." }` otherwise (binary values written through IPC), so nothing is lost
 *      or mangled.
 *
 * Raw text that happens to be JSON (`ringkv put t k 42`, `ringkv put t k '{"a":1}'`) therefore
 * reads over HTTP as that JSON value (`42`, `{"a":1}`), exactly as if it had been written over HTTP.
 */
export function jsonToValueBytes(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function valueBytesToJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    // fatal: invalid UTF-8 must not be "repaired" with U+FFFD into some other, parseable value.
    text = utf8.decode(bytes);
  } catch {
    return { $base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
