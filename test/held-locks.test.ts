import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { closeKeepingLocks, lockedHere, parkedCount } from '../agent/held-locks';
import { Snapshotter } from '../agent/snapshot';
import { MemorySink } from './helpers/memory-sink';
import { Reconciler } from '../agent/reconcile';
import { parseRoots } from '../lib/roots';

// Real POSIX locks, taken by SQLite in this process, read back from /proc/locks.

// Serial: what is kept open is the process's, counted by parkedCount.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A database in `mode` with rows, in a directory of its own; no connection left open. */
function database(t: { teardown(fn: () => void): void }, name: string, mode: 'DELETE' | 'WAL'): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-locks-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, name);
  const w = new Database(file);
  w.pragma(`journal_mode = ${mode}`);
  w.exec('CREATE TABLE t (a); INSERT INTO t VALUES (1), (2), (3)');
  w.close();
  return { dir, file };
}

/** A rollback-mode database with rows, and a read-only connection that holds its SHARED lock while `reading` is open. */
function lockedDatabase(t: { teardown(fn: () => void): void }) {
  const { dir, file } = database(t, 'x.db', 'DELETE');
  const reader = new Database(file, { readonly: true });
  t.teardown(() => reader.close());
  return {
    dir, file,
    /** Opens a read transaction (a statement stepped once and left open): SQLite takes its lock. */
    read(): { end(): void } {
      const it = reader.prepare('SELECT * FROM t').iterate();
      it.next();
      return { end: () => void it.return?.() };
    },
  };
}

const held = (file: string): boolean => lockedHere(fs.statSync(file)) === true;

test.serial('lockedHere sees a lock SQLite holds in this process, and only while it holds it', (t) => {
  const db = lockedDatabase(t);
  t.false(held(db.file));
  const r = db.read();
  t.true(held(db.file));
  r.end();
  t.false(held(db.file));
});

test.serial('a descriptor whose file got locked while it was open is kept open, and closed once the lock is gone', async (t) => {
  const db = lockedDatabase(t);
  const fd = fs.openSync(db.file, 'r');
  const r = db.read();
  closeKeepingLocks(fs.fstatSync(fd), () => fs.closeSync(fd));
  t.notThrows(() => fs.fstatSync(fd), 'still open');
  t.true(held(db.file), "SQLite's lock is still held");
  t.is(parkedCount(), 1);
  r.end();
  for (let i = 0; i < 40 && parkedCount() > 0; i++) await sleep(100);
  t.is(parkedCount(), 0);
  t.throws(() => fs.fstatSync(fd), { code: 'EBADF' }, 'closed once nothing was locked');
});

test.serial('a Snapshotter that keeps locks leaves a locked database unread and its lock held; without it the read drops the lock', (t) => {
  const db = lockedDatabase(t);
  const sink = new MemorySink();
  const keeping = new Snapshotter(sink, { databases: true, keepLocks: true });
  const r = db.read();
  t.is(keeping.snapshot('data', 'x.db', db.file).kind, 'locked');
  t.is(keeping.snapshot('data', 'x.db-journal', `${db.file}-journal`).kind, 'absent');
  t.true(held(db.file), 'the lock is still held');
  t.is(sink.changes.length, 0);
  // The control: the same read as another process would make it (understudy watch, baseline) drops the lock here.
  new Snapshotter(new MemorySink(), { databases: true }).snapshot('data', 'x.db', db.file);
  t.false(held(db.file), 'a plain read drops the lock: what keepLocks prevents');
  r.end();
  t.is(keeping.snapshot('data', 'x.db', db.file).kind, 'database', 'read once nothing holds it');
  t.is(sink.changes.length, 1);
});

test.serial("a database's side file is left unread, the database not opened, while the database is locked", (t) => {
  const db = lockedDatabase(t);
  const side = `${db.file}-journal`;
  const r = db.read();
  // After the read began: SQLite would otherwise take it for a hot journal to roll back.
  fs.writeFileSync(side, 'a journal would be here');
  const sink = new MemorySink();
  t.is(new Snapshotter(sink, { databases: true, keepLocks: true }).snapshot('data', 'x.db-journal', side).kind, 'locked');
  t.true(held(db.file), "telling the side file did not open (and close) the database");
  r.end();
  t.is(new Snapshotter(sink, { databases: true, keepLocks: true }).snapshot('data', 'x.db-journal', side).kind, 'part-of-database');
  t.is(sink.changes.length, 0);
});

test.serial('an ordinary file is read as before by a Snapshotter that keeps locks', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-locks-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'a.txt'), 'hello');
  const sink = new MemorySink();
  t.deepEqual(new Snapshotter(sink, { databases: true, keepLocks: true }).snapshot('data', 'a.txt', path.join(dir, 'a.txt')), { kind: 'file', bytes: 5 });
  t.is(sink.changes[0].data.toString(), 'hello');
  t.is(parkedCount(), 0);
});

test.serial('the reconciler leaves a locked file for later, says so once, and journals it once the lock is gone', async (t) => {
  const db = lockedDatabase(t);
  const sink = new MemorySink();
  const seen: string[] = [];
  sink.onRecord = (c) => seen.push(`${c.op.op} ${c.path}`);
  const locked: string[] = [];
  const rec = new Reconciler(parseRoots(`data=${db.dir}`), new Snapshotter(sink, { databases: true, keepLocks: true }), () => false,
    { settleMs: 20, fullPassEveryMs: 300, objectsPerSecond: 100_000, pollMs: 100 }, { onLocked: (root, rel) => locked.push(`${root}/${rel}`) });
  t.teardown(() => rec.close());
  await rec.learn(() => Date.now() + 1000);
  const r = db.read();
  // Changed by another hand while this process holds its lock: it differs from what the journal has.
  fs.utimesSync(db.file, new Date(), new Date(Date.now() - 5000));
  rec.touch(db.file);
  for (let i = 0; i < 40 && rec.lockedCount === 0; i++) await sleep(25);
  await sleep(500);
  t.deepEqual(locked, ['data/x.db'], 'said once, however many looks');
  t.deepEqual(seen, []);
  t.true(held(db.file));
  r.end();
  for (let i = 0; i < 40 && seen.length === 0; i++) await sleep(50);
  t.deepEqual(seen, ['sqlite x.db']);
  t.is(rec.lockedCount, 0);
});

test.serial('a WAL database nothing else holds is read as an image, and nothing is left open after (its own connection locks it while open)', (t) => {
  const { file } = database(t, 'w.db', 'WAL');
  const sink = new MemorySink();
  t.is(new Snapshotter(sink, { databases: true, keepLocks: true }).snapshot('data', 'w.db', file).kind, 'database');
  t.is(parkedCount(), 0, 'nothing kept open');
  t.false(held(file), 'no lock left');
  const fds = fs.readdirSync('/proc/self/fd').filter((fd) => { try { return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(file); } catch { return false; } });
  t.deepEqual(fds, [], 'no descriptor of the database or its side files left');
});
