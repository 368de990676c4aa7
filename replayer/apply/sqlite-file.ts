import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { syncDir, writeAll, writeSync } from '../../lib/durable-file';
import { ApplyError, BadEntryError } from '../../lib/errors';
import {
  completeHeader, journalHeader, journalRecord, lockPage, patchPage1,
} from './sqlite-journal';
import { isPageSize } from '../../lib/sqlite-pages';
import { headerPageSize, isDbHeader } from '../../lib/sqlite-wal';

/**
 * The standby's SQLite page writer. It writes the pages the primary changed straight into the
 * standby's database file, as SQLite's own pager would in rollback-journal mode: under SQLite's
 * EXCLUSIVE lock (taken through a better-sqlite3 connection that changes nothing), behind a hot
 * rollback journal in SQLite's format, so readers see the state before or after a write and a
 * crash at any instant leaves one SQLite rolls back on its next open.
 */

/** The part of a better-sqlite3 connection the writer uses. */
export interface SqliteConnection {
  exec(sql: string): unknown;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  close(): unknown;
  readonly inTransaction: boolean;
}

/** better-sqlite3's constructor (its default export), as far as the writer needs it. */
export type SqliteConstructor = new (file: string, options?: { timeout?: number }) => SqliteConnection;

/** The instants of a write a test may stop the process at (see `open`'s `probe`). */
export type WritePoint = 'journal-written' | 'journal-synced' | 'half-written' | 'db-synced' | 'unlinked' | 'committed';

/** What one write cost, in pages. */
export interface WriteStats {
  /** Original pages saved in the journal. */
  journaled: number;
  /** Pages written into the database. */
  written: number;
}

/** Shape of a database file: page size and length in pages. */
export interface Shape { pageSize: number; size: number }

/** How far a write got, which decides how a failure is undone. */
type Stage = 'clean' | 'dirty' | 'committed';

const STALE = ['-wal', '-shm'];

/** Writes page sets into one standby SQLite database, atomically for readers and across a crash. */
export class SqlitePageWriter {
  private closed = false;

  private constructor(
    private readonly file: string,
    private readonly fd: number,
    private readonly db: SqliteConnection,
    private readonly log: (line: string) => void,
    private readonly probe: (point: WritePoint) => void,
  ) {}

  /**
   * Opens (creating if missing) the standby database `file`; `Database` is better-sqlite3's
   * constructor; `log` gets one line per notable thing; `probe` is called at each WritePoint
   * (tests kill the process there).
   */
  static open(file: string, Database: SqliteConstructor, log: (line: string) => void = () => {},
    probe: (point: WritePoint) => void = () => {}): SqlitePageWriter {
    const fd = openOrCreate(file, log);
    let db: SqliteConnection | undefined;
    try {
      // SQLite names its journal after the file's real path: so must we.
      const real = fs.realpathSync(file);
      // Before SQLite first reads the file: a -wal beside it would make SQLite read it as the log.
      removeStale(real, log);
      if (fs.existsSync(`${real}-journal`)) log(`${real}-journal was beside the database at open: SQLite rolls it back if it is hot`);
      db = new Database(real);
      // Reading the mode reads the file: a hot journal is rolled back here, and a header in WAL
      // format opens a fresh log, which the next pragma turns back into rollback mode.
      const mode = db.pragma('journal_mode', { simple: true });
      if (mode !== 'delete') {
        db.pragma('journal_mode=DELETE');
        log(`${real} was in journal mode ${String(mode)}: set to delete`);
      }
      const w = new SqlitePageWriter(real, fd, db, log, probe);
      // Once more under the lock, where no WAL-mode connection can be open (each holds a SHARED
      // lock for its life). Not on an empty file: BEGIN would make SQLite write a page 1 there.
      if (w.shape().size > 0) {
        db.exec('BEGIN EXCLUSIVE');
        try {
          removeStale(real, log);
        } finally {
          db.exec('COMMIT');
        }
      }
      return w;
    } catch (err) {
      db?.close();
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Current page size and size in pages (0, 0 for an empty file). */
  shape(): Shape {
    const len = fs.fstatSync(this.fd).size;
    if (len === 0) return { pageSize: 0, size: 0 };
    const h = readAt(this.fd, 100, 0);
    if (!isDbHeader(h)) throw new ApplyError(`${this.file} is not a SQLite database`);
    const pageSize = headerPageSize(h);
    return { pageSize, size: Math.ceil(len / pageSize) };
  }

  /** Makes the database hold `pages` over its current content, `size` pages long afterwards, as one atomic change. */
  write(pageSize: number, size: number, pages: ReadonlyMap<number, Buffer>): WriteStats {
    if (this.closed) throw new Error(`the page writer of ${this.file} is closed`);
    checkBatch(pageSize, size, pages);
    const fresh = this.shape().size === 0;
    if (fresh) {
      requireWholeImage(size, pageSize, pages, 'the first write into an empty database');
      this.initialise(pageSize);
    }
    this.db.exec('BEGIN EXCLUSIVE');
    let stage: Stage = 'clean';
    try {
      const stats = this.writeLocked(pageSize, size, pages, fresh, (s) => { stage = s; });
      this.db.exec('COMMIT');
      this.probe('committed');
      return stats;
    } catch (err) {
      this.abandon(stage);
      throw err;
    }
  }

  /** Closes the connection, then the writer's own descriptor (never before: that would drop SQLite's locks). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.db.close();
    } finally {
      fs.closeSync(this.fd);
    }
  }

  /**
   * An empty file has no page 1 for SQLite to keep locks against: BEGIN on it makes SQLite
   * create one (with its own journal) at COMMIT. Let it, in a transaction of its own at the
   * batch's page size, so that ours always finds a database whose pages SQLite leaves alone.
   */
  private initialise(pageSize: number): void {
    this.db.pragma(`page_size=${pageSize}`);
    this.db.exec('BEGIN EXCLUSIVE');
    this.db.exec('COMMIT');
    this.log(`${this.file} was empty: SQLite made it an empty database of ${pageSize}-byte pages before its first image`);
  }

  /** The write proper, under SQLite's EXCLUSIVE lock; `at` learns when the database file is touched and when committed. */
  private writeLocked(pageSize: number, size: number, pages: ReadonlyMap<number, Buffer>, fresh: boolean,
    at: (s: Stage) => void): WriteStats {
    removeStale(this.file, this.log);
    const cur = this.shape();
    const resized = cur.pageSize !== pageSize;
    if (resized && !fresh) requireWholeImage(size, pageSize, pages, `a change of page size from ${cur.pageSize} to ${pageSize}`);
    if (!resized) requireNewPages(cur.size, size, pageSize, pages);
    const oldPage1 = readAt(this.fd, cur.pageSize, 0);
    const page1 = patchPage1(pages.get(1) ?? readAt(this.fd, pageSize, 0), oldPage1.readUInt32BE(24) + 1, size);
    const journaled = toJournal(cur, size, pages, resized);
    const journal = `${this.file}-journal`;
    if (fs.existsSync(journal)) this.log(`${journal} was there and not hot: replaced`);
    this.writeJournal(journal, cur, journaled);

    at('dirty');
    const order = [...new Set([1, ...pages.keys()])].filter((p) => p !== lockPage(pageSize)).sort((a, b) => a - b);
    const half = Math.ceil(order.length / 2);
    order.forEach((pgno, i) => {
      writeAll(writeSync, this.fd, pgno === 1 ? page1 : pages.get(pgno) as Buffer, (pgno - 1) * pageSize);
      if (i + 1 === half) this.probe('half-written');
    });
    if (fs.fstatSync(this.fd).size !== size * pageSize) fs.ftruncateSync(this.fd, size * pageSize);
    fs.fsyncSync(this.fd);
    this.probe('db-synced');
    fs.unlinkSync(journal); // the commit point
    at('committed');
    this.probe('unlinked');
    syncDir(path.dirname(this.file));
    return { journaled: journaled.length, written: order.length };
  }

  /** Saves the original of every page in `pgnos` (at the file's current page size) in a hot journal, durably. */
  private writeJournal(journal: string, cur: Shape, pgnos: readonly number[]): void {
    const nonce = randomBytes(4).readUInt32BE(0);
    const jfd = fs.openSync(journal, 'w', fs.fstatSync(this.fd).mode & 0o777);
    try {
      let off = writeAll(writeSync, jfd, journalHeader(nonce, cur.size, cur.pageSize), 0);
      for (const pgno of pgnos) off = writeAll(writeSync, jfd, journalRecord(nonce, pgno, readAt(this.fd, cur.pageSize, (pgno - 1) * cur.pageSize)), off);
      this.probe('journal-written');
      // Records first, then the magic that makes them count: a power loss between the two leaves
      // a journal no opener plays back, over a database not yet touched.
      fs.fsyncSync(jfd);
      writeAll(writeSync, jfd, completeHeader(pgnos.length), 0);
      fs.fsyncSync(jfd);
    } finally {
      fs.closeSync(jfd);
    }
    syncDir(path.dirname(journal));
    this.probe('journal-synced');
  }

  /** Undoes a failed write as far as it got, then releases the lock. */
  private abandon(stage: Stage): void {
    if (stage === 'clean') fs.rmSync(`${this.file}-journal`, { force: true });
    if (this.db.inTransaction) this.db.exec('ROLLBACK');
    if (stage !== 'dirty') return;
    // The database may hold part of the batch: the journal is hot, and SQLite rolls it back now.
    try {
      this.db.exec('BEGIN EXCLUSIVE');
      this.db.exec('COMMIT');
      this.log(`${this.file}: a failed write was rolled back from its journal`);
    } catch (err) {
      this.log(`${this.file}: a failed write left a hot journal that could not be rolled back yet (${String(err)})`);
    }
  }
}

/** Opens `file` read-write, creating it (and fsyncing its directory) when missing. */
function openOrCreate(file: string, log: (line: string) => void): number {
  const { O_RDWR, O_CREAT, O_EXCL } = fs.constants;
  try {
    const fd = fs.openSync(file, O_RDWR | O_CREAT | O_EXCL, 0o644);
    syncDir(path.dirname(file));
    log(`${file} did not exist: created empty`);
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return fs.openSync(file, O_RDWR);
  }
}

/** Removes a -wal or -shm beside `file`, saying so. */
function removeStale(file: string, log: (line: string) => void): void {
  for (const suffix of STALE) {
    try {
      fs.unlinkSync(file + suffix);
      log(`${file}${suffix} was stale beside a rollback-mode standby: removed`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
}

/** `len` bytes of `fd` at `pos`, zeros past its end. */
function readAt(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len);
  for (let off = 0; off < len;) {
    const n = fs.readSync(fd, b, off, len - off, pos + off);
    if (n === 0) break;
    off += n;
  }
  return b;
}

/** The pages whose current content a write destroys: overwritten or cut off, page 1 always, never the lock page. */
function toJournal(cur: Shape, size: number, pages: ReadonlyMap<number, Buffer>, resized: boolean): number[] {
  const out = new Set<number>([1]);
  if (resized) {
    for (let p = 2; p <= cur.size; p++) out.add(p);
  } else {
    for (const p of pages.keys()) if (p <= cur.size) out.add(p);
    for (let p = size + 1; p <= cur.size; p++) out.add(p);
  }
  out.delete(lockPage(cur.pageSize));
  return [...out].sort((a, b) => a - b);
}

/** Rejects a batch no database could hold. */
export function checkBatch(pageSize: number, size: number, pages: ReadonlyMap<number, Buffer>): void {
  if (!isPageSize(pageSize)) throw new BadEntryError(`page size ${pageSize} is not a power of two from 512 to 65536`);
  if (!Number.isInteger(size) || size < 1 || size > 0xffffffff) throw new BadEntryError(`database size ${size} is not a page count`);
  for (const [pgno, page] of pages) {
    if (!Number.isInteger(pgno) || pgno < 1) throw new BadEntryError(`page number ${pgno} is not one (pages count from 1)`);
    if (pgno > size) throw new BadEntryError(`page ${pgno} lies past the database's size of ${size} pages`);
    if (page.length !== pageSize) throw new BadEntryError(`page ${pgno} is ${page.length} bytes, not the page size ${pageSize}`);
  }
  const p1 = pages.get(1);
  if (p1 !== undefined) {
    if (!isDbHeader(p1)) throw new BadEntryError('page 1 does not begin with the SQLite header');
    if (headerPageSize(p1) !== pageSize) throw new BadEntryError(`page 1 says page size ${headerPageSize(p1)}, the batch ${pageSize}`);
  }
}

/** Rejects a batch that is not every page of the database (the lock page may be missing). */
export function requireWholeImage(size: number, pageSize: number, pages: ReadonlyMap<number, Buffer>, what: string): void {
  // Counted first: a hostile size of billions of pages is refused without a walk over them.
  if (pages.size + 1 < size) throw new BadEntryError(`${what} needs every page, 1 to ${size}; ${pages.size} are there`);
  for (let p = 1; p <= size; p++) {
    if (!pages.has(p) && p !== lockPage(pageSize)) throw new BadEntryError(`${what} needs every page, 1 to ${size}; page ${p} is missing`);
  }
}

/** Rejects a batch that grows the database but leaves a new page out: it would read as zeros. */
export function requireNewPages(curSize: number, size: number, pageSize: number, pages: ReadonlyMap<number, Buffer>): void {
  if (pages.size + 1 < size - curSize) throw new BadEntryError(`${size - curSize} pages are new (the database has ${curSize}) but the batch has ${pages.size}`);
  for (let p = curSize + 1; p <= size; p++) {
    if (!pages.has(p) && p !== lockPage(pageSize)) throw new BadEntryError(`page ${p} is new (the database has ${curSize} pages) but not in the batch`);
  }
}
