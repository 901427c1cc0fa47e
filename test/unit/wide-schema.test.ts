import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseCql, type AlterTableAdd, type CreateTable, type DropTable } from '../../src/cql/index.js';
import {
  alterTableAddSchema,
  createTableSchema,
  decodeSchema,
  dropTableSchema,
  encodeSchema,
  incarnationKey,
  mergeSchemas,
  type WideTableSchema,
} from '../../src/wide/index.js';
import { RingkvError } from '../../src/util/errors.js';
import { thrown } from '../helpers/thrown.js';

const defaults = { n: 3, gcGraceSeconds: 864000 };
const clock = (nowMs: number, nodeId = 'n1') => ({ nowMs, nodeId });

function create(cql: string, previous?: WideTableSchema, nowMs = 1000): { schema: WideTableSchema; applied: boolean } {
  return createTableSchema(parseCql(cql) as CreateTable, previous, clock(nowMs), defaults);
}

function errorOf(f: () => unknown): RingkvError {
  return thrown(f, RingkvError);
}

describe('CREATE / ALTER / DROP TABLE', () => {
  it('builds a schema with key columns, clustering order, regular columns by name and options', () => {
    const { schema } = create('CREATE TABLE ev (b int, a text, c timestamp, z text, y blob, PRIMARY KEY ((a, b), c)) WITH CLUSTERING ORDER BY (c DESC) AND default_time_to_live = 60 AND n = 2');
    expect(schema).toMatchObject({
      name: 'ev',
      generation: 1,
      partitionKey: [
        { name: 'a', type: 'text' },
        { name: 'b', type: 'int' },
      ],
      clustering: [{ name: 'c', type: 'timestamp', order: 'desc' }],
      regular: [
        { name: 'y', type: 'blob' },
        { name: 'z', type: 'text' },
      ],
      defaultTtlSeconds: 60,
      n: 2,
      gcGraceSeconds: 864000,
      dropped: false,
    });
  });

  it("refuses what Cassandra refuses, with Cassandra's messages", () => {
    const cases: Array<[string, RegExp]> = [
      ['CREATE TABLE t (k int, k text, PRIMARY KEY (k))', /Multiple definition of identifier k/],
      ['CREATE TABLE t (k int, PRIMARY KEY (x))', /Unknown definition x referenced in PRIMARY KEY/],
      ['CREATE TABLE t (k counter, PRIMARY KEY (k))', /counter type is not supported for PRIMARY KEY column 'k'/],
      ['CREATE TABLE t (k int, c counter, v int, PRIMARY KEY (k))', /Cannot mix counter and non counter columns/],
      ['CREATE TABLE t (k int, a int, b int, PRIMARY KEY (k, a, b)) WITH CLUSTERING ORDER BY (b DESC, a ASC)', /must be the one of the clustering key/],
      ['CREATE TABLE t (k int, a int, PRIMARY KEY (k, a)) WITH CLUSTERING ORDER BY (k DESC)', /Only clustering key columns/],
      ['CREATE TABLE t (k int PRIMARY KEY) WITH compaction_x = 1', /Unknown property 'compaction_x'/],
      ['CREATE TABLE t (k int PRIMARY KEY) WITH n = 9', /n must be an integer between 1 and 5/],
      ['CREATE TABLE "bad-name" (k int PRIMARY KEY)', /table name must be 1-48 letters/],
      ['CREATE TABLE t (k int PRIMARY KEY, c counter) WITH default_time_to_live = 5', /default_time_to_live on a table with counters/],
    ];
    for (const [cql, re] of cases) expect(errorOf(() => create(cql)).message).toMatch(re);
  });

  it('IF NOT EXISTS leaves an existing table alone; without it the create conflicts; after a DROP the next generation starts', () => {
    const first = create('CREATE TABLE t (k int PRIMARY KEY, v text)').schema;
    expect(create('CREATE TABLE IF NOT EXISTS t (k int PRIMARY KEY)', first)).toEqual({ schema: first, applied: false });
    expect(errorOf(() => create('CREATE TABLE t (k int PRIMARY KEY)', first)).code).toBe('conflict');
    const dropped = dropTableSchema(parseCql('DROP TABLE t') as DropTable, first, clock(2000)).schema!;
    expect(dropped.dropped).toBe(true);
    expect(dropTableSchema(parseCql('DROP TABLE IF EXISTS t') as DropTable, dropped, clock(3000)).applied).toBe(false);
    expect(errorOf(() => dropTableSchema(parseCql('DROP TABLE t') as DropTable, dropped, clock(3000))).message).toBe('unconfigured table t');
    const again = create('CREATE TABLE t (k text PRIMARY KEY)', dropped, 4000).schema;
    expect(again.generation).toBe(2);
    expect(incarnationKey(again)).not.toBe(incarnationKey(first));
    expect(mergeSchemas(dropped, again)).toEqual(again);
  });

  it('ALTER TABLE ADD adds regular columns and refuses clashes', () => {
    const s = create('CREATE TABLE t (k int PRIMARY KEY, v text)').schema;
    const a = alterTableAddSchema(parseCql('ALTER TABLE t ADD (b int, a blob)') as AlterTableAdd, s, clock(5000));
    expect(a.regular.map((c) => c.name)).toEqual(['a', 'b', 'v']);
    expect(errorOf(() => alterTableAddSchema(parseCql('ALTER TABLE t ADD v int') as AlterTableAdd, s, clock(5000))).message).toMatch(/conflicts with an existing column/);
    expect(errorOf(() => alterTableAddSchema(parseCql('ALTER TABLE t ADD c counter') as AlterTableAdd, s, clock(5000))).message).toMatch(/Cannot mix counter/);
  });

  it('serializes deterministically and decodes only what it encodes', () => {
    const s = create("CREATE TABLE t (k int, c timeuuid, \"V\" text, PRIMARY KEY (k, c)) WITH CLUSTERING ORDER BY (c DESC)").schema;
    const text = encodeSchema(s);
    expect(decodeSchema(text)).toEqual(s);
    expect(encodeSchema(decodeSchema(text))).toBe(text);
    expect(() => decodeSchema(text.replace('"format":1', '"format":2'))).toThrow(/unknown format/);
    expect(() => decodeSchema(text.replace('"desc"', '"sideways"'))).toThrow(/order/);
    expect(() => decodeSchema(' ' + text)).toThrow(/canonical/);
    expect(() => decodeSchema('{')).toThrow(/not JSON/);
  });
});

describe('schema convergence', () => {
  const colArb = fc.record({ name: fc.constantFrom('a', 'b', 'c'), type: fc.constantFrom('int' as const, 'text' as const), addedAt: fc.integer({ min: 0, max: 2 }) });
  const schemaArb: fc.Arbitrary<WideTableSchema> = fc
    .record({
      generation: fc.integer({ min: 1, max: 2 }),
      createdAt: fc.integer({ min: 0, max: 2 }),
      createdBy: fc.constantFrom('n1', 'n2'),
      regular: fc.uniqueArray(colArb, { selector: (c) => c.name, maxLength: 3 }),
      n: fc.integer({ min: 1, max: 2 }),
      dropped: fc.boolean(),
      updatedAt: fc.integer({ min: 0, max: 3 }),
    })
    .map((r) => ({
      format: 1 as const,
      name: 't',
      generation: r.generation,
      createdAt: r.createdAt,
      createdBy: r.createdBy,
      partitionKey: [{ name: 'k', type: 'int' as const }],
      clustering: [],
      regular: [...r.regular].sort((x, y) => (x.name < y.name ? -1 : 1)),
      defaultTtlSeconds: 0,
      n: r.n,
      gcGraceSeconds: 10,
      dropped: r.dropped,
      updatedAt: r.updatedAt,
    }));
  const same = (a: WideTableSchema, b: WideTableSchema): boolean => encodeSchema(a) === encodeSchema(b);

  it('mergeSchemas is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(schemaArb, schemaArb, schemaArb, (a, b, c) => {
        expect(same(mergeSchemas(a, b), mergeSchemas(b, a))).toBe(true);
        expect(same(mergeSchemas(mergeSchemas(a, b), c), mergeSchemas(a, mergeSchemas(b, c)))).toBe(true);
        expect(same(mergeSchemas(a, a), a)).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });

  it('concurrent ALTER ADDs of one incarnation both survive; concurrent CREATEs keep the earliest', () => {
    const base = create('CREATE TABLE t (k int PRIMARY KEY)').schema;
    const x = alterTableAddSchema(parseCql('ALTER TABLE t ADD x int') as AlterTableAdd, base, clock(2000, 'n1'));
    const y = alterTableAddSchema(parseCql('ALTER TABLE t ADD y text') as AlterTableAdd, base, clock(2001, 'n2'));
    expect(mergeSchemas(x, y).regular.map((c) => c.name)).toEqual(['x', 'y']);
    const early = createTableSchema(parseCql('CREATE TABLE t (k int PRIMARY KEY)') as CreateTable, undefined, clock(10, 'n2'), defaults).schema;
    const late = createTableSchema(parseCql('CREATE TABLE t (k text PRIMARY KEY)') as CreateTable, undefined, clock(11, 'n1'), defaults).schema;
    expect(mergeSchemas(late, early)).toEqual(early);
  });
});
