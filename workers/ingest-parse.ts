/**
 * A piscina task of `ringkv ingest --threads K` (src/cli/ingest-pool.ts): parse one chunk of NDJSON
 * lines or CSV records into rows and encode their values as the bytes to store. The values come back
 * packed in one transferred buffer (offsets beside it): a Buffer per value would be cloned with the
 * whole 8 KiB allocation pool it is a view of.
 */
import { csvRow, ndjsonRow, parseCsvRecord, type CsvHeader, type Row } from '../src/cli/ingest-rows.js';
import type { ParseChunk, ParsedChunk } from '../src/cli/ingest-pool.js';

export default function parseChunk(task: ParseChunk): ParsedChunk {
  const rows: Row[] = [];
  for (let i = 0; i < task.lines.length; i++) {
    const line = task.lines[i]!;
    const text = task.texts[i]!;
    let row: Row | null;
    if (task.format === 'ndjson') row = ndjsonRow(line, text);
    else {
      const fields = parseCsvRecord(text);
      row = fields === null ? { line, error: 'unterminated quoted field' } : csvRow(line, fields, task.header as CsvHeader);
    }
    if (row) rows.push(row);
  }
  let total = 0;
  for (const r of rows) total += r.value?.length ?? 0;
  const values = new Uint8Array(total);
  const ends = new Uint32Array(rows.length);
  let o = 0;
  for (let i = 0; i < rows.length; i++) {
    const v = rows[i]!.value;
    if (v) {
      values.set(v, o);
      o += v.length;
    }
    ends[i] = o;
  }
  return {
    lines: rows.map((r) => r.line),
    keys: rows.map((r) => r.key ?? null),
    errors: rows.map((r) => r.error ?? null),
    values,
    ends,
  };
}
