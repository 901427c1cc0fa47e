/**
 * Rows of `ringkv ingest` input, one NDJSON line or CSV record at a time (pure: used on the CLI's
 * thread and by the parse pool of `--threads`, workers/ingest-parse.ts).
 */

export interface Row {
  line: number;
  key?: string;
  value?: Uint8Array;
  error?: string;
}

export interface CsvHeader {
  key: number;
  value: number;
  width: number;
}

/** Stored bytes of a JSON value: strings raw UTF-8, {"$base64"} decoded, anything else as JSON text. */
export function jsonValueBytes(v: unknown): Uint8Array {
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '$base64') {
      const b = o['$base64'];
      if (typeof b !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b)) throw new Error('"$base64" must be a base64 string');
      return Buffer.from(b, 'base64');
    }
  }
  return Buffer.from(JSON.stringify(v), 'utf8');
}

function keyText(k: unknown): string {
  if (typeof k === 'string' && k.length > 0) return k;
  if (typeof k === 'number' && Number.isFinite(k)) return String(k);
  throw new Error('"key" must be a non-empty string');
}

/** RFC 4180 fields of one record; returns null while a quoted field is still open (record continues on the next line). */
export function parseCsvRecord(text: string): string[] | null {
  const fields: string[] = [];
  let i = 0;
  let field = '';
  let quoted = false;
  let atStart = true;
  while (i < text.length) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += ch;
      i++;
      continue;
    }
    if (ch === '"' && atStart) {
      quoted = true;
      atStart = false;
      i++;
      continue;
    }
    if (ch === ',') {
      fields.push(field);
      field = '';
      atStart = true;
      i++;
      continue;
    }
    field += ch;
    atStart = false;
    i++;
  }
  if (quoted) return null;
  fields.push(field);
  return fields;
}


/** One NDJSON line as a row; null for a blank line. (A leading BOM is the caller's to strip.) */
export function ndjsonRow(line: number, text: string): Row | null {
  if (text.trim() === '') return null; // blank lines carry no row
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (e) {
    return { line, error: `invalid JSON: ${(e as Error).message}` };
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) return { line, error: 'expected an object {"key": ..., "value": ...}' };
  const o = obj as Record<string, unknown>;
  try {
    if (!('value' in o)) throw new Error('"value" is missing');
    return { line, key: keyText(o['key']), value: jsonValueBytes(o['value']) };
  } catch (e) {
    return { line, error: (e as Error).message };
  }
}

/**
 * Does `text` end inside a quoted field (so the record continues on the next line)? The same
 * state machine as parseCsvRecord, without building the fields: the CLI's thread finds record
 * boundaries with it and leaves the fields to the parse pool.
 */
export function csvRecordOpen(text: string): boolean {
  let quoted = false;
  let atStart = true;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (quoted) {
      if (ch === 0x22) {
        if (text.charCodeAt(i + 1) === 0x22) i++;
        else quoted = false;
      }
      continue;
    }
    if (ch === 0x22 && atStart) {
      quoted = true;
      atStart = false;
    } else if (ch === 0x2c) atStart = true;
    else atStart = false;
  }
  return quoted;
}

/** The header record: where the key and value columns are, or a fatal error naming the line. */
export function csvHeaderOf(fields: string[], line: number): CsvHeader | { fatal: string } {
  const names = fields.map((f) => f.trim().toLowerCase());
  const key = names.indexOf('key');
  const value = names.indexOf('value');
  if (key < 0 || value < 0) return { fatal: `line ${line}: the CSV header must name a "key" and a "value" column, got ${JSON.stringify(fields)}` };
  return { key, value, width: fields.length };
}

/** A complete data record's fields as a row; null for a blank line. */
export function csvRow(line: number, fields: string[], header: CsvHeader): Row | null {
  if (fields.length === 1 && fields[0] === '') return null; // blank line
  if (fields.length !== header.width) return { line, error: `expected ${header.width} fields, got ${fields.length}` };
  const key = fields[header.key]!;
  if (key.length === 0) return { line, error: 'key is empty' };
  return { line, key, value: Buffer.from(fields[header.value]!, 'utf8') };
}
