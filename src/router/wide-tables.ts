/**
 * Wide-column table schemas on a node: kept in the `meta` family, converged with mergeSchemas
 * whatever order gossip (or a DDL push) delivers them in, and exposed to the rest of the node as
 * storage views (TableDef with conflicts `cell`) through TableRegistry's `others` hook.
 *
 * Storage identity: a wide-column table's storage id is the first 16 bytes of SHA-256 of its
 * incarnation key (name, generation, createdAt, createdBy; src/wide/schema.ts), not of its name,
 * so a table dropped and created again never shows the dropped incarnation's rows (Cassandra gives
 * each incarnation a new table id for the same reason). The key carries NUL separators, which no
 * key-value table name can, so the two kinds of ids never meet (short of a SHA-256 collision).
 * The rows of a dropped incarnation stay on disk, unread (no table id resolves to them), until a
 * cleanup removes them (not implemented: see docs/wide-column.md).
 */
import { RingkvError } from '../util/errors.js';
import type { MetaStore } from '../storage/meta.js';
import { decodeSchema, encodeSchema, incarnationKey, mergeSchemas, type SchemaDefaults, type WideTableSchema } from '../wide/schema.js';
import { tableIdBytes, tableIdOf, type OtherTables, type TableDef, type TableRegistry } from './tables.js';

const META_PREFIX = 'wide/';

/** The storage id (hex) of one incarnation of a wide-column table. */
export function wideTableIdOf(s: WideTableSchema): string {
  return tableIdOf(incarnationKey(s));
}

export class WideTableRegistry implements OtherTables {
  /** The converged schema of every name ever created here, dropped ones included (their drop must keep converging). */
  private readonly schemas = new Map<string, WideTableSchema>();
  /** Storage views of the live tables, by name and by id. */
  private readonly views = new Map<string, TableDef>();
  private readonly idIndex = new Map<string, TableDef>();
  /** Called after a schema changed here (the node gossips it and tells the shards the gc graces). */
  onChange: ((s: WideTableSchema) => void) | undefined;

  constructor(
    private readonly meta: MetaStore,
    private readonly kv: TableRegistry,
    readonly defaults: SchemaDefaults,
  ) {}

  async load(): Promise<void> {
    for (const [, text] of await this.meta.list<string>(META_PREFIX)) {
      const s = decodeSchema(text);
      this.remember(s);
    }
  }

  private remember(s: WideTableSchema): void {
    this.schemas.set(s.name, s);
    const prev = this.views.get(s.name);
    if (prev) {
      this.views.delete(s.name);
      this.idIndex.delete(prev.id);
    }
    if (s.dropped) return;
    const view: TableDef = { name: s.name, id: wideTableIdOf(s), conflicts: 'cell', n: s.n, quorum: 'strict', createdAt: s.createdAt, explicit: true, updatedAt: s.updatedAt };
    this.views.set(s.name, view);
    this.idIndex.set(view.id, view);
  }

  /** OtherTables: the storage view of the live table of this name. */
  get(name: string): TableDef | undefined {
    return this.views.get(name);
  }

  /** OtherTables: the storage view of the live table with this storage id (hex). */
  byId(id: string): TableDef | undefined {
    return this.idIndex.get(id);
  }

  /** The converged schema of the name (a dropped one too: check `dropped`). */
  schema(name: string): WideTableSchema | undefined {
    return this.schemas.get(name);
  }

  /** The live schema of `name`, or a 400 `unconfigured table` (Cassandra's message). */
  live(name: string): { schema: WideTableSchema; def: TableDef; tableId: Buffer } {
    const s = this.schemas.get(name);
    const def = this.views.get(name);
    if (!s || s.dropped || !def) throw new RingkvError('bad_request', `unconfigured table ${name}`, { table: name });
    return { schema: s, def, tableId: tableIdBytes(def) };
  }

  /** OtherTables: the storage views of every live table, by name. */
  all(): TableDef[] {
    return [...this.views.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Every schema, live or dropped. */
  allSchemas(): WideTableSchema[] {
    return [...this.schemas.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Merge a schema (a local DDL's, a peer's) into what this node holds; returns the converged one.
   * A new name that is a key-value table here is refused (one name space for both kinds).
   */
  apply(incoming: WideTableSchema): WideTableSchema {
    const prev = this.schemas.get(incoming.name);
    if (prev === undefined && this.kv.getKv(incoming.name)) {
      throw new RingkvError('conflict', `table ${incoming.name} is a key-value table; a wide-column table cannot take its name`, { table: incoming.name });
    }
    const merged = prev === undefined ? incoming : mergeSchemas(prev, incoming);
    const text = encodeSchema(merged);
    if (prev !== undefined && text === encodeSchema(prev)) return prev;
    this.meta.set(`${META_PREFIX}${merged.name}`, text);
    this.remember(merged);
    this.onChange?.(merged);
    return merged;
  }

  /** A schema as a peer sent it (gossip or a DDL push): validated, then merged. False when refused. */
  adoptEncoded(text: unknown): boolean {
    if (typeof text !== 'string') return false;
    let s: WideTableSchema;
    try {
      s = decodeSchema(text);
    } catch {
      return false;
    }
    try {
      this.apply(s);
      return true;
    } catch (e) {
      if (e instanceof RingkvError) return false;
      throw e;
    }
  }

  /** What gossip carries: every schema, encoded (deterministic text). */
  encodedAll(): string[] {
    return this.allSchemas().map(encodeSchema);
  }

  /** The gc grace of every live table, by storage id (the shards' sweep and repair use it). */
  graces(): Array<[string, number]> {
    return [...this.views.values()].map((v) => [v.id, this.schemas.get(v.name)!.gcGraceSeconds]);
  }

  /** The gc grace of the live table with this storage id, if it is one. */
  graceOf(id: string): number | undefined {
    const v = this.idIndex.get(id);
    return v ? this.schemas.get(v.name)!.gcGraceSeconds : undefined;
  }
}
