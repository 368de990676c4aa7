import * as fs from 'node:fs';
import { isDbHeader } from './sqlite-wal';

/**
 * SQLite databases as whole objects, for the parts that walk trees (verify, baseline, repair,
 * watch): which files are databases, which are SQLite's own files beside one, and what a
 * database holds, compared by content rather than bytes (the standby's file is written page by
 * page in rollback mode, with a header of its own, while the primary's may be half in its WAL).
 */

/** Files SQLite keeps beside database `x`: `x-wal`, `x-shm`, `x-journal`. */
export const SIDECARS = ['-wal', '-shm', '-journal'] as const;

/** The database a SQLite side file belongs to (its path without the suffix), or undefined. */
export function sidecarBase(p: string): string | undefined {
  const s = SIDECARS.find((x) => p.endsWith(x));
  return s === undefined ? undefined : p.slice(0, -s.length);
}

/** The smallest database file that holds anything (one page of the smallest size): a smaller file need not be opened to know it is none. */
export const MIN_DATABASE_BYTES = 512;

/** Whether the regular file at `abs` begins as a SQLite database (an empty file does not); `close` closes the descriptor it opened. */
export function isDatabaseFile(abs: string, close: (fd: number) => void = fs.closeSync): boolean {
  let fd: number;
  try {
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return false;
    const head = Buffer.alloc(16);
    return fs.readSync(fd, head, 0, 16, 0) === 16 && isDbHeader(head);
  } finally {
    close(fd);
  }
}

/** Whether `abs` is SQLite's file beside a database (a WAL, its index, a rollback journal): part of that database, not an object of its own. */
export function isSidecar(abs: string): boolean {
  const base = sidecarBase(abs);
  return base !== undefined && isDatabaseFile(base);
}

/** What of better-sqlite3 the readers here use. */
interface ReadConnection {
  pragma(source: string, options: { simple: true }): unknown;
  prepare(sql: string): { raw(on: boolean): { iterate(): IterableIterator<unknown[]> }; safeIntegers(on: boolean): unknown; all(): unknown[] };
  close(): void;
}
type ReadConstructor = new (file: string, options: { readonly: boolean; fileMustExist: boolean; timeout?: number }) => ReadConnection;

/** better-sqlite3, loaded when a database is first met (an optional dependency). */
export function sqliteModule(): ReadConstructor {
  try {
    return require('better-sqlite3') as ReadConstructor;
  } catch (err) {
    throw new Error(`SQLite databases are under the roots, and reading them needs better-sqlite3 (npm install better-sqlite3): ${(err as Error).message}`);
  }
}

/**
 * A hash of what database `abs` holds, read in one read transaction of a read-only connection:
 * user_version and application_id, the schema, and every table's rows in scan order (equal
 * content scans in the same order). Virtual tables are left out: their content is in their
 * shadow tables, which are tables.
 */
export function databaseHash(abs: string): string {
  const Database = sqliteModule();
  const db = new Database(abs, { readonly: true, fileMustExist: true, timeout: 10_000 });
  try {
    // Required here: node:crypto costs milliseconds of a start that reads no database.
    const h = (require('node:crypto') as typeof import('node:crypto')).createHash('sha256');
    const feed = (v: unknown): void => {
      if (v === null) h.update('n;');
      else if (Buffer.isBuffer(v)) h.update(`b${v.length}:`).update(v);
      else h.update(`${typeof v}${String(v).length}:${String(v)};`);
    };
    // One read transaction, so the rows and the schema are of one state.
    const begin = db.prepare('BEGIN') as unknown as { run(): void };
    begin.run();
    try {
      feed(db.pragma('user_version', { simple: true }));
      feed(db.pragma('application_id', { simple: true }));
      const schema = db.prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name");
      schema.safeIntegers(true);
      const tables: string[] = [];
      for (const row of schema.raw(true).iterate()) {
        row.forEach(feed);
        if (row[0] === 'table' && !/^\s*create\s+virtual\s/i.test(String(row[3] ?? ''))) tables.push(String(row[1]));
      }
      for (const t of tables) {
        h.update(`table:${t}\n`);
        const rows = db.prepare(`SELECT * FROM "${t.replace(/"/g, '""')}"`);
        rows.safeIntegers(true);
        for (const row of rows.raw(true).iterate()) {
          row.forEach(feed);
          h.update('\n');
        }
      }
    } finally {
      (db.prepare('COMMIT') as unknown as { run(): void }).run();
    }
    return h.digest('hex');
  } finally {
    db.close();
  }
}
