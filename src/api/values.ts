/**
 * Stored values are opaque bytes. How the HTTP API maps them to and from JSON:
 *
 * - **Writes** (`PUT /api/v1/store/{table}`) store the value's JSON text (UTF-8).
 * - **Reads** return, in this order of preference:
 *   1. the parsed JSON value, when the bytes are valid UTF-8 JSON text nested at most
 *      `limits.maxJsonDepth` deep. Every value written over HTTP is, so HTTP writes round-trip
 *      exactly;
 *   2. the UTF-8 string, when the bytes are valid UTF-8 but not JSON (or JSON nested deeper than
 *      the bound). A string written raw through the IPC socket, the client or
 *      `ringkv put t k hello` reads back as `"hello"`;
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

/**
 * Decode UTF-8 strictly: null when the bytes are not valid UTF-8 (never "repaired" with U+FFFD,
 * which would make two different byte strings the same text).
 */
export function strictUtf8(bytes: Uint8Array): string | null {
  try {
    return utf8.decode(bytes);
  } catch {
    return null;
  }
}

const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * Is the deepest nesting of arrays/objects in this JSON text at most `maxDepth`? One pass over
 * the bytes without recursion (brackets inside strings do not count), stopping at the first level
 * past the bound. Works on invalid JSON too: it only bounds what a parser would have to nest.
 */
export function jsonDepthWithin(text: Uint8Array | string, maxDepth: number): boolean {
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i]!;
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      if (++depth > maxDepth) return false;
    } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) depth--;
  }
  return true;
}

/**
 * Stored bytes as HTTP shows them (see the top of this file). Never fails: JSON text nested
 * deeper than `maxJsonDepth` (possible only for values written over IPC; HTTP refuses such bodies)
 * is shown as its string rather than parsed, since rendering it would exhaust the stack.
 */
export function valueBytesToJson(bytes: Uint8Array, maxJsonDepth: number): unknown {
  const text = strictUtf8(bytes);
  if (text === null) return { $base64: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64') };
  if (!jsonDepthWithin(bytes, maxJsonDepth)) return text;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
