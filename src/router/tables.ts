import { createHash } from 'node:crypto';
import type { QuorumMode, TableDefaults, TableMode } from '../config/config.js';
import { CRDT_TYPES, isCrdtType, type CrdtType } from '../crdt/types.js';
import { xxh64Pair } from '../ring/hash.js';
import { TABLE_ID_BYTES } from '../storage/keys.js';
import type { MetaStore } from '../storage/meta.js';
import { badRequest, invariant, RingkvError } from '../util/errors.js';
import { TABLE_NAME_RE, validateTableName } from '../api/table-name.js';
import type { MergeMode } from '../versions/reconcile.js';

export interface TableDef {
  name: string;
  /**
   * Derived from the name (tableIdOf: 32 hex digits, the first 16 bytes of SHA-256) so every node
   * computes the same id with no coordination. Storage keys carry it as bytes (tableIdBytes).
   */
  id: string;
  /** A key-value table's conflict mode (`crdt` for a table of a convergent data type), or `cell` for the storage view of a wide-column table (see OtherTables). */
  conflicts: TableMode;
  /** The convergent data type every key of a `crdt` table holds; absent for other modes. Fixed once defined. */
  type?: CrdtType;
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
  return `${t.conflicts}/${t.type ?? ''}/${t.n}/${t.quorum}/${t.createdAt}`;
}

// The name rule lives in the shared protocol module (the client checks names too).
export { TABLE_NAME_RE, validateTableName };

/**
 * A table's id: the first TABLE_ID_BYTES (16) bytes of SHA-256 of its UTF-8 name, as hex.
 *
 * Why a cryptographic hash, and why 16 bytes. Table names come from clients, so an adversary picks
 * them; two names with one id would share storage (storage keys carry the id, not the name). The
 * 32-bit xxh64 id this replaces collided for `cfyd` and `c161t` after a one-second search. With a
 * b-bit prefix of SHA-256, finding a name with a given table's id (second preimage) costs ~2^b
 * hashes and finding any two colliding names (birthday) ~2^(b/2). 8 bytes would give 2^64 for the
 * first (~60 GPU-years at 1e10 SHA-256/s: a budget, not a wall) and only 2^32 for the second, i.e.
 * seconds: not collision-resistant. 16 bytes give 2^128 and 2^64, both out of reach, for 8 more
 * bytes per stored row than 8 would (24-byte key header instead of 16: ~5% of a 150-byte row).
 * Collisions among the tables a node knows are still detected and refused (TableRegistry), but
 * that cannot see a table another node created and has not gossiped yet; the width is what makes
 * that window harmless.
 */
export function tableIdOf(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest().subarray(0, TABLE_ID_BYTES).toString('hex');
}

/**
 * The 32-bit table id of storage format 1 (the low 32 bits of xxh64 of the name): what keys written
 * before format 2 carry. Only the storage migration (and tests of the collision) use it.
 */
export function legacyTableIdOf(name: string): number {
  return xxh64Pair(Buffer.from(name, 'utf8')).lo >>> 0;
}

const idBytesCache = new WeakMap<TableDef, Buffer>();

/** The table's id as the bytes storage keys, shard requests and peer messages carry (cached per definition). */
export function tableIdBytes(def: TableDef): Buffer {
  let b = idBytesCache.get(def);
  if (b === undefined) {
    b = Buffer.from(def.id, 'hex');
    idBytesCache.set(def, b);
  }
  return b;
}

/** The error for two table names with one id: neither may use the other's storage. */
export function tableCollision(name: string, other: string, id: string): RingkvError {
  return new RingkvError('conflict', `table name ${name} collides with existing table ${other} (both have table id ${id}); choose another name`, {
    table: name,
    collidesWith: other,
  });
}

export interface TableSettingsInput {
  conflicts?: unknown;
  type?: unknown;
  n?: unknown;
  quorum?: unknown;
}

export function validateTableSettings(body: TableSettingsInput, defaults: TableDefaults): Omit<TableDef, 'name' | 'id' | 'createdAt'> {
  const conflicts = body.conflicts ?? defaults.conflicts;
  if (conflicts !== 'vclock' && conflicts !== 'lww' && conflicts !== 'crdt') {
    throw badRequest(`conflicts must be "vclock", "lww" or "crdt", got ${JSON.stringify(body.conflicts)}`, { field: 'conflicts' });
  }
  const type = body.type ?? undefined;
  if (conflicts === 'crdt' && !isCrdtType(type)) {
    throw badRequest(`a crdt table needs a type: one of ${CRDT_TYPES.map((t) => `"${t}"`).join(', ')}, got ${JSON.stringify(body.type)}`, { field: 'type' });
  }
  if (conflicts !== 'crdt' && type !== undefined) throw badRequest(`type applies to crdt tables only (conflicts is ${JSON.stringify(conflicts)})`, { field: 'type' });
  const n = body.n ?? defaults.n;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 5) throw badRequest(`n must be an integer between 1 and 5, got ${JSON.stringify(body.n)}`, { field: 'n' });
  const quorum = body.quorum ?? defaults.quorum;
  if (quorum !== 'sloppy' && quorum !== 'strict') throw badRequest(`quorum must be "sloppy" or "strict", got ${JSON.stringify(body.quorum)}`, { field: 'quorum' });
  return conflicts === 'crdt' ? { conflicts, type: type as CrdtType, n, quorum } : { conflicts, n, quorum };
}

/** The version merge of a vclock or lww table (callers have refused crdt and wide-column tables, whose keys hold states or cells). */
export function versionMode(t: TableDef): MergeMode {
  invariant(t.conflicts === 'vclock' || t.conflicts === 'lww', `table ${t.name} is a ${t.conflicts} table: its keys do not hold versions`);
  return t.conflicts;
}

/** A definition (ours or a peer's from gossip) whose conflict mode and type agree: a crdt table names a known type, no other table has one. */
export function wellFormedTableDef(def: TableDef): boolean {
  if (def.conflicts === 'crdt') return isCrdtType(def.type);
  return (def.conflicts === 'vclock' || def.conflicts === 'lww') && def.type === undefined;
}

/**
 * The tables of another kind that share this registry's name space and the storage (wide-column
 * tables, src/router/wide-tables.ts). Each live one has a storage view: a TableDef with its own
 * storage id and conflicts `cell`, which `get` and `byId` return like a key-value definition, so
 * repair, hints, scans and peer checks resolve any table id the same way. Key-value paths refuse
 * such a definition (Router.kvTable); key-value definitions never take one of these names.
 */
export interface OtherTables {
  /** The storage view of the live table of this name, if any. */
  get(name: string): TableDef | undefined;
  /** The storage view of the live table whose storage id (hex) this is, if any. */
  byId(id: string): TableDef | undefined;
  /** The storage views of every live table. */
  all(): TableDef[];
}

/** The error for a key-value use of a wide-column table's name. */
export function notKeyValue(name: string): RingkvError {
  return new RingkvError('conflict', `table ${name} is a wide-column table (created with CQL); query it through POST /api/v1/query`, { table: name });
}

/**
 * Table schemas, kept in the `meta` family. Tables are created on first use with the configured
 * defaults, or explicitly. Ids come from the name, so a table created independently on two nodes
 * gets the same id. Two names with one id (infeasible with tableIdOf, see there) are refused for
 * every use, reads and scans included: `draft` (the definition of a table not known yet) throws
 * `conflict` naming both tables when the name's id belongs to another known table.
 */
export class TableRegistry {
  private readonly byName = new Map<string, TableDef>();
  private readonly idIndex = new Map<string, TableDef>();
  /** Called after a table is created or changed (the cluster layer gossips schemas). */
  onChange: ((t: TableDef) => void) | undefined;
  /** Wide-column tables (set once by the node; absent in unit setups). */
  others: OtherTables | undefined;

  constructor(
    private readonly meta: MetaStore,
    private readonly defaults: TableDefaults,
    /** The id function; only tests replace it (to show collision handling with a weak one). */
    private readonly idOf: (name: string) => string = tableIdOf,
  ) {}

  /**
   * Load the stored definitions. Definitions stored by storage format 1 carry a 32-bit numeric id;
   * the id is a function of the name, so it is recomputed here and the definition stored again.
   */
  async load(): Promise<void> {
    for (const [, stored] of await this.meta.list<TableDef>('table/')) {
      const id = this.idOf(stored.name);
      const t = stored.id === id ? stored : { ...stored, id };
      const clash = this.idIndex.get(id);
      if (clash && clash.name !== t.name) throw new Error(`stored tables ${clash.name} and ${t.name} have one table id ${id}`);
      if (t !== stored) this.meta.set(`table/${t.name}`, t);
      this.remember(t);
    }
  }

  private remember(t: TableDef): void {
    this.byName.set(t.name, t);
    this.idIndex.set(t.id, t);
  }

  /** A table's definition: a key-value table's, or the storage view of a wide-column table (conflicts `cell`). */
  get(name: string): TableDef | undefined {
    return this.byName.get(name) ?? this.others?.get(name);
  }

  /** The key-value table of this name (never a wide-column table's view). */
  getKv(name: string): TableDef | undefined {
    return this.byName.get(name);
  }

  /** The table with this id, as hex (storage keys carry ids, not names: anti-entropy maps them back). */
  byId(id: string): TableDef | undefined {
    return this.idIndex.get(id) ?? this.others?.byId(id);
  }

  /**
   * Every table's definition: the key-value tables and the storage views of the wide-column ones
   * (what repair's and range movements' replication factors, cleanup and listings need).
   */
  all(): TableDef[] {
    const kv = this.allKv();
    const others = this.others?.all() ?? [];
    return others.length === 0 ? kv : [...kv, ...others.filter((o) => !this.byName.has(o.name))].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The key-value tables (what gossip carries as `tables`; wide-column schemas travel beside them). */
  allKv(): TableDef[] {
    return [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  getOrCreate(name: string): TableDef {
    return this.get(name) ?? this.define(name, {}, false);
  }

  /**
   * The definition a first write would create, without storing it: reads of unknown tables and
   * write validation use it, so a rejected request never creates a table.
   */
  draft(name: string): TableDef {
    validateTableName(name);
    if (this.others?.get(name)) throw notKeyValue(name);
    const id = this.idOf(name);
    const clash = this.idIndex.get(id);
    if (clash && clash.name !== name) throw tableCollision(name, clash.name, id);
    return { name, id, ...validateTableSettings({}, this.defaults), createdAt: 0 };
  }

  /** The table's definition for a read or scan: the stored one, else the draft (which refuses a colliding name). */
  forRead(name: string): TableDef {
    return this.get(name) ?? this.draft(name);
  }

  /** Create or update a table's settings. */
  define(name: string, settings: TableSettingsInput, explicit: boolean): TableDef {
    validateTableName(name);
    if (this.others?.get(name)) throw notKeyValue(name);
    const s = validateTableSettings(settings, this.defaults);
    const id = this.idOf(name);
    const clash = this.idIndex.get(id);
    if (clash && clash.name !== name) throw tableCollision(name, clash.name, id);
    const prev = this.byName.get(name);
    if (prev && (prev.conflicts !== s.conflicts || prev.type !== s.type) && explicit) {
      const was = prev.type === undefined ? `conflicts=${prev.conflicts}` : `conflicts=${prev.conflicts}, type=${prev.type}`;
      throw new RingkvError('conflict', `table ${name} already exists with ${was}; the conflict mode and type of an existing table cannot change`);
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
    if (typeof def.name !== 'string' || def.id !== this.idOf(def.name)) return; // not a definition any node of this version made
    if (!wellFormedTableDef(def)) return; // key-value definitions only (crdt ones with a known type)
    const clash = this.idIndex.get(def.id);
    if (clash && clash.name !== def.name) return;
    this.meta.set(`table/${def.name}`, def);
    this.remember(def);
    // Gossip what we now hold, so nodes that only hear from us converge too (the order is total,
    // so this settles).
    this.onChange?.(def);
  }
}
