import * as fs from 'node:fs';
import * as path from 'node:path';
import { typeOf } from '../lib/walk';
import { hostStamp } from '../lib/host-clock';
import { DEFAULTS } from '../lib/settings';
import { realFs } from './real-fs';
import type { JournalSink, ReadTime } from './sink';
import type * as SqliteFiles from '../lib/sqlite-files';
import { closeKeepingLocks, lockedHere, type FileId } from './held-locks';

const { O_RDONLY, O_NOFOLLOW } = fs.constants;

/** What a snapshot found and journaled. */
export type Snapped = { kind: 'file' | 'database'; bytes: number }
  /** A directory and a link say what was journaled of them: a watcher knows them so, whatever they were a moment before. */
  | { kind: 'dir'; bytes?: undefined; mode: number; ino: number }
  | { kind: 'symlink'; bytes?: undefined; target: string }
  | { kind: 'removed' | 'absent' | 'other' | 'torn' | 'part-of-database' | 'locked'; bytes?: undefined };

/** How a Snapshotter stamps and reads. */
export interface SnapshotOptions {
  /**
   * Stamp each snapshot with the wall clock of its read (EntryHead.b), so the standby never
   * puts it on top of a newer change: for objects read while anyone may change them (baseline,
   * watch, repair); the default. Off for what the recorder journals as the result of the call
   * just made (a rename or copy into a root): that is a change in the journal's own order, and
   * a change of the same millisecond before it would make it look stale.
   */
  readTime?: boolean;
  /** Files up to this size are read whole; larger ones a chunk at a time (DEFAULTS.journal.snapshotWholeBytes). */
  wholeBytes?: number;
  /**
   * Journal a SQLite database as an image read in one read transaction, and leave SQLite's
   * files beside it out (baseline, watch, repair): a byte copy of a live database can be torn.
   * Off for the recorder, which journals what a call just put in place (a copied database file).
   */
  databases?: boolean;
  /**
   * Inside an application (the in-process watcher): leave unread a file the process holds a
   * POSIX lock on ('locked'), and never close a descriptor of one (agent/held-locks). Closing
   * any descriptor of a file drops the process's locks on it: SQLite's, LevelDB's, LMDB's.
   */
  keepLocks?: boolean;
}

/**
 * The one careful way to read objects into the journal: each as it is now, with the host's
 * order stamp of its read, a large file a chunk at a time, a file that changed while it was
 * read read again, and what vanished meanwhile left out (or journaled removed, when asked).
 * Reads through the unwrapped fs, so inside an application none of it is journaled twice.
 */
export class Snapshotter {
  private readonly readTime: boolean;
  private readonly wholeBytes: number;
  private readonly databases: boolean;
  private readonly keepLocks: boolean;

  constructor(private readonly sink: JournalSink, opts: SnapshotOptions = {}) {
    this.readTime = opts.readTime ?? true;
    this.wholeBytes = opts.wholeBytes ?? DEFAULTS.journal.snapshotWholeBytes;
    this.databases = opts.databases ?? false;
    this.keepLocks = opts.keepLocks ?? false;
  }

  /**
   * Journals the object at `abs` as (root, rel): a directory, a link as a link, a file
   * with its bytes and permission bits. When nothing is there, journals its removal if
   * `removeWhenAbsent`. A file that changes while it is read is read again.
   */
  snapshot(root: string, rel: string, abs: string, removeWhenAbsent = false): Snapped {
    for (let attempt = 1; ; attempt++) {
      // The host's order of a snapshot is when it was read, not when it was journaled: a change
      // made in between must be placed after it on the standby.
      const read = this.stamp();
      let st: fs.Stats;
      try {
        st = realFs.lstatSync(abs);
      } catch (err) {
        if (!isGone(err)) throw err;
        if (!removeWhenAbsent) return { kind: 'absent' };
        this.sink.record({ root, path: rel, op: { op: 'rm' }, read });
        return { kind: 'removed' };
      }
      const type = typeOf(st);
      if (type === 'dir') {
        this.sink.record({ root, path: rel, op: { op: 'mkdir', mode: st.mode & 0o7777 }, read });
        return { kind: 'dir', mode: st.mode & 0o7777, ino: st.ino };
      }
      if (type === 'symlink') {
        const target = realFs.readlinkSync(abs, 'utf8');
        this.sink.record({ root, path: rel, op: { op: 'symlink', target }, read });
        return { kind: 'symlink', target };
      }
      if (type !== 'file') return { kind: 'other' };
      // Before anything is opened: telling a database's side file opens the database.
      if (this.keepLocks && lockedHere(st, ...(this.databases ? databaseIds(abs) : [])) === true) return { kind: 'locked' };
      if (this.databases && sqliteFiles().isSidecar(abs)) return { kind: 'part-of-database' };
      if (this.databases && st.size >= sqliteFiles().MIN_DATABASE_BYTES && sqliteFiles().isDatabaseFile(abs, (fd) => this.close(fd))) {
        const d = snapshotDatabase(this.sink, root, rel, abs);
        if (d !== undefined) return d;
      }
      const r = this.file(root, rel, abs, read, attempt === DEFAULTS.journal.snapshotAttempts);
      if (r !== 'changed') return r;
    }
  }

  /**
   * Journals the removal of (root, rel), whatever is there now: for an object the journal has
   * that is gone, or was replaced by another directory that the standby's mkdir would merge into it.
   */
  removed(root: string, rel: string): void {
    this.sink.record({ root, path: rel, op: { op: 'rm' }, read: this.stamp() });
  }

  /** The host's order of a read now, and its wall clock when asked for (readTime). */
  private stamp(): ReadTime {
    return this.readTime ? { at: Date.now(), order: hostStamp() } : { order: hostStamp() };
  }

  /**
   * Journals whatever is at `abs` now, recursively: a directory first, then what it holds.
   * What vanishes while the tree is read is left out: its removal is journaled by its own call.
   */
  tree(root: string, rel: string, abs: string): void {
    if (this.snapshot(root, rel, abs).kind !== 'dir') return;
    let names: string[];
    try {
      names = realFs.readdirSync(abs);
    } catch (err) {
      if (isGone(err)) return;
      throw err;
    }
    for (const name of names) this.tree(root, `${rel}/${name}`, path.join(abs, name));
  }

  /** One read of a file: journaled when it held still while read (or `anyway`), else 'changed'. */
  private file(root: string, rel: string, abs: string, read: ReadTime, anyway: boolean): Snapped | 'changed' {
    let fd: number;
    try {
      fd = realFs.openSync(abs, O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      // Replaced by a link, or removed, between lstat and open: look again.
      if (isGone(err) || (err as NodeJS.ErrnoException).code === 'ELOOP') return 'changed';
      throw err;
    }
    try {
      const before = realFs.fstatSync(fd);
      const size = before.size;
      const op = { op: 'put', mode: before.mode & 0o7777 } as const;
      if (size <= this.wholeBytes) {
        const data = Buffer.alloc(size);
        const n = readFully(fd, data, 0);
        if (!anyway && (n !== size || changedSince(before, realFs.fstatSync(fd)))) return 'changed';
        this.sink.record({ root, path: rel, op, data: data.subarray(0, n), read });
        return { kind: 'file', bytes: n };
      }
      // Large: one chunk in memory at a time. Torn if it changed meanwhile; then it goes again, newer.
      let short = false;
      this.sink.record({
        root, path: rel, op, read,
        pieces: {
          size,
          read: (off, len) => {
            const chunk = Buffer.alloc(len);
            if (readFully(fd, chunk, off) !== len) short = true;
            return chunk;
          },
        },
      });
      if (!anyway && (short || changedSince(before, realFs.fstatSync(fd)))) return 'changed';
      return short ? { kind: 'torn' } : { kind: 'file', bytes: size };
    } finally {
      this.close(fd);
    }
  }

  /** Closes a descriptor of its own, kept open instead while the process holds a lock on the file (keepLocks). */
  private close(fd: number): void {
    if (this.keepLocks) closeKeepingLocks(realFs.fstatSync(fd), () => realFs.closeSync(fd));
    else realFs.closeSync(fd);
  }
}

/**
 * The files of the database `abs` would belong to, were it one or a side file of one: a
 * connection locks the database and its -shm, and telling a side file opens the database.
 */
function databaseIds(abs: string): FileId[] {
  const base = sqliteFiles().sidecarBase(abs) ?? abs;
  const out: FileId[] = [];
  for (const file of [base, `${base}-wal`, `${base}-shm`, `${base}-journal`]) {
    // Not there (the usual case, for a file that is no database): nothing holds it.
    const st = file === abs ? undefined : realFs.statSync(file, { throwIfNoEntry: false });
    if (st !== undefined) out.push(st);
  }
  return out;
}

/**
 * Journals database `abs` as an image (agent/sqlite/capture), its place among other changes
 * when it was read; undefined when it holds nothing yet (an empty new database). Its connection
 * is closed as SQLite closes one: with keepLocks, nothing else of the process held a lock on the
 * database when it was opened, and in WAL mode the connection's own locks are there until its
 * close, so a lock at the close cannot be told from its own.
 */
function snapshotDatabase(sink: JournalSink, root: string, rel: string, abs: string): Snapped | undefined {
  const order = hostStamp();
  const Database = sqliteFiles().sqliteModule();
  const { DbCapture } = require('./sqlite/capture') as typeof import('./sqlite/capture');
  // Its descriptors are closed only while the process holds no lock on their files (agent/sqlite/descriptors).
  const cap = new DbCapture(abs);
  const { inReadTransaction } = require('./sqlite/hold') as typeof import('./sqlite/hold');
  const db = new Database(abs, { readonly: true, fileMustExist: true, timeout: 10_000 }) as unknown as { serialize(): Buffer } & import('./sqlite/hold').ReadConnection;
  try {
    // In rollback mode the pages are read from the file while the connection holds it still, not copied whole.
    const change = cap.capture(() => db.serialize(), (read) => inReadTransaction(db, read));
    if (change === undefined) return undefined;
    sink.record({ root, path: rel, op: change.op, data: change.data, read: { order } });
    return { kind: 'database', bytes: change.data.length };
  } finally {
    db.close();
    cap.close();
  }
}


/** What knows SQLite files, loaded by the first snapshot that looks for databases (the recorder's never do). */
function sqliteFiles(): typeof SqliteFiles {
  return require('../lib/sqlite-files') as typeof SqliteFiles;
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let n = 0;
  while (n < buf.length) {
    const got = realFs.readSync(fd, buf, n, buf.length - n, position + n);
    if (got === 0) break;
    n += got;
  }
  return n;
}

function changedSince(a: fs.Stats, b: fs.Stats): boolean {
  return a.size !== b.size || a.mtimeMs !== b.mtimeMs || a.ctimeMs !== b.ctimeMs;
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The absolute path of `rel` under a root directory. */
export function under(dir: string, rel: string): string {
  return path.join(dir, ...rel.split('/'));
}
