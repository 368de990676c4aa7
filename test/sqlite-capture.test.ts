import test from 'ava';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { DbCapture, type DbChange, type HoldRead } from '../agent/sqlite/capture';
import type { Descriptors } from '../agent/sqlite/descriptors';
import { inReadTransaction } from '../agent/sqlite/hold';
import { ModelStandby, tableRows } from './helpers/sqlite-model';
import { tempDir } from './helpers/temp-dir';

// What the agent reads after each commit, applied to a model standby by the standby's rules:
// after every step the model's rows are the primary's. Real better-sqlite3 databases, no agent.

interface Rig { db: Database.Database; cap: DbCapture; model: ModelStandby; kinds: string[]; file: string; hold?: HoldRead }

/**
 * A database in `mode`. 'DELETE, read from the file' gives the capture a hold, as the agent
 * does: a read transaction on a second connection while it reads the pages from the file.
 */
function rig(t: Parameters<typeof tempDir>[0], mode: Mode): Rig {
  const file = path.join(tempDir(t, 'sqlite-capture'), 'app.db');
  const db = new Database(file);
  db.pragma(`journal_mode = ${mode === 'WAL' ? 'WAL' : 'DELETE'}`);
  const r: Rig = { db, cap: new DbCapture(file), model: new ModelStandby(), kinds: [], file };
  let side: Database.Database | undefined;
  if (mode === HELD) {
    r.hold = <T>(read: () => T): T => inReadTransaction((side ??= new Database(file, { readonly: true, fileMustExist: true })), read);
  }
  t.teardown(() => {
    side?.close();
    if (r.db.open) r.db.close();
    r.cap.close();
  });
  return r;
}

const HELD = 'DELETE, read from the file';
type Mode = 'WAL' | 'DELETE' | typeof HELD;

/** Captures what `r.db` committed, applies it to the model, and checks the model equals the primary. */
function step(t: { deepEqual(a: unknown, b: unknown, m?: string): void }, r: Rig, what: string, db = r.db, compare = true): DbChange | undefined {
  const c = r.cap.capture(() => db.serialize(), r.hold);
  if (c !== undefined) {
    r.model.apply(c.op, c.data);
    r.kinds.push(c.op.kind);
  }
  if (compare && r.model.image !== undefined) t.deepEqual(r.model.rows(), tableRows(db), what);
  return c;
}

for (const mode of ['WAL', 'DELETE', HELD] as const) {
  test(`${mode}: many small transactions, one large, updates and deletes; the first change goes whole, the rest as changes`, (t) => {
    const r = rig(t, mode);
    r.db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
    step(t, r, 'schema');
    const put = r.db.prepare('INSERT OR REPLACE INTO kv VALUES (?, ?)');
    for (let i = 0; i < 50; i++) {
      put.run(i, `v${i}`);
      step(t, r, `insert ${i}`, r.db, i % 10 === 0);
    }
    r.db.transaction(() => {
      for (let i = 50; i < 3000; i++) put.run(i, 'x'.repeat(i % 300));
    })();
    step(t, r, 'large transaction');
    r.db.prepare('UPDATE kv SET v = ? WHERE k % 7 = 0').run('seven');
    r.db.prepare('DELETE FROM kv WHERE k % 5 = 0').run();
    step(t, r, 'two commits read at once');
    t.is(r.kinds[0], 'image');
    const changes = r.kinds.filter((k) => k !== 'image').length;
    // Rollback mode sends an image when more than one commit passed between reads.
    t.true(changes >= 50, `${changes} changes of ${r.kinds.length}`);
    t.is(r.cap.capture(() => r.db.serialize(), r.hold), undefined, 'nothing more to read');
  });

  test(`${mode}: VACUUM and a schema change keep the model equal`, (t) => {
    const r = rig(t, mode);
    r.db.exec('CREATE TABLE a (x)');
    step(t, r, 'schema');
    const ins = r.db.prepare('INSERT INTO a VALUES (?)');
    r.db.transaction(() => {
      for (let i = 0; i < 2000; i++) ins.run('y'.repeat(200));
    })();
    step(t, r, 'fill');
    r.db.exec('DELETE FROM a WHERE rowid % 2 = 0');
    step(t, r, 'delete half');
    r.db.exec('VACUUM');
    step(t, r, 'vacuum');
    r.db.exec('ALTER TABLE a ADD COLUMN z DEFAULT 3; CREATE INDEX ax ON a(x)');
    step(t, r, 'alter');
  });
}

test('WAL: checkpoints of every mode, automatic ones past 1000 frames, and restarts are followed without an image', (t) => {
  const r = rig(t, 'WAL');
  r.db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  step(t, r, 'schema');
  const put = r.db.prepare('INSERT OR REPLACE INTO kv VALUES (?, ?)');
  let n = 0;
  for (const ckpt of ['PASSIVE', 'FULL', 'RESTART', 'TRUNCATE', 'PASSIVE']) {
    for (let i = 0; i < 30; i++) {
      put.run(n++, 'v'.repeat(100));
      if (step(t, r, `insert ${n}`)?.op.kind === 'image' && n > 1) t.fail(`image at insert ${n} after ${ckpt}`);
    }
    r.db.pragma(`wal_checkpoint(${ckpt})`);
    if (step(t, r, `checkpoint ${ckpt}`)?.op.kind === 'image') t.fail(`image at checkpoint ${ckpt}`);
  }
  // Past the automatic checkpoint (1000 pages) the WAL restarts at the next writer.
  for (let i = 0; i < 1500; i++) {
    put.run(n++, 'w'.repeat(3000));
    const c = step(t, r, `big insert ${n}`, r.db, i % 100 === 99);
    if (c?.op.kind === 'image') t.fail(`image at big insert ${n}`);
  }
  t.deepEqual(r.kinds.filter((k) => k === 'image'), ['image'], 'one image: the first change');
});

test('WAL: another connection writing between reads is read too; its frames are not missed', (t) => {
  const r = rig(t, 'WAL');
  r.db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  step(t, r, 'schema');
  const other = new Database(r.file);
  t.teardown(() => other.close());
  for (let i = 0; i < 40; i++) {
    other.prepare('INSERT INTO kv VALUES (?, ?)').run(i * 2, 'other');
    r.db.prepare('INSERT INTO kv VALUES (?, ?)').run(i * 2 + 1, 'mine');
    step(t, r, `pair ${i}`);
  }
  // The other connection checkpoints and restarts the WAL with commits of its own before the next read.
  other.pragma('wal_checkpoint(TRUNCATE)');
  other.prepare('INSERT INTO kv VALUES (?, ?)').run(1000, 'after restart');
  other.prepare('INSERT INTO kv VALUES (?, ?)').run(1001, 'after restart');
  const c = step(t, r, 'after the other restarted the WAL');
  t.is(c?.op.kind, 'wal', 'restart and two commits accounted for: a change, not an image');
  // Two restarts between reads: the old generation's tail cannot be proven complete.
  other.pragma('wal_checkpoint(TRUNCATE)');
  other.prepare('INSERT INTO kv VALUES (?, ?)').run(1002, 'x');
  other.pragma('wal_checkpoint(TRUNCATE)');
  other.prepare('INSERT INTO kv VALUES (?, ?)').run(1003, 'y');
  t.is(step(t, r, 'two restarts')?.op.kind, 'image');
});

test('WAL: closed and reopened, switched to DELETE and back: each lands as an image, never a torn change', (t) => {
  const r = rig(t, 'WAL');
  r.db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  step(t, r, 'schema');
  r.db.prepare('INSERT INTO kv VALUES (1, ?)').run('a');
  step(t, r, 'one');
  r.db.close();
  r.cap.close();
  r.db = new Database(r.file);
  r.db.prepare('INSERT INTO kv VALUES (2, ?)').run('b');
  t.is(step(t, r, 'after reopen')?.op.kind, 'image');
  r.db.pragma('journal_mode = DELETE');
  r.db.prepare('INSERT INTO kv VALUES (3, ?)').run('c');
  t.is(step(t, r, 'rollback mode')?.op.kind, 'image');
  r.db.prepare('INSERT INTO kv VALUES (4, ?)').run('d');
  t.is(step(t, r, 'rollback change')?.op.kind, 'rollback');
  r.db.pragma('journal_mode = WAL');
  r.db.prepare('INSERT INTO kv VALUES (5, ?)').run('e');
  t.is(step(t, r, 'WAL again')?.op.kind, 'image');
  r.db.prepare('INSERT INTO kv VALUES (6, ?)').run('f');
  t.is(step(t, r, 'WAL change')?.op.kind, 'wal');
});

test('a rolled-back transaction journals nothing', (t) => {
  const r = rig(t, 'WAL');
  r.db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  step(t, r, 'schema');
  const put = r.db.prepare('INSERT INTO kv VALUES (?, ?)');
  t.throws(() => r.db.transaction(() => {
    for (let i = 0; i < 500; i++) put.run(i, 'z'.repeat(2000));
    throw new Error('abandon');
  })());
  t.is(r.cap.capture(() => r.db.serialize()), undefined);
  put.run(1, 'kept');
  t.is(step(t, r, 'after the rollback')?.op.kind, 'wal');
});

test('with no descriptor to be had (a worker thread without /proc), every change still arrives, as an image', (t) => {
  const file = path.join(tempDir(t, 'sqlite-capture'), 'app.db');
  const db = new Database(file);
  t.teardown(() => db.close());
  db.pragma('journal_mode = WAL');
  const none: Descriptors = { open: () => -1, release: () => undefined, valid: () => true };
  const r: Rig = { db, cap: new DbCapture(file, none), model: new ModelStandby(), kinds: [], file };
  db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  step(t, r, 'schema');
  for (let i = 0; i < 5; i++) {
    db.prepare('INSERT INTO kv VALUES (?, ?)').run(i, 'v');
    step(t, r, `insert ${i}`);
  }
  t.deepEqual(r.kinds, ['image', 'image', 'image', 'image', 'image', 'image']);
});
