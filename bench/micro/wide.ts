/**
 * 6. Wide-column pure core: CQL parsing, write planning, clustering encoding, cell merge, and the
 * partition reader over one shard page.
 */
import { parseCql, type CreateTable } from '../../src/cql/index.js';
import {
  createTableSchema,
  deletionMapOf,
  encodeClustering,
  mergeCellRecords,
  planStatement,
  readRows,
  type PlanContext,
  type StoredEntry,
} from '../../src/wide/index.js';
import { runSuite, sink, type Row, type SuiteOptions } from './harness.js';

const INNER = 64;
const PAGE_ROWS = 1000;

export async function wideSuite(opts: SuiteOptions): Promise<Row[]> {
  const schema = createTableSchema(
    parseCql('CREATE TABLE ts (user text, t timestamp, event text, PRIMARY KEY (user, t)) WITH CLUSTERING ORDER BY (t DESC)') as CreateTable,
    undefined,
    { nowMs: 0, nodeId: 'bench' },
    { n: 3, gcGraceSeconds: 864000 },
  ).schema;
  const insertText = "INSERT INTO ts (user, t, event) VALUES ('user-0042', '2024-05-01T12:00:00Z', 'login') USING TTL 3600";
  const prepared = parseCql('INSERT INTO ts (user, t, event) VALUES (?, ?, ?)');
  const ctx = (i: number): PlanContext => ({ nowMs: 1.7e12, timestampMicros: 1.7e15 + i, params: ['user-0042', 1.7e12 + i, 'login'], timeuuid: () => new Uint8Array(16) });
  const page: StoredEntry[] = [];
  for (let i = 0; i < PAGE_ROWS; i++) {
    const p = planStatement(prepared, schema, ctx(i));
    if (p.kind === 'write') page.push(...p.partitions[0]!.entries);
  }
  page.sort((a, b) => Buffer.compare(a.suffix, b.suffix));
  const deletions = deletionMapOf([]);
  const records = page.map((e) => e.record);
  const cols = schema.clustering;
  return runSuite(
    'wide',
    [
      { name: 'parseCql INSERT (literal values, TTL)', opsPerCall: INNER, fn: () => { for (let i = 0; i < INNER; i++) sink.n ^= parseCql(insertText).kind.length; } },
      { name: 'plan prepared INSERT (marker + 1 cell)', opsPerCall: INNER, fn: () => { for (let i = 0; i < INNER; i++) sink.n ^= planStatement(prepared, schema, ctx(i)).kind.length; } },
      { name: 'encodeClustering timestamp DESC', opsPerCall: INNER, fn: () => { for (let i = 0; i < INNER; i++) sink.n ^= encodeClustering(cols, [1.7e12 + i]).length; } },
      { name: 'mergeCellRecords', opsPerCall: INNER, fn: () => { for (let i = 1; i <= INNER; i++) sink.n ^= mergeCellRecords(records[i - 1]!, records[i]!).length; } },
      {
        name: `readRows page of ${PAGE_ROWS} rows`,
        opsPerCall: PAGE_ROWS,
        note: 'one op = one row',
        fn: () => { let n = 0; for (const r of readRows(page, { schema, nowSec: 1.7e9, deletions })) n += r.cells.size; sink.n ^= n; },
      },
    ],
    opts,
  );
}
