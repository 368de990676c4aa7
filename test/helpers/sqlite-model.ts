import Database from 'better-sqlite3';
import type { SqliteOp } from '../../lib/entry';
import { decodePages } from '../../lib/sqlite-pages';

/**
 * A standby database kept as one buffer, for tests of what the agent captures: it applies
 * `sqlite` entries by the same rules as the standby (an image replaces; a change applies only
 * on the position it builds on, from the first transaction past it) and refuses anything else.
 */
export class ModelStandby {
  image: Buffer | undefined;
  w = '';
  k = 0;
  ps = 0;

  /** Applies one entry; throws naming why it cannot be applied. */
  apply(op: SqliteOp, data: Buffer): void {
    const txns = decodePages(data, op.ps);
    if (op.kind === 'image') {
      const t = txns[0]!;
      const buf = Buffer.alloc(t.size * op.ps);
      for (const [pgno, page] of t.pages) page.copy(buf, (pgno - 1) * op.ps);
      this.image = buf;
      this.ps = op.ps;
    } else {
      if (this.image === undefined) throw new Error('a change before any image');
      let from: number;
      if (op.bw === this.w) from = this.k;
      else throw new Error(`change builds on ${op.bw}.${op.bk}, model at ${this.w}.${this.k}`);
      if (op.bk! > from) throw new Error(`change builds on ${op.bk}, model at ${from}`);
      // Transactions the model already holds are passed over; the rest applied in order.
      let start = op.bw === op.w ? op.bk! : 0;
      for (const t of txns) {
        if (op.w === this.w && t.end <= from) {
          start = t.end;
          continue;
        }
        if (op.w === this.w && start !== from) throw new Error(`no transaction of the change starts at ${from}`);
        let buf: Buffer = this.image;
        if (t.size * op.ps !== buf.length) {
          const next = Buffer.alloc(t.size * op.ps);
          buf.copy(next, 0, 0, Math.min(buf.length, next.length));
          buf = next;
        }
        for (const [pgno, page] of t.pages) page.copy(buf, (pgno - 1) * op.ps);
        this.image = buf;
        start = t.end;
        from = t.end;
      }
    }
    this.w = op.w;
    this.k = op.k;
  }

  /** Every table's rows, in rowid order, as the model's database holds them. */
  rows(): Record<string, unknown[]> {
    const buf = Buffer.from(this.image!);
    // An image of a WAL-mode database says so in its header; in memory it is read as a rollback one.
    buf[18] = 1;
    buf[19] = 1;
    const db = new Database(buf);
    try {
      return tableRows(db);
    } finally {
      db.close();
    }
  }
}

/** Every table's rows of `db`, by table name, in a stable order. */
export function tableRows(db: Database.Database): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  const tables = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").pluck().all() as string[];
  for (const name of tables) {
    const rows = db.prepare(`SELECT * FROM "${name.replace(/"/g, '""')}"`).raw().all();
    out[name] = rows.map((r) => JSON.stringify(r)).sort();
  }
  return out;
}
