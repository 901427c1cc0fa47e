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
  /** Defined by `PUT /api/v1/tables/{t}` (else created on first use with the defaults). */
  explicit?: boolean;
  /** When these settings were last set (ms); absent in definitions stored before it existed. */
  updatedAt?: number;
}

/**
 * Which of two definitions of one table every node keeps, so schemas converge whatever order
 * gossip delivers them in. A lexicographic (hence total, transitive) order:
 *  1. an explicit definition beats one created on first use;
 *  2. the earlier creation wins (it defined how the first data was written; once gossip has
 *     converged every node holds the same createdAt, since updates keep it);
 *  3. then the later update; ties break on the serialized settings.
 * Returns true when `b` should replace `a`.
 */
export function tableDefSupersedes(a: TableDef, b: TableDef): boolean {
  const ea = a.explicit === true;
  const eb = b.explicit === true;
  if (ea !== eb) return eb;
  if (a.createdAt !== b.createdAt) return b.createdAt < a.createdAt;
  const ua = a.updatedAt ?? a.createdAt;
  const ub = b.updatedAt ?? b.createdAt;
  if (ua !== ub) return ub > ua;
  return settingsKey(b) > settingsKey(a);
}

function settingsKey(t: TableDef): string {
  return `${t.conflicts}/${t.n}/${t.quorum}/${t.createdAt}`;
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

  /**
   * The definition a first write would create, without storing it: reads of unknown tables and
   * write validation use it, so a rejected request never creates a table.
   */
  draft(name: string): TableDef {
    validateTableName(name);
    return { name, id: tableIdOf(name), ...validateTableSettings({}, this.defaults), createdAt: 0 };
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
    const now = Date.now();
    const def: TableDef = { name, id, ...s, createdAt: prev?.createdAt ?? now, explicit: explicit || prev?.explicit === true, updatedAt: now };
    this.meta.set(`table/${name}`, def);
    this.remember(def);
    this.onChange?.(def);
    return def;
  }

  /** Adopt a definition learned from a peer when it supersedes ours (see tableDefSupersedes). */
  adopt(def: TableDef): void {
    const prev = this.byName.get(def.name);
    if (prev && !tableDefSupersedes(prev, def)) return;
    if (def.id !== tableIdOf(def.name)) return; // not a definition any node of ours made
    const clash = this.idIndex.get(def.id);
    if (clash && clash.name !== def.name) return;
    this.meta.set(`table/${def.name}`, def);
    this.remember(def);
    // Gossip what we now hold, so nodes that only hear from us converge too (the order is total,
    // so this settles).
    this.onChange?.(def);
  }
}
