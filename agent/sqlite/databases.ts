import * as path from 'node:path';
import { CommitTimeoutError } from '../commit-wait';
import { hostStamp } from '../../lib/host-clock';
import type { Located } from '../locate';
import { warnOnce } from '../log';
import { objectJournal } from '../objects';
import { realFs } from '../real-fs';
import { DbCapture } from './capture';
import { inReadTransaction, type ReadConnection } from './hold';
import { sidecarBase } from '../../lib/sqlite-files';

/** What the tracker needs of a better-sqlite3 Database (its public properties). */
export interface Connection {
  readonly name: string;
  readonly open: boolean;
  readonly inTransaction: boolean;
  readonly readonly: boolean;
  readonly memory: boolean;
  serialize(): Buffer;
  pragma(source: string, options: { simple: true }): unknown;
}

interface Tracked {
  cap: DbCapture;
  at: Located;
  conns: number;
  /** A read-only connection of the application's own better-sqlite3 that holds the database still while a rollback-mode commit is read. */
  side?: ReadConnection;
}

type SideConstructor = new (file: string, options: { readonly: boolean; fileMustExist: boolean; timeout: number }) => ReadConnection;

/** How long the side connection waits for another process's commit to end before it can read (better-sqlite3's default). */
const SIDE_TIMEOUT_MS = 5000;
/** A rollback-mode database this large is said once: reading it whole at each commit costs ~40 ms here (2.5 ms a MB), where WAL mode would cost microseconds. */
const LARGE_ROLLBACK_BYTES = 16 * 1024 * 1024;

/** Closed databases whose capture (and descriptors) this thread keeps for a reopen; past it the oldest is closed. */
const MAX_IDLE = 64;
/** The absolute path each connection was opened with, taken at `new Database()` (agent/shims/libs/better-sqlite3). */
const openedAt = new WeakMap<object, string>();

/** Notes the absolute path `db` was opened at, before anything can change the working directory. */
export function noteOpened(db: object, file: unknown): void {
  if (typeof file === 'string' && file !== '' && file !== ':memory:' && !file.startsWith('file:')) openedAt.set(db, path.resolve(file));
}

/** Connections whose locking mode is to be read again before their next capture (first use, or SQL that names it). */
const modeUnknown = new WeakSet<object>();

/**
 * The SQLite databases this thread's connections have open under a root, one capture per
 * database file however many connections share it. Connections are learned on first use:
 * in-memory, read-only and out-of-root databases are passed over once and never looked at again.
 */
export class Databases {
  private readonly byConn = new WeakMap<object, Tracked | null>();
  private readonly byFile = new Map<string, Tracked>();
  private readonly idle = new Map<string, Tracked>();
  /** Relative paths (any root) of the databases tracked: the in-process watcher leaves them and their side files to the capture. */
  private readonly rels = new Map<string, number>();
  /** Inside a capture: the statements it runs itself (a pragma) capture nothing. */
  private busy = false;

  /** Whether `rel` is a database this thread captures, or SQLite's file beside one. */
  tracks(rel: string): boolean {
    return this.rels.has(rel) || this.rels.has(sidecarBase(rel) ?? '\0');
  }

  /**
   * Journals what `db` committed since the last look, if it is tracked and between transactions.
   * Never throws into the application except a sync or strong timeout under UNDERSTUDY_ON_TIMEOUT=fail.
   */
  after(db: Connection): void {
    const oj = objectJournal();
    if (oj === undefined || !db.open || db.inTransaction || this.busy) return;
    const t = this.track(db);
    if (t === undefined) return;
    this.busy = true;
    try {
      if (modeUnknown.has(db)) {
        modeUnknown.delete(db);
        const exclusive = db.pragma('locking_mode', { simple: true }) === 'exclusive';
        if (exclusive && !t.cap.exclusive) warnOnce(`sqlite-exclusive:${t.at.rel}`, `database ${t.at.root}/${t.at.rel} is in locking_mode=EXCLUSIVE: no commit can be told from its files, so each call that may have committed sends the whole database when it changed (costly: use the default locking mode)`);
        t.cap.exclusive = exclusive;
      }
      let read = 0;
      const began = performance.now();
      const change = t.cap.capture(() => {
        read = hostStamp();
        return db.serialize();
      }, (body) => {
        read = hostStamp();
        return holdStill(t, db, body);
      });
      if (change === undefined) return;
      if ((change.readWhole ?? 0) >= LARGE_ROLLBACK_BYTES) {
        warnOnce(`sqlite-rollback-cost:${t.at.rel}`, `database ${t.at.root}/${t.at.rel} is in rollback-journal mode: to find what a commit changed, the agent reads the whole database at each one (${Math.round(change.readWhole! / 1e6)} MB, ${Math.round(performance.now() - began)} ms this time). In WAL mode (PRAGMA journal_mode = WAL) it reads only what the commit appended`);
      }
      const what = change.op.kind === 'image' ? `the image of database ${t.at.rel}` : `${change.txns} transaction(s) of database ${t.at.rel}`;
      // An image's place among other changes is when it was read, not when it is journaled.
      const seq = oj.database(t.at, change.op, change.data, change.op.kind === 'image' ? { order: read } : undefined, what);
      // A change the spool could not take breaks the chain the standby follows: an image mends it.
      if (seq === 0) t.cap.forget();
    } catch (err) {
      if (err instanceof CommitTimeoutError) throw err;
      t.cap.forget();
      warnOnce(`sqlite:${t.at.rel}:${(err as Error).message}`, `database ${t.at.root}/${t.at.rel}: a commit could not be journaled (${(err as Error).message}); its next change goes whole`);
    } finally {
      this.busy = false;
    }
  }

  /** `db` ran SQL that may change its journal or locking mode: look at its files and mode again before the next capture. */
  modeMayChange(db: Connection): void {
    // The capture's own look at the locking mode changes nothing.
    if (this.busy) return;
    modeUnknown.add(db);
    const t = this.byConn.get(db);
    if (t !== undefined && t !== null) {
      t.cap.filesMayChange = true;
      closeSide(t);
    }
  }

  /** `db` was closed: its file's capture ends with the last connection of this thread to it. */
  closed(db: Connection): void {
    const t = this.byConn.get(db);
    this.byConn.set(db, null);
    if (t === undefined || t === null) return;
    if (--t.conns > 0) return;
    // Its descriptors stay open: another connection of this process (a worker thread's, a
    // read-only one) may still hold SQLite's locks on the file, and closing any descriptor of
    // a file drops every POSIX lock the process holds on it. Kept for a reopen, up to a bound.
    t.cap.idle();
    // Not kept: an open connection of its own would keep a WAL from being removed at the application's last close.
    closeSide(t);
    this.byFile.delete(t.cap.file);
    this.idle.set(t.cap.file, t);
    if (this.idle.size > MAX_IDLE) {
      const [file, oldest] = this.idle.entries().next().value as [string, Tracked];
      this.idle.delete(file);
      oldest.cap.close();
    }
    const n = (this.rels.get(t.at.rel) ?? 1) - 1;
    if (n > 0) this.rels.set(t.at.rel, n);
    else this.rels.delete(t.at.rel);
  }

  private track(db: Connection): Tracked | undefined {
    const known = this.byConn.get(db);
    if (known !== undefined) return known ?? undefined;
    const t = this.learn(db);
    this.byConn.set(db, t ?? null);
    if (t !== undefined) modeUnknown.add(db);
    return t;
  }

  private learn(db: Connection): Tracked | undefined {
    if (db.memory || db.readonly || db.name === '') return undefined;
    if (db.name.startsWith('file:')) {
      warnOnce('sqlite-uri', `better-sqlite3: a database opened by a file: URI (${db.name.slice(0, 80)}) is not replicated; open it by its path`);
      return undefined;
    }
    let abs: string;
    try {
      // Where it was opened: a relative name means the directory of that moment, not of now.
      abs = realFs.realpathNative(openedAt.get(db) ?? path.resolve(db.name));
    } catch {
      return undefined;
    }
    const at = objectJournal()?.locate(abs);
    if (at === undefined) return undefined;
    let t = this.byFile.get(abs);
    if (t === undefined && this.idle.has(abs)) {
      t = this.idle.get(abs)!;
      this.idle.delete(abs);
      this.byFile.set(abs, t);
      this.rels.set(at.rel, (this.rels.get(at.rel) ?? 0) + 1);
    }
    if (t === undefined) {
      this.byFile.set(abs, (t = { cap: new DbCapture(abs), at, conns: 0 }));
      this.rels.set(at.rel, (this.rels.get(at.rel) ?? 0) + 1);
    }
    t.conns++;
    return t;
  }
}

/**
 * Runs `read` while `t`'s database is held in a read transaction, so that no other process can
 * commit and its file holds one state. The connection is the application's own better-sqlite3
 * class (the instance's constructor): another copy of SQLite would not share this process's locks
 * on the file, and its close could drop them.
 */
function holdStill<T>(t: Tracked, db: Connection, read: () => T): T {
  t.side ??= new ((db as unknown as { constructor: SideConstructor }).constructor)(t.cap.file, { readonly: true, fileMustExist: true, timeout: SIDE_TIMEOUT_MS });
  return inReadTransaction(t.side, read);
}

/** Closes `t`'s side connection, if it has one (through SQLite, which keeps the locks of the process's other connections). */
function closeSide(t: Tracked): void {
  try {
    t.side?.close();
  } catch {
    // already closed with its database's end
  }
  t.side = undefined;
}
