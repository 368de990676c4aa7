import * as path from 'node:path';
import { CommitTimeoutError } from '../../commit-wait';
import { warnOnce } from '../../log';
import { objectJournal } from '../../objects';
import { SQLITE_WRAPPED } from '../../unseen-stores';
import { Databases, noteOpened, type Connection } from '../../sqlite/databases';
import { patch } from '../wrap';
import type { Fn } from './types';

/** A better-sqlite3 Statement as the wrappers see it. */
interface Statement { readonly database: Connection; readonly readonly: boolean; readonly source: string }

/** The databases of this thread (a worker thread loads its own copy of the library, and of this). */
const databases = new Databases();
/** Statement prototypes already wrapped: one per copy of the native addon. */
const wrapped = new WeakSet<object>();
/** Per statement: whether it can commit. Read-only statements cannot, except these. */
const commits = new WeakMap<object, boolean>();
const ENDS_TRANSACTION = /^\s*(commit|end|release|rollback)\b/i;

/**
 * Wraps better-sqlite3 (12.x): its writes are made by SQLite in native code, so what a commit
 * changed is read after each call that may have committed (agent/sqlite) and journaled in the
 * journal's one sequence. The calls: a statement's run/get/all/iterate (db.transaction() and
 * db.pragma() are statements underneath), db.exec, db.close, db.backup and construction.
 */
export function patchBetterSqlite(exports: unknown): unknown {
  const Database = exports as { prototype?: Record<string, unknown> } & (new (file: string) => Connection & { prepare(sql: string): object; close(): void });
  const proto = Database.prototype;
  if (typeof exports !== 'function' || proto === undefined) return exports;
  // Before the probe below loads the addon: its load is then known to be a wrapped one (agent/unseen-stores).
  (globalThis as { [SQLITE_WRAPPED]?: boolean })[SQLITE_WRAPPED] = true;
  // The prototype every statement shares (the default addon's), wrapped before any is made.
  try {
    const probe = new Database(':memory:');
    wrapStatements(Object.getPrototypeOf(probe.prepare('SELECT 1')) as object);
    probe.close();
  } catch {
    // No addon to load yet (a custom nativeBinding only): wrapped at the first prepare.
  }
  patch(proto, 'exec', (orig) => function (this: unknown, ...args: unknown[]) {
    notCaptured(args[0], this as Connection);
    return written(this as Connection, () => orig.apply(this, args));
  });
  // A backup is a new database file written from native code: journaled as a copy once it is complete.
  patch(proto, 'backup', (orig) => function (this: unknown, ...args: unknown[]) {
    const result = orig.apply(this, args) as Promise<unknown>;
    const dest = args[0];
    if (typeof dest !== 'string' || objectJournal() === undefined) return result;
    return result.then((r) => {
      try {
        objectJournal()?.fileWritten(path.resolve(dest), `the backup ${dest}`);
      } catch (err) {
        if (err instanceof CommitTimeoutError) throw err;
        warnOnce(`sqlite-backup:${(err as Error).message}`, `the backup ${dest} was written but could not be journaled: ${(err as Error).message}`);
      }
      return r;
    });
  });
  patch(proto, 'close', (orig) => function (this: unknown, ...args: unknown[]) {
    if (objectJournal() !== undefined) databases.after(this as Connection);
    const result = orig.apply(this, args);
    databases.closed(this as Connection);
    return result;
  });
  // Statements made with a custom `nativeBinding` have their own prototype: wrapped at first prepare.
  patch(proto, 'prepare', (orig) => function (this: unknown, ...args: unknown[]) {
    notCaptured(args[0], this as Connection);
    const stmt = orig.apply(this, args) as object;
    wrapStatements(Object.getPrototypeOf(stmt) as object);
    return stmt;
  });
  // db.pragma('journal_mode = ...') prepares natively: it is seen here.
  patch(proto, 'pragma', (orig) => function (this: unknown, ...args: unknown[]) {
    if (typeof args[0] === 'string' && MODES.test(args[0])) databases.modeMayChange(this as Connection);
    return orig.apply(this, args);
  });
  patch(proto, 'transaction', (orig) => function (this: unknown, ...args: unknown[]) {
    // db.transaction() commits through statements prepared natively: their prototype must be wrapped first.
    const db = this as Connection & { prepare(sql: string): object };
    if (db.open) db.prepare('SELECT 1');
    return orig.apply(this, args);
  });
  // Construction is seen, so a relative name is taken where it was opened (a later chdir
  // would make it another file); everything else passes straight to the library.
  const Db = exports as new (...args: unknown[]) => object;
  return new Proxy(Db, {
    construct(target, args, newTarget) {
      const db = Reflect.construct(target, args, newTarget) as object;
      noteOpened(db, args[0]);
      return db;
    },
    apply(target, _self, args) {
      // Database(file) without new, which better-sqlite3 allows.
      const db = Reflect.construct(target, args) as object;
      noteOpened(db, args[0]);
      return db;
    },
  });
}

/** SQL that may change how a database keeps its files: the capture looks at them again. */
const MODES = /journal_mode|locking_mode/i;
/** What SQL can write that the capture does not follow: another database file through this connection. */
const UNCAPTURED = /\battach\b|\bvacuum\b[\s\S]*\binto\b/i;

/** Says once that an ATTACHed database or a VACUUM INTO file is not replicated (the main database still is). */
function notCaptured(sql: unknown, db: Connection): void {
  if (typeof sql !== 'string' || objectJournal() === undefined) return;
  if (MODES.test(sql)) databases.modeMayChange(db);
  if (!UNCAPTURED.test(sql)) return;
  const what = /\battach\b/i.test(sql) ? 'a database reached through ATTACH' : 'the file VACUUM INTO writes';
  warnOnce(`sqlite-uncaptured:${what}`, `better-sqlite3: ${what} is not replicated (only each connection's main database is captured); keep it outside the roots or open it with a connection of its own`);
}

/** Wraps the calls of a Statement prototype once. */
function wrapStatements(sp: object): void {
  if (wrapped.has(sp)) return;
  wrapped.add(sp);
  for (const name of ['run', 'get', 'all']) {
    patch(sp, name, (orig) => function (this: unknown, ...args: unknown[]) {
      const stmt = this as Statement;
      return canCommit(stmt) ? written(stmt.database, () => orig.apply(this, args)) : orig.apply(this, args);
    });
  }
  patch(sp, 'iterate', (orig) => function (this: unknown, ...args: unknown[]) {
    const it = orig.apply(this, args) as Iterator<unknown> & Iterable<unknown>;
    const stmt = this as Statement;
    return canCommit(stmt) ? afterIteration(it, stmt.database) : it;
  });
}

function canCommit(stmt: Statement): boolean {
  let c = commits.get(stmt);
  if (c === undefined) commits.set(stmt, (c = !stmt.readonly || ENDS_TRANSACTION.test(stmt.source)));
  return c;
}

/** Runs a call that may commit through the freeze gate, then journals what it committed, even when it threw (an exec may commit before failing). */
function written(db: Connection, call: Fn): unknown {
  const oj = objectJournal();
  if (oj === undefined) return call.apply(undefined, []);
  return oj.gated(() => {
    try {
      return call.apply(undefined, []);
    } finally {
      databases.after(db);
    }
  });
}

/** An iterator over a statement that may commit (a RETURNING write): what it committed is journaled when it ends. */
function afterIteration(it: Iterator<unknown> & Iterable<unknown>, db: Connection): IterableIterator<unknown> {
  const wrappedIt: IterableIterator<unknown> = {
    next() {
      const r = it.next();
      if (r.done === true) databases.after(db);
      return r;
    },
    return(value?: unknown) {
      const r = it.return?.(value) ?? { done: true as const, value };
      databases.after(db);
      return r;
    },
    [Symbol.iterator]() {
      return wrappedIt;
    },
  };
  return wrappedIt;
}

/** For tests: what the agent saw of this thread's databases. */
export const sqliteDatabases = databases;
