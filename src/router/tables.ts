import type { ConflictMode, QuorumMode, TableDefaults } from '../config/config.js';
import { xxh64Pair } from '../ring/hash.js';
import type { MetaStore } from '../storage/meta.js';
import { badRequest, RingkvError } from '../util/errors.js';

export interface TableDef {
  name: string;
  /** Derived from the name (xxh64, low 32 bits) so every node computes the same id with no coordination. */
  id: number;
  conflicts: ConflictMode;
  n: number;
  quorum: QuorumMode;
  createdAt: number;
}

export const TABLE_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function validateTableName(name: unknown): string {
  if (typeof name !== 'string' || !TABLE_NAME_RE.test(name)) {
    throw badRequest(`table name must match [A-Za-z0-9_-]{1,64}, got ${JSON.stringify(name)}`, { field: 'table' });
  }
  return name;
}

export function tableIdOf(name: string): number {
  return xxh64Pair(Buffer.from(name, 'utf8')).lo >>> 0;
}

export interface TableSettingsInput {
  conflicts?: unknown;
  n?: unknown;
  quorum?: unknown;
}

export function validateTableSettings(body: TableSettingsInput, defaults: TableDefaults): Omit<TableDef, 'name' | 'id' | 'createdAt'> {
  const conflicts = body.conflicts ?? defaults.conflicts;
  if (conflicts !== 'vclock' && conflicts !== 'lww') throw badRequest(`conflicts must be "vclock" or "lww", got ${JSON.stringify(body.conflicts)}`, { field: 'conflicts' });
  const n = body.n ?? defaults.n;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 5) throw badRequest(`n must be an integer between 1 and 5, got ${JSON.stringify(body.n)}`, { field: 'n' });
  const quorum = body.quorum ?? defaults.quorum;
  if (quorum !== 'sloppy' && quorum !== 'strict') throw badRequest(`quorum must be "sloppy" or "strict", got ${JSON.stringify(body.quorum)}`, { field: 'quorum' });
  return { conflicts, n, quorum };
}

/**
 * Table schemas, kept in the `meta` family. Tables are created on first use with the configured
 * defaults, or explicitly. Ids come from the name, so a table created independently on two nodes
 * gets the same id; a (vanishingly unlikely) id collision between two names is refused.
 */
export class TableRegistry {
  private readonly byName = new Map<string, TableDef>();
  private readonly idIndex = new Map<number, TableDef>();
  /** Called after a table is created or changed (the cluster layer gossips schemas). */
  onChange: ((t: TableDef) => void) | undefined;

  constructor(
    private readonly meta: MetaStore,
    private readonly defaults: TableDefaults,
  ) {}

  async load(): Promise<void> {
    for (const [, t] of await this.meta.list<TableDef>('table/')) this.remember(t);
  }

  private remember(t: TableDef): void {
    this.byName.set(t.name, t);
    this.idIndex.set(t.id, t);
  }

  get(name: string): TableDef | undefined {
    return this.byName.get(name);
  }

  /** The table with this id (storage keys carry ids, not names: anti-entropy maps them back). */
  byId(id: number): TableDef | undefined {
    return this.idIndex.get(id);
  }

  all(): TableDef[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  getOrCreate(name: string): TableDef {
    return this.byName.get(name) ?? this.define(name, {}, false);
  }

  /** Create or update a table's settings. */
  define(name: string, settings: TableSettingsInput, explicit: boolean): TableDef {
    validateTableName(name);
    const s = validateTableSettings(settings, this.defaults);
    const id = tableIdOf(name);
    const clash = this.idIndex.get(id);
    if (clash && clash.name !== name) throw new RingkvError('conflict', `table name ${name} collides with table ${clash.name} (id ${id}); choose another name`);
    const prev = this.byName.get(name);
    if (prev && prev.conflicts !== s.conflicts && explicit) {
      throw new RingkvError('conflict', `table ${name} already exists with conflicts=${prev.conflicts}; the conflict mode of an existing table cannot change`);
    }
    const def: TableDef = { name, id, ...s, createdAt: prev?.createdAt ?? Date.now() };
    this.meta.set(`table/${name}`, def);
    this.remember(def);
    this.onChange?.(def);
    return def;
  }

  /** Adopt a definition learned from a peer (last createdAt wins only when absent locally). */
  adopt(def: TableDef): void {
    const prev = this.byName.get(def.name);
    if (prev && prev.conflicts === def.conflicts && prev.n === def.n && prev.quorum === def.quorum) return;
    if (prev && prev.createdAt <= def.createdAt && prev.conflicts === def.conflicts) {
      // Same table; settings changed elsewhere later: take theirs.
    } else if (prev) {
      return;
    }
    this.meta.set(`table/${def.name}`, def);
    this.remember(def);
  }
}
