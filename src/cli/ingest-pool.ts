/**
 * `ringkv ingest --threads K`: the rows of a large NDJSON/CSV file are parsed (JSON.parse, CSV
 * fields) and their values encoded to stored bytes in a piscina pool of K threads, while the CLI's
 * thread only splits lines (and, for CSV, finds record boundaries with a scan that builds no
 * strings) and sends batches. Chunks are parsed in parallel but their rows come out in file order,
 * and at most 2K chunks are outstanding, so memory stays bounded.
 */
import { Piscina } from 'piscina';
import { csvHeaderOf, csvRecordOpen, parseCsvRecord, type CsvHeader, type Row } from './ingest-rows.js';

/** Lines or records per pool task. */
export const PARSE_CHUNK_UNITS = 2000;

export interface ParseChunk {
  format: 'ndjson' | 'csv';
  header: CsvHeader | null;
  lines: number[];
  texts: string[];
}

export interface ParsedChunk {
  lines: number[];
  keys: Array<string | null>;
  errors: Array<string | null>;
  /** Every row's value bytes back to back; row i's are [ends[i-1], ends[i]). */
  values: Uint8Array;
  ends: Uint32Array;
}

type Unit = { line: number; text: string; tooLong: boolean };

/** Rows of `src` (lines from the CLI's splitter), parsed by a pool of `threads` threads, in order. */
export async function* pooledRows(src: AsyncIterable<Unit>, format: 'ndjson' | 'csv', maxBytes: number, threads: number): AsyncGenerator<Row | { fatal: string }> {
  const pool = new Piscina<ParseChunk, ParsedChunk>({
    filename: new URL('../../workers/ingest-parse.js', import.meta.url).href,
    minThreads: threads,
    maxThreads: threads,
  });
  const inflight: Array<Promise<ParsedChunk>> = [];
  let header: CsvHeader | null = null;
  let lines: number[] = [];
  let texts: string[] = [];
  function* unpack(c: ParsedChunk): Generator<Row> {
    for (let i = 0; i < c.lines.length; i++) {
      const e = c.errors[i];
      if (e !== null && e !== undefined) yield { line: c.lines[i]!, error: e };
      else yield { line: c.lines[i]!, key: c.keys[i]!, value: c.values.subarray(i === 0 ? 0 : c.ends[i - 1]!, c.ends[i]!) };
    }
  }
  const dispatch = (): void => {
    if (lines.length === 0) return;
    inflight.push(pool.run({ format, header, lines, texts }));
    lines = [];
    texts = [];
  };
  try {
    let first = true;
    let pending: { line: number; text: string } | undefined;
    for await (const l of src) {
      // Rows decided here (too long, the header) keep their place: flush what is queued first.
      if (l.tooLong) {
        dispatch();
        while (inflight.length > 0) yield* unpack(await inflight.shift()!);
        yield { line: pending?.line ?? l.line, error: format === 'csv' ? `record is longer than ${maxBytes} bytes` : `line is longer than ${maxBytes} bytes` };
        pending = undefined;
        continue;
      }
      let text = l.text;
      let line = l.line;
      if (first && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      first = false;
      if (format === 'csv') {
        if (pending) {
          text = `${pending.text}\n${text}`;
          line = pending.line;
          if (Buffer.byteLength(text) > maxBytes) {
            dispatch();
            while (inflight.length > 0) yield* unpack(await inflight.shift()!);
            yield { line, error: `record is longer than ${maxBytes} bytes` };
            pending = undefined;
            continue;
          }
        }
        if (csvRecordOpen(text)) {
          pending = { line, text };
          continue;
        }
        pending = undefined;
        if (header === null) {
          const fields = parseCsvRecord(text)!;
          const h = csvHeaderOf(fields, line);
          if ('fatal' in h) {
            yield h;
            return;
          }
          header = h;
          continue;
        }
      }
      lines.push(line);
      texts.push(text);
      if (lines.length >= PARSE_CHUNK_UNITS) {
        dispatch();
        while (inflight.length >= 2 * threads) yield* unpack(await inflight.shift()!);
      }
    }
    dispatch();
    while (inflight.length > 0) yield* unpack(await inflight.shift()!);
    if (pending) yield { line: pending.line, error: 'unterminated quoted field at end of input' };
    if (format === 'csv' && header === null) yield { fatal: 'the input is empty: expected a CSV header line with "key" and "value" columns' };
  } finally {
    await Promise.allSettled(inflight);
    await pool.destroy();
  }
}
