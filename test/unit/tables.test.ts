import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { initHasher } from '../../src/ring/hash.js';
import { DEFAULT_CONFIG } from '../../src/config/config.js';
import { legacyTableIdOf, TABLE_NAME_RE, TableRegistry, tableDefSupersedes, tableIdBytes, tableIdOf, type TableDef } from '../../src/router/tables.js';
import type { MetaStore } from '../../src/storage/meta.js';

/** A MetaStore in memory (the registry only sets, gets and lists). */
function memMeta(initial: Record<string, unknown> = {}): MetaStore & { data: Map<string, unknown> } {
  const data = new Map<string, unknown>(Object.entries(initial));
  return {
    data,
    get: (k: string) => data.get(k),
    set: (k: string, v: unknown) => void data.set(k, structuredClone(v)),
    list: async (prefix: string) => [...data].filter(([k]) => k.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1)),
  } as unknown as MetaStore & { data: Map<string, unknown> };
}

const nameArb = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);

beforeAll(async () => {
  await initHasher(); // the format-1 id is xxh64
});

const defArb = fc.record({
  name: fc.constant('t'),
  id: fc.constant('01'.repeat(16)),
  conflicts: fc.constantFrom('vclock' as const, 'lww' as const),
  n: fc.integer({ min: 1, max: 5 }),
  quorum: fc.constantFrom('sloppy' as const, 'strict' as const),
  createdAt: fc.integer({ min: 1, max: 5 }),
  explicit: fc.boolean(),
  updatedAt: fc.integer({ min: 1, max: 5 }),
});

/** What a node ends with after adopting `defs` in this order (adopt = replace when superseded). */
function settle(defs: TableDef[]): TableDef {
  let cur = defs[0]!;
  for (const d of defs.slice(1)) if (tableDefSupersedes(cur, d)) cur = d;
  return cur;
}

describe('table definitions from gossip', () => {
  it('converge to the same definition whatever the delivery order', () => {
    fc.assert(
      fc.property(fc.array(defArb, { minLength: 1, maxLength: 6 }), fc.infiniteStream(fc.nat()), (defs, seeds) => {
        const winner = settle(defs);
        for (let k = 0; k < 4; k++) {
          const shuffled = defs.map((d) => [seeds.next().value as number, d] as const).sort((a, b) => a[0] - b[0]).map(([, d]) => d);
          expect(settle(shuffled)).toEqual(winner);
        }
      }),
    );
  });

  it('an explicit definition beats one created on first use; the earlier creation keeps its conflict mode', () => {
    const base: TableDef = { name: 't', id: '01'.repeat(16), conflicts: 'vclock', n: 3, quorum: 'sloppy', createdAt: 10 };
    expect(tableDefSupersedes(base, { ...base, conflicts: 'lww', explicit: true, createdAt: 20 })).toBe(true);
    expect(tableDefSupersedes({ ...base, explicit: true }, { ...base, conflicts: 'lww', createdAt: 5 })).toBe(false);
    expect(tableDefSupersedes(base, { ...base, conflicts: 'lww', createdAt: 20 })).toBe(false);
    expect(tableDefSupersedes(base, { ...base, conflicts: 'lww', createdAt: 5 })).toBe(true);
    expect(tableDefSupersedes(base, { ...base, n: 5, updatedAt: 30 })).toBe(true);
    expect(tableDefSupersedes(base, base)).toBe(false);
  });
});

describe('table ids (issue 10 item 3)', () => {
  it('property: the id is the first 16 bytes of SHA-256 of the name, and distinct names get distinct ids', () => {
    fc.assert(
      fc.property(nameArb, nameArb, (a, b) => {
        expect(TABLE_NAME_RE.test(a)).toBe(true);
        const id = tableIdOf(a);
        expect(id).toMatch(/^[0-9a-f]{32}$/);
        expect(id).toBe(createHash('sha256').update(Buffer.from(a, 'utf8')).digest('hex').slice(0, 32));
        expect(tableIdOf(a)).toBe(id); // deterministic: every node computes the same id
        if (a !== b) expect(tableIdOf(b)).not.toBe(id);
      }),
      { numRuns: 2000 },
    );
  });

  it('the colliding pair from the issue: one format-1 id, two current ids', () => {
    expect(legacyTableIdOf('cfyd')).toBe(legacyTableIdOf('c161t'));
    expect(tableIdOf('cfyd')).not.toBe(tableIdOf('c161t'));
    // Nor do they share a prefix that storage keys could confuse.
    expect(tableIdBytes({ ...new TableRegistry(memMeta(), DEFAULT_CONFIG.tables).draft('cfyd') }).equals(Buffer.from(tableIdOf('c161t'), 'hex'))).toBe(false);
  });

  it('a registry refuses a name whose id another known table has: define, draft (reads, scans) and adopt', () => {
    const weak = (name: string): string => legacyTableIdOf(name).toString(16).padStart(32, '0');
    const reg = new TableRegistry(memMeta(), DEFAULT_CONFIG.tables, weak);
    reg.define('cfyd', {}, false);
    const msg = /table name c161t collides with existing table cfyd/;
    expect(() => reg.define('c161t', {}, true)).toThrow(msg);
    expect(() => reg.draft('c161t')).toThrow(msg);
    expect(() => reg.forRead('c161t')).toThrow(msg);
    expect(() => reg.getOrCreate('c161t')).toThrow(msg);
    reg.adopt({ name: 'c161t', id: weak('c161t'), conflicts: 'lww', n: 3, quorum: 'sloppy', createdAt: 1, explicit: true });
    expect(reg.get('c161t')).toBeUndefined();
    expect(reg.forRead('cfyd').name).toBe('cfyd');
    // With the real ids both exist side by side.
    const real = new TableRegistry(memMeta(), DEFAULT_CONFIG.tables);
    real.define('cfyd', {}, false);
    real.define('c161t', {}, false);
    expect(real.byId(tableIdOf('c161t'))?.name).toBe('c161t');
    expect(real.byId(tableIdOf('cfyd'))?.name).toBe('cfyd');
  });

  it('load() gives definitions stored by format 1 (numeric ids) their current id, and stores it', async () => {
    const meta = memMeta({ 'table/users': { name: 'users', id: 0x1234, conflicts: 'lww', n: 2, quorum: 'strict', createdAt: 5 } });
    const reg = new TableRegistry(meta, DEFAULT_CONFIG.tables);
    await reg.load();
    expect(reg.get('users')).toMatchObject({ id: tableIdOf('users'), conflicts: 'lww', n: 2, quorum: 'strict', createdAt: 5 });
    expect((meta.data.get('table/users') as TableDef).id).toBe(tableIdOf('users'));
    // A gossiped definition with a format-1 id is not adopted (its sender routes by other ids).
    reg.adopt({ name: 'events', id: 77 as unknown as string, conflicts: 'vclock', n: 3, quorum: 'sloppy', createdAt: 1, explicit: true });
    expect(reg.get('events')).toBeUndefined();
  });
});

describe('crdt tables (issue 14)', () => {
  it('a crdt table needs a type, only crdt tables take one, and the type travels in the definition', () => {
    const reg = new TableRegistry(memMeta(), DEFAULT_CONFIG.tables);
    expect(() => reg.define('likes', { conflicts: 'crdt' }, true)).toThrow(/a crdt table needs a type/);
    expect(() => reg.define('likes', { conflicts: 'crdt', type: 'bag' }, true)).toThrow(/needs a type: one of "counter", "set", "map", "register", "flag", got "bag"/);
    expect(() => reg.define('plain', { conflicts: 'lww', type: 'counter' }, true)).toThrow(/type applies to crdt tables only/);
    expect(() => reg.define('x', { conflicts: 'crdts' }, true)).toThrow(/conflicts must be "vclock", "lww" or "crdt"/);
    expect(reg.get('likes')).toBeUndefined();
    const def = reg.define('likes', { conflicts: 'crdt', type: 'counter', n: 2 }, true);
    expect(def).toMatchObject({ conflicts: 'crdt', type: 'counter', n: 2 });
    expect(JSON.parse(JSON.stringify(def))).toEqual(def); // as gossip carries it
    // A vclock definition has no type key at all (not `type: undefined`).
    expect('type' in reg.define('plain', { conflicts: 'vclock' }, true)).toBe(false);
  });

  it('the conflict mode and the type of an existing table cannot change; n and quorum can', () => {
    const reg = new TableRegistry(memMeta(), DEFAULT_CONFIG.tables);
    reg.define('likes', { conflicts: 'crdt', type: 'counter' }, true);
    expect(() => reg.define('likes', { conflicts: 'crdt', type: 'set' }, true)).toThrow(/already exists with conflicts=crdt, type=counter/);
    expect(() => reg.define('likes', { conflicts: 'vclock' }, true)).toThrow(/cannot change/);
    expect(reg.define('likes', { conflicts: 'crdt', type: 'counter', quorum: 'strict' }, true)).toMatchObject({ type: 'counter', quorum: 'strict' });
    // A table first used as vclock cannot be redefined as crdt (its keys hold version records).
    reg.getOrCreate('used');
    expect(() => reg.define('used', { conflicts: 'crdt', type: 'counter' }, true)).toThrow(/already exists with conflicts=vclock/);
  });

  it('gossip: an explicit crdt definition supersedes a first-use one; a malformed crdt definition is not adopted', () => {
    const reg = new TableRegistry(memMeta(), DEFAULT_CONFIG.tables);
    reg.getOrCreate('likes');
    const base = { name: 'likes', id: tableIdOf('likes'), n: 3, quorum: 'sloppy' as const, createdAt: 1, explicit: true };
    reg.adopt({ ...base, conflicts: 'crdt' }); // no type
    expect(reg.get('likes')?.conflicts).toBe('vclock');
    reg.adopt({ ...base, conflicts: 'lww', type: 'counter' });
    expect(reg.get('likes')?.conflicts).toBe('vclock');
    reg.adopt({ ...base, conflicts: 'crdt', type: 'set' });
    expect(reg.get('likes')).toMatchObject({ conflicts: 'crdt', type: 'set' });
  });
});
