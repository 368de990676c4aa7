import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { tempDir } from './helpers/temp-dir';
import { SqlitePageWriter, type SqliteConstructor, type WritePoint } from '../replayer/apply/sqlite-file';
import { BadEntryError } from '../lib/errors';

// Real better-sqlite3 throughout: a source database changes, its pages go through the writer
// into a standby file, and separate connections (and processes) read that file as SQLite does.

interface Stmt { all(...params: unknown[]): unknown[]; get(...params: unknown[]): unknown; run(...params: unknown[]): unknown }
interface Db {
  exec(sql: string): void;
  prepare(sql: string): Stmt;
  pragma(source: string, options?: { simple?: boolean }): unknown;
  serialize(): Buffer;
  close(): void;
  readonly inTransaction: boolean;
  transaction(fn: () => void): () => void;
}
type DbCtor = new (file: string, options?: { readonly?: boolean; timeout?: number }) => Db;

const SQLITE = require.resolve('better-sqlite3');
const Database = require(SQLITE) as DbCtor;
const Writer = Database as unknown as SqliteConstructor;
const MODULE = path.join(__dirname, '..', 'replayer', 'apply', 'sqlite-file.js');

interface Batch { pageSize: number; size: number; pages: Map<number, Buffer> }

/** The pages of `next` that differ from `prev` (all of them when there is no prev or its page size differs). */
function diff(prev: Buffer | undefined, next: Buffer): Batch {
  const pageSize = pageSizeOf(next);
  const size = next.length / pageSize;
  const whole = prev === undefined || pageSizeOf(prev) !== pageSize;
  const pages = new Map<number, Buffer>();
  for (let p = 1; p <= size; p++) {
    const page = next.subarray((p - 1) * pageSize, p * pageSize);
    const old = whole ? undefined : prev.subarray((p - 1) * pageSize, p * pageSize);
    if (old === undefined || old.length < pageSize || !old.equals(page)) pages.set(p, Buffer.from(page));
  }
  return { pageSize, size, pages };
}

/** The page size a database image records in its header. */
function pageSizeOf(image: Buffer): number {
  const v = image.readUInt16BE(16);
  return v === 1 ? 65536 : v;
}

/** Schema and every row of every table (as JSON, sorted). */
function rows(db: Db): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  out.schema = db.prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name").all();
  const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").all() as { name: string }[];
  // Sorted here, not by rowid: a WITHOUT ROWID table has none.
  for (const { name } of tables) out[name] = db.prepare(`SELECT * FROM "${name}"`).all().map((r) => JSON.stringify(r)).sort();
  return out;
}

/** An image with the bytes the writer patches (change counter, version-valid-for) zeroed. */
function unpatched(image: Buffer): Buffer {
  const b = Buffer.from(image);
  b.fill(0, 24, 28);
  b.fill(0, 92, 96);
  return b;
}

/** A source database in rollback mode that ships its changes into a standby writer. */
class Source {
  readonly db: Db;
  private prev: Buffer | undefined;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode=DELETE');
  }

  /** The pages changed since the last call, written into `w`. */
  ship(w: SqlitePageWriter): { batch: Batch; journaled: number; written: number } {
    const image = this.db.serialize();
    const batch = diff(this.prev, image);
    this.prev = image;
    const stats = w.write(batch.pageSize, batch.size, batch.pages);
    return { batch, ...stats };
  }
}

test('every kind of change reaches the standby, which a reader kept open sees exactly', (t) => {
  const dir = tempDir(t, 'sqlfile');
  const lines: string[] = [];
  const src = new Source(path.join(dir, 'source.db'));
  const standby = path.join(dir, 'standby.db');
  const w = SqlitePageWriter.open(standby, Writer, (l) => lines.push(l));
  t.deepEqual(w.shape(), { pageSize: 0, size: 0 });
  const reader = new Database(standby, { readonly: true });
  t.teardown(() => { reader.close(); w.close(); src.db.close(); });

  const check = (label: string): void => {
    t.deepEqual(rows(reader), rows(src.db), label);
    t.is(reader.pragma('integrity_check', { simple: true }), 'ok', label);
    t.true(unpatched(reader.serialize()).equals(unpatched(src.db.serialize())), `${label}: page for page the source's`);
  };
  const step = (label: string, sql: string): ReturnType<Source['ship']> => {
    src.db.exec(sql);
    const r = src.ship(w);
    check(label);
    return r;
  };

  step('first image', 'CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t (v) VALUES (\'a\'), (\'b\')');
  t.true(lines.some((l) => l.includes('was empty')));
  const grow = step('growth', "INSERT INTO t (v) SELECT hex(randomblob(150)) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 3000) SELECT value FROM s)");
  t.true(grow.batch.size > 100);
  const small = step('a one-row update', "UPDATE t SET v = 'changed' WHERE id = 1500");
  t.true(small.written <= 3 && small.journaled <= 3, `written ${small.written}, journaled ${small.journaled}`);
  step('schema change', 'CREATE TABLE u (k TEXT PRIMARY KEY, n INTEGER) WITHOUT ROWID; CREATE INDEX t_v ON t (v); ALTER TABLE t ADD COLUMN w INTEGER DEFAULT 7');
  step('big transaction', "BEGIN; INSERT INTO u SELECT 'k' || value, value FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 20000) SELECT value FROM s); UPDATE t SET w = id % 13; COMMIT");
  const before = w.shape().size;
  const shrink = step('shrink', 'DELETE FROM t WHERE id > 100; DELETE FROM u WHERE n > 50; VACUUM');
  t.true(shrink.batch.size < before / 10 && w.shape().size === shrink.batch.size);
  step('page size up', 'PRAGMA page_size = 8192; VACUUM');
  t.is(w.shape().pageSize, 8192);
  step('page size down', "PRAGMA page_size = 1024; VACUUM; INSERT INTO t (v) SELECT hex(randomblob(300)) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 500) SELECT value FROM s)");
  t.is(w.shape().pageSize, 1024);
  step('after the changes of page size', "UPDATE t SET v = 'last' WHERE id = 2; DROP INDEX t_v");
  // A connection opened now agrees with the one kept open.
  const fresh = new Database(standby, { readonly: true });
  t.deepEqual(rows(fresh), rows(src.db));
  fresh.close();
  t.false(fs.existsSync(`${standby}-journal`));
});

test('bad input is refused with a clear error, and the standby is left as it was', (t) => {
  const dir = tempDir(t, 'sqlfile');
  const src = new Source(path.join(dir, 'source.db'));
  const standby = path.join(dir, 'standby.db');
  const w = SqlitePageWriter.open(standby, Writer);
  t.teardown(() => { w.close(); src.db.close(); });
  const image = (): Buffer => src.db.serialize();
  const whole = (img: Buffer): Map<number, Buffer> => diff(undefined, img).pages;

  src.db.exec("CREATE TABLE t (v); INSERT INTO t SELECT randomblob(900) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 40) SELECT value FROM s)");
  const first = image();
  const partial = whole(first);
  partial.delete(3);
  t.throws(() => w.write(4096, first.length / 4096, partial), { instanceOf: BadEntryError, message: /empty database needs every page.*page 3 is missing/ });
  t.deepEqual(w.shape(), { pageSize: 0, size: 0 }, 'nothing written');
  src.ship(w);
  const state = rows(src.db);

  const p = (n: number, len = 4096): Map<number, Buffer> => new Map([[n, Buffer.alloc(len)]]);
  t.throws(() => w.write(1000, 20, p(2, 1000)), { instanceOf: BadEntryError, message: /page size 1000 is not a power of two/ });
  t.throws(() => w.write(256, 20, p(2, 256)), { instanceOf: BadEntryError, message: /page size 256 is not a power of two/ });
  t.throws(() => w.write(131072, 20, p(2, 131072)), { instanceOf: BadEntryError, message: /page size 131072/ });
  t.throws(() => w.write(4096, 20, p(2, 4095)), { instanceOf: BadEntryError, message: /page 2 is 4095 bytes, not the page size 4096/ });
  t.throws(() => w.write(4096, 20, p(0)), { instanceOf: BadEntryError, message: /page number 0/ });
  t.throws(() => w.write(4096, 5, p(9)), { instanceOf: BadEntryError, message: /page 9 lies past the database's size of 5 pages/ });
  t.throws(() => w.write(4096, 0, new Map()), { instanceOf: BadEntryError, message: /database size 0/ });
  t.throws(() => w.write(4096, 20, new Map([[1, Buffer.alloc(4096)]])), { instanceOf: BadEntryError, message: /page 1 does not begin with the SQLite header/ });
  const cur = w.shape().size;
  t.throws(() => w.write(4096, cur + 2, p(cur + 2)), { instanceOf: BadEntryError, message: new RegExp(`page ${cur + 1} is new`) });
  src.db.exec('PRAGMA page_size = 1024; VACUUM');
  const resized = whole(image());
  resized.delete(7);
  t.throws(() => w.write(1024, image().length / 1024, resized), { instanceOf: BadEntryError, message: /change of page size from 4096 to 1024 needs every page.*page 7 is missing/ });

  const notDb = path.join(dir, 'not.db');
  fs.writeFileSync(notDb, 'this is not a database, and a page writer must not take it for one');
  t.throws(() => SqlitePageWriter.open(notDb, Writer), { any: true, message: /file is not a database/ });

  const reader = new Database(standby, { readonly: true });
  t.deepEqual(rows(reader), state);
  t.is(reader.pragma('integrity_check', { simple: true }), 'ok');
  reader.close();
  t.false(fs.existsSync(`${standby}-journal`));
});

test('a stale -wal and -shm are removed at open, a WAL-format header is turned to rollback, and a WAL primary ships', (t) => {
  const dir = tempDir(t, 'sqlfile');
  const primaryFile = path.join(dir, 'primary.db');
  const primary = new Database(primaryFile);
  primary.pragma('journal_mode=WAL');
  primary.exec("CREATE TABLE t (v TEXT); INSERT INTO t VALUES ('in the db file')");
  primary.pragma('wal_checkpoint(TRUNCATE)');
  primary.exec("INSERT INTO t VALUES ('only in the wal')");
  // A file copy of a live WAL database: the -wal holds a row the copied db file does not.
  const standby = path.join(dir, 'standby.db');
  for (const s of ['', '-wal', '-shm']) fs.copyFileSync(primaryFile + s, standby + s);
  const lines: string[] = [];
  const w = SqlitePageWriter.open(standby, Writer, (l) => lines.push(l));
  t.teardown(() => { w.close(); primary.close(); });
  t.true(lines.some((l) => l.endsWith('-wal was stale beside a rollback-mode standby: removed')), lines.join('\n'));
  t.true(lines.some((l) => l.endsWith('-shm was stale beside a rollback-mode standby: removed')));
  t.true(lines.some((l) => l.includes('was in journal mode wal: set to delete')));
  t.false(fs.existsSync(`${standby}-wal`));

  const reader = new Database(standby, { readonly: true });
  t.deepEqual(reader.prepare('SELECT v FROM t').all(), [{ v: 'in the db file' }], 'the stale wal was not applied');
  // The primary's image (WAL format, header bytes 18 and 19 = 2) becomes a rollback-mode standby.
  const image = primary.serialize();
  t.is(image[18], 2);
  const b = diff(undefined, image);
  w.write(b.pageSize, b.size, b.pages);
  t.deepEqual(rows(reader), rows(primary));
  t.is(reader.pragma('integrity_check', { simple: true }), 'ok');
  t.is(reader.pragma('journal_mode', { simple: true }), 'delete');
  reader.close();
  t.false(fs.existsSync(`${standby}-wal`));

  // One copied in later is removed under the lock of the next write, and said so.
  fs.writeFileSync(`${standby}-wal`, 'stale');
  lines.length = 0;
  primary.exec("INSERT INTO t VALUES ('third')");
  const next = diff(image, primary.serialize());
  w.write(next.pageSize, next.size, next.pages);
  t.false(fs.existsSync(`${standby}-wal`));
  t.true(lines.some((l) => l.endsWith('-wal was stale beside a rollback-mode standby: removed')));
});

test('a write costs the pages it writes, not the database', (t) => {
  const dir = tempDir(t, 'sqlfile');
  const src = new Source(path.join(dir, 'source.db'));
  const w = SqlitePageWriter.open(path.join(dir, 'standby.db'), Writer);
  t.teardown(() => { w.close(); src.db.close(); });
  src.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); INSERT INTO t (v) SELECT randomblob(1000) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 12000) SELECT value FROM s)');
  const first = src.ship(w);
  t.true(first.batch.size > 3000, `${first.batch.size} pages`);
  const times: number[] = [];
  let prev = src.db.serialize();
  for (let i = 0; i < 20; i++) {
    src.db.prepare('UPDATE t SET v = randomblob(1000) WHERE id = ?').run(1 + i * 500);
    const next = src.db.serialize();
    const b = diff(prev, next);
    prev = next;
    const t0 = process.hrtime.bigint();
    const r = w.write(b.pageSize, b.size, b.pages);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    t.true(b.pages.size <= 3 && r.written <= 3 && r.journaled <= 3, `pages ${b.pages.size}, written ${r.written}, journaled ${r.journaled}`);
  }
  times.sort((a, b) => a - b);
  t.log(`one-row update into a ${first.batch.size}-page standby: write median ${times[10].toFixed(2)} ms, max ${times[19].toFixed(2)} ms (5 fsyncs each)`);
});

/** Bytes of a batch, for a child process. */
function encode(b: Batch): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(b.pageSize, 0);
  head.writeUInt32BE(b.size, 4);
  const parts: Buffer[] = [head];
  for (const [pgno, page] of b.pages) {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(pgno, 0);
    parts.push(n, page);
  }
  return Buffer.concat(parts);
}

const CRASHING_WRITER = `
  const fs = require('node:fs');
  const { SqlitePageWriter } = require(${JSON.stringify(MODULE)});
  const b = fs.readFileSync(process.env.BATCH);
  const pageSize = b.readUInt32BE(0), size = b.readUInt32BE(4), pages = new Map();
  for (let off = 8; off < b.length; off += 4 + pageSize) pages.set(b.readUInt32BE(off), b.subarray(off + 4, off + 4 + pageSize));
  const w = SqlitePageWriter.open(process.env.DB, require(${JSON.stringify(SQLITE)}), () => {}, (point) => {
    if (point !== process.env.KILL_AT) return;
    process.kill(process.pid, 'SIGKILL');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10000);
  });
  w.write(pageSize, size, pages);
  w.close();
`;

interface Scenario { name: string; setup: string; change: string }
const SCENARIOS: Scenario[] = [
  { name: 'growth', setup: "CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t (v) SELECT randomblob(500) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 60) SELECT value FROM s)", change: "UPDATE t SET v = 'x' WHERE id < 10; INSERT INTO t (v) SELECT randomblob(700) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 400) SELECT value FROM s)" },
  { name: 'shrink', setup: "CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t (v) SELECT randomblob(700) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 400) SELECT value FROM s)", change: 'DELETE FROM t WHERE id > 20; VACUUM' },
  { name: 'page size', setup: "CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t (v) SELECT randomblob(300) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 200) SELECT value FROM s)", change: 'PRAGMA page_size = 1024; VACUUM; UPDATE t SET v = 1 WHERE id = 3' },
];
// Where the write is killed, and what the opener afterwards must find.
const POINTS: { at: WritePoint | 'none'; outcome: 'before' | 'after'; journal: 'none' | 'cold' | 'hot'; dbTouched: boolean }[] = [
  { at: 'journal-written', outcome: 'before', journal: 'cold', dbTouched: false },
  { at: 'journal-synced', outcome: 'before', journal: 'hot', dbTouched: false },
  { at: 'half-written', outcome: 'before', journal: 'hot', dbTouched: true },
  { at: 'db-synced', outcome: 'before', journal: 'hot', dbTouched: true },
  { at: 'unlinked', outcome: 'after', journal: 'none', dbTouched: true },
  { at: 'committed', outcome: 'after', journal: 'none', dbTouched: true },
  { at: 'none', outcome: 'after', journal: 'none', dbTouched: true },
];

for (const [si, sc] of SCENARIOS.entries()) {
  test(`a write killed at any point leaves the state before or after it (${sc.name})`, (t) => {
    const dir = tempDir(t, 'sqlfile');
    const srcDb = new Database(path.join(dir, 'source.db'));
    srcDb.exec(sc.setup);
    const beforeImage = srcDb.serialize();
    const beforeRows = rows(srcDb);
    srcDb.exec(sc.change);
    const afterImage = srcDb.serialize();
    const afterRows = rows(srcDb);
    srcDb.close();
    const change = diff(beforeImage, afterImage);
    const batchFile = path.join(dir, 'batch');
    fs.writeFileSync(batchFile, encode(change));

    for (const [pi, pt] of POINTS.entries()) {
      const label = `${sc.name}, killed at ${pt.at}`;
      const standby = path.join(dir, `standby-${pt.at}.db`);
      const first = diff(undefined, beforeImage);
      const setup = SqlitePageWriter.open(standby, Writer);
      setup.write(first.pageSize, first.size, first.pages);
      setup.close();
      const untouched = fs.readFileSync(standby);

      const r = spawnSync(process.execPath, ['-e', CRASHING_WRITER], { env: { ...process.env, DB: standby, BATCH: batchFile, KILL_AT: pt.at }, encoding: 'utf8' });
      if (pt.at === 'none') t.is(r.status, 0, r.stderr);
      else t.is(r.signal, 'SIGKILL', `${label}: ${r.stderr}`);

      const journal = `${standby}-journal`;
      t.is(fs.existsSync(journal), pt.journal !== 'none', `${label}: journal`);
      t.is(!fs.readFileSync(standby).equals(untouched), pt.dbTouched, `${label}: database file touched`);
      if (pt.journal === 'hot') {
        // SQLite itself takes the journal as hot: a read-only opener refuses to read past it.
        const ro = new Database(standby, { readonly: true });
        t.throws(() => ro.prepare('SELECT count(*) FROM t').get(), { any: true, code: 'SQLITE_READONLY_ROLLBACK' }, label);
        ro.close();
      }
      // The next opener rolls it back: the writer itself, or any read-write connection.
      if ((si + pi) % 2 === 0) {
        SqlitePageWriter.open(standby, Writer).close();
      } else {
        const rw = new Database(standby);
        rw.prepare('SELECT count(*) FROM sqlite_master').get();
        rw.close();
      }
      if (pt.journal === 'hot') t.false(fs.existsSync(journal), `${label}: hot journal played back and removed`);
      const ro = new Database(standby, { readonly: true });
      t.is(ro.pragma('integrity_check', { simple: true }), 'ok', label);
      t.deepEqual(rows(ro), pt.outcome === 'before' ? beforeRows : afterRows, `${label}: state ${pt.outcome}`);
      ro.close();

      // The replayer applies the batch again: the standby ends at the state after.
      const again = SqlitePageWriter.open(standby, Writer);
      again.write(change.pageSize, change.size, change.pages);
      again.close();
      const end = new Database(standby, { readonly: true });
      t.deepEqual(rows(end), afterRows, `${label}: re-applied`);
      t.is(end.pragma('integrity_check', { simple: true }), 'ok');
      end.close();
      t.false(fs.existsSync(journal));
    }
  });
}

const LOOPING_READER = `
  const fs = require('node:fs');
  const Database = require(${JSON.stringify(SQLITE)});
  const db = new Database(process.env.DB, { readonly: true });
  const q = db.prepare('SELECT count(*) AS c, total(v) AS s FROM t');
  const bad = [], counts = new Set();
  let reads = 0;
  console.log('ready');
  while (!fs.existsSync(process.env.STOP)) {
    try {
      const r = q.get();
      const ic = db.pragma('integrity_check', { simple: true });
      reads++;
      counts.add(r.c);
      if (r.s !== 0 || r.c % 2 !== 0 || ic !== 'ok') bad.push({ c: r.c, s: r.s, ic });
    } catch (err) {
      bad.push({ error: String(err) });
    }
  }
  console.log(JSON.stringify({ reads, distinct: counts.size, bad: bad.slice(0, 5), nbad: bad.length }));
`;

test('a reader in another process sees only committed states during many writes', async (t) => {
  const dir = tempDir(t, 'sqlfile');
  const src = new Source(path.join(dir, 'source.db'));
  const standby = path.join(dir, 'standby.db');
  const w = SqlitePageWriter.open(standby, Writer);
  t.teardown(() => { w.close(); src.db.close(); });
  // Every transaction keeps the sum of v at 0 and the count even, while touching every page.
  src.db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, pad BLOB)');
  src.db.exec('INSERT INTO t (v, pad) SELECT value * (1 - 2 * (value % 2)), randomblob(400) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 200) SELECT value FROM s)');
  src.db.exec('UPDATE t SET v = -(SELECT total(v) FROM t) + v WHERE id = 1');
  t.deepEqual(src.db.prepare('SELECT total(v) AS s, count(*) % 2 AS odd FROM t').get(), { s: 0, odd: 0 });
  src.ship(w);

  const stop = path.join(dir, 'stop');
  const child = spawn(process.execPath, ['-e', LOOPING_READER], { env: { ...process.env, DB: standby, STOP: stop } });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  while (!out.includes('ready')) await new Promise((r) => setTimeout(r, 20));

  const ins = src.db.prepare('INSERT INTO t (v, pad) VALUES (?, randomblob(400)), (?, randomblob(400))');
  let writes = 0;
  const t0 = Date.now();
  while (writes < 300 || Date.now() - t0 < 2000) {
    src.db.transaction(() => {
      const x = 1 + (writes % 97);
      ins.run(x, -x);
      src.db.exec('UPDATE t SET v = -v');
      // Now and then the pair just inserted goes again: the count falls back, the sum stays 0.
      if (writes % 5 === 4) src.db.exec('DELETE FROM t WHERE id > (SELECT max(id) - 2 FROM t)');
    })();
    src.ship(w);
    writes++;
    if (writes % 20 === 0) await new Promise((r) => setImmediate(r));
  }
  fs.writeFileSync(stop, '');
  t.is(await exited, 0, err);
  const res = JSON.parse(out.trim().split('\n').pop() as string) as { reads: number; distinct: number; bad: unknown[]; nbad: number };
  t.log(`${writes} writes, ${res.reads} reads in the other process, ${res.distinct} distinct counts seen`);
  t.is(res.nbad, 0, JSON.stringify(res.bad));
  t.true(res.reads > 50 && res.distinct > 10, JSON.stringify(res));
});

test('a write that fails in this process is undone as far as it got, and the next one goes through', (t) => {
  const dir = tempDir(t, 'sqlfile');
  const srcDb = new Database(path.join(dir, 'source.db'));
  t.teardown(() => srcDb.close());
  srcDb.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v); INSERT INTO t (v) SELECT randomblob(600) FROM (WITH RECURSIVE s(value) AS (SELECT 1 UNION ALL SELECT value + 1 FROM s WHERE value < 100) SELECT value FROM s)");
  const beforeImage = srcDb.serialize();
  const beforeRows = rows(srcDb);
  srcDb.exec('UPDATE t SET v = id; DELETE FROM t WHERE id > 50; VACUUM');
  const change = diff(beforeImage, srcDb.serialize());
  const afterRows = rows(srcDb);

  for (const [at, outcome] of [['journal-written', 'before'], ['half-written', 'before'], ['db-synced', 'before'], ['unlinked', 'after']] as const) {
    const standby = path.join(dir, `standby-${at}.db`);
    const lines: string[] = [];
    let fail = false;
    const w = SqlitePageWriter.open(standby, Writer, (l) => lines.push(l), (point) => {
      if (fail && point === at) throw new Error(`an I/O error at ${point}`);
    });
    const first = diff(undefined, beforeImage);
    w.write(first.pageSize, first.size, first.pages);
    fail = true;
    t.throws(() => w.write(change.pageSize, change.size, change.pages), { message: `an I/O error at ${at}` });
    fail = false;
    t.false(fs.existsSync(`${standby}-journal`), `${at}: no journal left`);
    if (at !== 'journal-written' && at !== 'unlinked') t.true(lines.some((l) => l.includes('a failed write was rolled back from its journal')), lines.join('\n'));
    const ro = new Database(standby, { readonly: true });
    t.is(ro.pragma('integrity_check', { simple: true }), 'ok', at);
    t.deepEqual(rows(ro), outcome === 'before' ? beforeRows : afterRows, `${at}: state ${outcome}`);
    w.write(change.pageSize, change.size, change.pages);
    t.deepEqual(rows(ro), afterRows, `${at}: written again`);
    ro.close();
    w.close();
  }
});
