import { pack, unpack } from 'msgpackr';
import type { OpenedDatabase } from './db.js';
import { META_CF } from './db.js';
import { SyncWriteBatch, type ColumnHandle } from './rocks.js';

/**
 * Small durable facts about this node (id, shard count, tokens, generation, table schemas), in the
 * `meta` column family. Writes are fsynced: they are rare and must survive a crash.
 */
export class MetaStore {
  private readonly col: ColumnHandle;
  private readonly batch: SyncWriteBatch;
  constructor(private readonly odb: OpenedDatabase) {
    this.col = odb.column(META_CF);
    this.batch = new SyncWriteBatch(odb.db, this.col);
  }

  get<T>(key: string): T | undefined {
    const [buf] = this.odb.db._getManySync([Buffer.from(key)], { column: this.col });
    return buf === undefined ? undefined : (unpack(buf) as T);
  }

  set(key: string, value: unknown): void {
    this.batch.put(Buffer.from(key), pack(value));
    this.batch.commit(true);
  }

  /** All entries whose key starts with `prefix`. */
  async list<T>(prefix: string): Promise<Array<[string, T]>> {
    const it = this.odb.db.iterator({
      column: this.col,
      gte: Buffer.from(prefix),
      lt: Buffer.from(prefix + '\uffff'),
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
    });
    const out: Array<[string, T]> = [];
    try {
      for (;;) {
        const rows = await it.nextv(1000);
        if (rows.length === 0) break;
        for (const [k, v] of rows) out.push([k.toString(), unpack(v) as T]);
      }
    } finally {
      await it.close();
    }
    return out;
  }
}
