import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { until } from './helpers/agent-apps';
import { makePair, followReplayer, runCli, type Pair } from './helpers/pair';
import { readDb, readPrimary, SQLITE_MODULE } from './helpers/sqlite-app';
import { streamEntries } from './helpers/stream-entries';
import { publish } from './helpers/publish';
import { encodePages } from '../lib/sqlite-pages';

// Real better-sqlite3 databases written by applications under the agent, replicated through a
// real nats-server to a standby whose database is then read as a second, read-only connection.

/** The primary's and the standby's database `rel` after a drain: both intact, with the same rows. */
async function drainedEqual(t: ExecutionContext, pair: Pair, rel = 'app.db'): Promise<void> {
  const summary = await pair.drain();
  t.is(summary.skipped, 0, 'nothing quarantined');
  t.is(summary.inDoubt, 0, 'nothing in doubt');
  const standby = readDb(path.join(pair.standby, rel));
  const primary = readPrimary(path.join(pair.primary, rel));
  t.is(standby?.integrity, 'ok');
  t.is(primary.integrity, 'ok');
  t.deepEqual(standby?.rows, primary.rows);
}

/** The source of an app that opens `app.db` under the primary root in `mode` and runs `body`. */
function app(pair: Pair, mode: 'WAL' | 'DELETE', body: string): string {
  return `const Database = require(${SQLITE_MODULE});
    const file = ${JSON.stringify(path.join(pair.primary, 'app.db'))};
    let db = new Database(file);
    db.pragma('journal_mode = ${mode}');
    db.exec('CREATE TABLE IF NOT EXISTS kv (k INTEGER PRIMARY KEY, v TEXT)');
    const put = () => db.prepare('INSERT OR REPLACE INTO kv VALUES (?, ?)');
    ${body}`;
}

for (const mode of ['WAL', 'DELETE'] as const) {
  test.serial(`${mode}: many small transactions, a large one, updates, deletes, a checkpoint, VACUUM, a close and a reopen: the standby ends equal`, async (t) => {
    const pair = await makePair(`sqlite-${mode}`);
    t.teardown(() => pair.close());
    const run = await pair.runApp({
      code: app(pair, mode, `
        for (let i = 0; i < 200; i++) put().run(i, 'v' + i);
        db.transaction(() => { for (let i = 200; i < 5000; i++) put().run(i, 'x'.repeat(i % 500)); })();
        db.prepare('UPDATE kv SET v = ? WHERE k % 3 = 0').run('three');
        db.exec('DELETE FROM kv WHERE k % 4 = 0');
        ${mode === 'WAL' ? "db.pragma('wal_checkpoint(TRUNCATE)');" : ''}
        db.exec('VACUUM');
        db.close();
        db = new Database(file);
        db.exec('CREATE TABLE other (a, b); INSERT INTO other VALUES (1, 2), (3, 4)');
        put().run(99999, 'after reopen');
        db.close();`),
    });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr, '');
    await drainedEqual(t, pair);
    const entries = [...(await streamEntries(pair.server.url)).values()].flat().filter((e) => e.header.op === 'sqlite');
    t.true(entries.length > 200, `${entries.length} sqlite entries`);
    // inspect says where each entry takes the database from and to.
    const inspect = await runCli(['inspect', '--nats', pair.server.url]);
    t.is(inspect.code, 0, inspect.stderr);
    t.regex(inspect.stdout, / sqlite data\/app\.db image at (r|[0-9a-f]{16})\.\d+ \[\d+ bytes\]/);
    t.regex(inspect.stdout, mode === 'WAL' ? / sqlite data\/app\.db wal [0-9a-f]{16}\.\d+ -> [0-9a-f]{16}\.\d+/ : / sqlite data\/app\.db rollback r\.\d+ -> r\.\d+/);
  });
}

test.serial('two processes writing one WAL database at once end identical, each transaction applied once', async (t) => {
  const pair = await makePair('sqlite-two');
  t.teardown(() => pair.close());
  const writer = (who: number) => pair.runApp({
    env: { UNDERSTUDY_NAME: `w${who}` },
    code: app(pair, 'WAL', `db.pragma('busy_timeout = 10000');
      db.exec('CREATE TABLE IF NOT EXISTS turns (n INTEGER PRIMARY KEY AUTOINCREMENT, who INTEGER)');
      // Both start together, and pause between transactions so the other gets the write lock.
      const go = Date.now() + 500; while (Date.now() < go);
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 300; i++) {
        db.transaction(() => { put().run(${who} * 100000 + i, 'w${who}'); put().run(-1 - ${who}, String(i)); db.prepare('INSERT INTO turns (who) VALUES (?)').run(${who}); })();
        if (i % 50 === 0) db.pragma('wal_checkpoint(${who === 1 ? 'PASSIVE' : 'TRUNCATE'})');
        Atomics.wait(pause, 0, 0, 1);
      }
      db.close();`),
  });
  const runs = await Promise.all([writer(1), writer(2)]);
  for (const r of runs) t.is(r.code, 0, r.stderr);
  await drainedEqual(t, pair);
  // The two really took turns: the order of their transactions switches many times.
  const turns = (readDb(path.join(pair.primary, 'app.db'))!.rows.turns as string[]).map((r) => JSON.parse(r) as [number, number]).sort((a, b) => a[0] - b[0]);
  const switches = turns.filter((r, i) => i > 0 && r[1] !== turns[i - 1]![1]).length;
  t.true(switches > 20, `${switches} switches between writers`);
  // Each journal carries the other's transactions it read too: the standby took each once.
  const byJournal = await streamEntries(pair.server.url);
  const frames = [...byJournal.values()].map((es) => es.filter((e) => e.header.op === 'sqlite' && e.header.kind === 'wal').length);
  t.is(frames.length, 2);
  t.true(frames.every((n) => n > 0), `wal entries per journal: ${frames.join(', ')}`);
  t.log(`wal entries per journal: ${frames.join(', ')}`);
});

test.serial('the primary SIGKILLed inside a transaction: the standby has every transaction before it and none of it', async (t) => {
  const pair = await makePair('sqlite-kill');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    code: app(pair, 'WAL', `
      for (let i = 0; i < 100; i++) put().run(i, 'committed');
      const big = db.transaction(() => {
        for (let i = 1000; i < 3000; i++) put().run(i, 'never committed'.repeat(20));
        process.kill(process.pid, 'SIGKILL');
      });
      big();`),
  });
  t.is(run.signal, 'SIGKILL');
  // Async mode: what the killed process journaled is in its spool; the next process of its name ships it.
  const next = await pair.runApp({ code: '' });
  t.is(next.code, 0, next.stderr);
  await pair.drain();
  const standby = readDb(path.join(pair.standby, 'app.db'));
  t.is(standby?.integrity, 'ok');
  const rows = standby!.rows.kv as string[];
  t.is(rows.length, 100);
  t.deepEqual(readPrimary(path.join(pair.primary, 'app.db')).rows, standby!.rows);
});

test.serial('a reader on the standby checks integrity and an invariant throughout: it never sees a torn state', async (t) => {
  const pair = await makePair('sqlite-reader');
  t.teardown(() => pair.close());
  const stop = followReplayer(pair);
  const standbyFile = JSON.stringify(path.join(pair.standby, 'app.db'));
  const reader = pair.runApp({
    withAgent: false,
    code: `const Database = require(${SQLITE_MODULE}); const fs = require('fs');
      const deadline = Date.now() + 60000; let reads = 0, states = new Set();
      while (Date.now() < deadline) {
        if (!fs.existsSync(${standbyFile})) continue;
        let db;
        try { db = new Database(${standbyFile}, { readonly: true, timeout: 10000 }); } catch (e) { continue; }
        try {
          const ok = db.pragma('integrity_check', { simple: true });
          const has = db.prepare("SELECT count(*) FROM sqlite_schema WHERE name = 'ledger'").pluck().get();
          if (has) {
            const [sum, n] = db.prepare('SELECT coalesce(sum(amount), 0), count(*) FROM ledger').raw().get();
            if (ok !== 'ok' || sum !== 0 || n % 2 !== 0) { console.log(JSON.stringify({ bad: { ok, sum, n } })); process.exit(1); }
            states.add(n); reads++;
            if (n === 2000) break;
          }
        } catch (e) { if (!/SQLITE_BUSY|database is locked/.test(String(e))) { console.log(JSON.stringify({ error: String(e) })); process.exit(1); } }
        finally { db.close(); }
      }
      console.log(JSON.stringify({ reads, states: states.size }));`,
  });
  const writer = await pair.runApp({
    code: app(pair, 'WAL', `db.exec('CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY, amount INTEGER)');
      const ins = db.prepare('INSERT INTO ledger (amount) VALUES (?)');
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 1000; i++) { db.transaction(() => { ins.run(i + 1); ins.run(-(i + 1)); })(); if (i % 200 === 0) db.pragma('wal_checkpoint(TRUNCATE)'); Atomics.wait(pause, 0, 0, 2); }
      db.close();`),
  });
  t.is(writer.code, 0, writer.stderr);
  const r = await reader;
  await stop();
  t.is(r.code, 0, r.stdout + r.stderr);
  const seen = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { reads: number; states: number };
  t.true(seen.reads > 0 && seen.states > 10, r.stdout);
  t.log(r.stdout.trim());
});

for (const mode of ['sync', 'strong'] as const) {
  test.serial(`${mode} mode: a commit returns once confirmed${mode === 'strong' ? ', with its rows already in the standby database' : ''}; killed after it, nothing is missing`, async (t) => {
    const pair = await makePair(`sqlite-${mode}`);
    t.teardown(() => pair.close());
    const stop = followReplayer(pair);
    const standbyFile = JSON.stringify(path.join(pair.standby, 'app.db'));
    const run = await pair.runApp({
      env: { UNDERSTUDY_MODE: mode, UNDERSTUDY_SYNC_TIMEOUT_MS: '20000' },
      code: app(pair, 'WAL', `const fs = require('fs'); const seen = [];
        const onStandby = (k) => { if (!fs.existsSync(${standbyFile})) return false; const s = new Database(${standbyFile}, { readonly: true }); try { return s.prepare('SELECT v FROM kv WHERE k = ?').pluck().get(k) === 'v' + k; } catch { return false; } finally { s.close(); } };
        for (let i = 0; i < 30; i++) { put().run(i, 'v' + i); seen.push(onStandby(i)); }
        db.transaction(() => { for (let i = 30; i < 60; i++) put().run(i, 'v' + i); })(); seen.push(onStandby(59));
        console.log(JSON.stringify(seen));
        process.kill(process.pid, 'SIGKILL');`),
    });
    await stop();
    t.is(run.signal, 'SIGKILL', run.stderr);
    const seen = JSON.parse(run.stdout) as boolean[];
    t.is(seen.length, 31);
    if (mode === 'strong') t.deepEqual(seen, seen.map(() => true), 'every commit was on the standby when it returned');
    const summary = await pair.drain();
    t.is(summary.inDoubt, 0);
    const standby = readDb(path.join(pair.standby, 'app.db'));
    t.is(standby?.integrity, 'ok');
    t.is((standby!.rows.kv as string[]).length, 60, 'every committed row, though the process was killed with nothing flushed at exit');
  });
}

test.serial('baseline, verify and --repair know databases: a live WAL database goes whole, is compared by its rows, and is mended whole', async (t) => {
  const pair = await makePair('sqlite-baseline');
  t.teardown(() => pair.close());
  // A database written without the agent, left open in WAL mode with commits still in its WAL.
  const seedDb = new Database(path.join(pair.primary, 'app.db'));
  t.teardown(() => seedDb.open && seedDb.close());
  seedDb.pragma('journal_mode = WAL');
  seedDb.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
  const ins = seedDb.prepare('INSERT INTO kv VALUES (?, ?)');
  seedDb.transaction(() => { for (let i = 0; i < 500; i++) ins.run(i, 'seed'); })();
  fs.writeFileSync(path.join(pair.primary, 'plain.txt'), 'a file beside it');
  const cli = (cmd: string, extra: string[] = []) => runCli([cmd, '--root', `data=${pair.primary}`, '--nats', pair.server.url, ...extra], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  const b = await cli('baseline');
  t.is(b.code, 0, b.stderr);
  const stop = followReplayer(pair);
  t.teardown(stop);
  await until('the standby database', () => readDb(path.join(pair.standby, 'app.db'))?.rows.kv?.length === 500);
  t.false(fs.existsSync(path.join(pair.standby, 'app.db-wal')), 'SQLite\'s side files are part of the database, not replicated as files');
  let v = await cli('verify');
  t.is(v.code, 0, v.stdout + v.stderr);
  // Changed on the primary without the agent: verify finds it, --repair ships it whole.
  ins.run(1000, 'behind the agent\'s back');
  v = await cli('verify');
  t.is(v.code, 1, v.stdout + v.stderr);
  t.regex(v.stdout + v.stderr, /app\.db/);
  const r = await cli('verify', ['--repair']);
  t.not(r.code, 2, r.stdout + r.stderr);
  await until('the repaired database', () => readDb(path.join(pair.standby, 'app.db'))?.rows.kv?.length === 501);
  v = await cli('verify');
  t.is(v.code, 0, v.stdout + v.stderr);
  t.is(readDb(path.join(pair.standby, 'app.db'))?.integrity, 'ok');
});

test.serial('db.backup() into a root is replicated as the file it writes; ATTACH, which the capture does not follow, is said once', async (t) => {
  const pair = await makePair('sqlite-backup');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    code: app(pair, 'WAL', `put().run(1, 'one');
      db.exec(${JSON.stringify(`ATTACH DATABASE '${path.join(pair.dir, 'other.db')}' AS other`)});
      db.exec('CREATE TABLE other.t (x)');
      db.prepare('ATTACH DATABASE ? AS again').run(${JSON.stringify(path.join(pair.dir, 'again.db'))});
      db.backup(${JSON.stringify(path.join(pair.primary, 'copy.db'))}).then(() => { db.close(); console.log('ok'); });`),
  });
  t.is(run.code, 0, run.stderr);
  t.is(run.stdout.trim(), 'ok');
  const said = run.stderr.split('\n').filter((l) => l.includes('is not replicated'));
  t.is(said.length, 1, run.stderr);
  t.regex(said[0], /ATTACH/);
  await drainedEqual(t, pair);
  t.deepEqual(readDb(path.join(pair.standby, 'copy.db'))?.rows, { kv: ['[1,"one"]'] });
});

for (const mode of ['WAL', 'DELETE'] as const) {
  test.serial(`${mode} in locking_mode=EXCLUSIVE, where no commit can be told from the files: each goes whole, said once, and the standby ends equal`, async (t) => {
    const pair = await makePair(`sqlite-exclusive-${mode}`);
    t.teardown(() => pair.close());
    const run = await pair.runApp({
      code: app(pair, mode, `db.pragma('locking_mode = EXCLUSIVE');
        for (let i = 0; i < 40; i++) put().run(i, 'x'.repeat(i * 10));
        db.exec('DELETE FROM kv WHERE k < 10; VACUUM');
        put().run(100, 'last');
        db.close();`),
    });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr.split('\n').filter((l) => l.includes('locking_mode=EXCLUSIVE')).length, 1, run.stderr);
    await drainedEqual(t, pair);
  });
}

test.serial('a database renamed aside, and one removed and made again under the same name: the standby follows each, by file', async (t) => {
  const pair = await makePair('sqlite-replace');
  t.teardown(() => pair.close());
  const stop = followReplayer(pair);
  const run = await pair.runApp({
    code: app(pair, 'DELETE', `const fs = require('fs'); const pause = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      put().run(1, 'first life');
      db.close(); pause();
      fs.renameSync(file, file.replace('app.db', 'archive.db'));
      db = new Database(file); db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)'); put().run(2, 'second life');
      db.close(); pause();
      fs.unlinkSync(file);
      db = new Database(file); db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)'); put().run(3, 'third life');
      db.close();`),
  });
  t.is(run.code, 0, run.stderr);
  await stop();
  await drainedEqual(t, pair);
  t.deepEqual(readDb(path.join(pair.standby, 'archive.db'))?.rows, { kv: ['[1,"first life"]'] });
  t.deepEqual(readDb(path.join(pair.standby, 'app.db'))?.rows, { kv: ['[3,"third life"]'] });
});

test.serial('UNDERSTUDY_WATCH=1 beside a captured database: the watcher leaves it and its side files to the capture, and snapshots a database another process writes as an image', async (t) => {
  const pair = await makePair('sqlite-watch');
  t.teardown(() => pair.close());
  const other = path.join(pair.primary, 'other.db');
  const run = await pair.runApp({
    env: { UNDERSTUDY_WATCH: '1' },
    code: app(pair, 'WAL', `const { execFileSync } = require('child_process');
      const pause = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
      for (let i = 0; i < 60; i++) { put().run(i, 'v' + i); pause(); }
      // Another process, without the agent, writes a database of its own under the root.
      execFileSync(process.execPath, ['-e', ${JSON.stringify(`const D = require(${SQLITE_MODULE}); const d = new D(${JSON.stringify(other)}); d.exec("CREATE TABLE t (x); INSERT INTO t VALUES (42)"); d.close();`)}], { env: { PATH: process.env.PATH } });
      for (let i = 60; i < 80; i++) { put().run(i, 'v' + i); pause(); }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1500);
      db.close();`),
  });
  t.is(run.code, 0, run.stderr);
  await drainedEqual(t, pair);
  const entries = [...(await streamEntries(pair.server.url)).values()].flat();
  const plain = entries.filter((e) => e.header.op !== 'sqlite' && /app\.db/.test(e.header.p));
  t.deepEqual(plain.map((e) => `${e.header.op} ${e.header.p}`), [], 'no file entry for the captured database or its side files');
  t.deepEqual(readDb(path.join(pair.standby, 'other.db'))?.rows, { t: ['[42]'] });
});

test.serial('UNDERSTUDY_WATCH=1 never drops a lock the application holds: a database a worker thread writes keeps its locks, and the standby ends equal', async (t) => {
  const pair = await makePair('sqlite-watch-locks');
  t.teardown(() => pair.close());
  const file = path.join(pair.primary, 'app.db');
  const worker = path.join(pair.dir, 'worker.js');
  fs.writeFileSync(worker, `const { workerData } = require('worker_threads'); const D = require(${SQLITE_MODULE});
    const db = new D(workerData.file); db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT)');
    Atomics.store(workerData.open, 0, 1);
    const put = db.prepare('INSERT INTO kv VALUES (?, ?)');
    const pause = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
    for (let i = 0; i < 250; i++) { put.run(i, 'v' + i); if (i % 25 === 0) db.pragma('wal_checkpoint(PASSIVE)'); pause(); }
    Atomics.store(workerData.open, 0, 0);
    db.close();`);
  // The worker writes; the main thread, where the watcher runs, checks every few milliseconds that
  // the process still holds the locks SQLite took on the database and its -shm (/proc/locks).
  const run = await pair.runApp({
    env: { UNDERSTUDY_WATCH: '1', UNDERSTUDY_WATCH_FULL_PASS_MS: '150', UNDERSTUDY_WATCH_SETTLE_MS: '20' },
    code: `const { Worker } = require('worker_threads'); const fs = require('fs');
      const file = ${JSON.stringify(file)};
      const open = new Int32Array(new SharedArrayBuffer(4));
      const w = new Worker(${JSON.stringify(worker)}, { workerData: { file, open } });
      const held = (f) => {
        const key = ':' + fs.statSync(f).ino;
        return fs.readFileSync('/proc/locks', 'utf8').split('\\n').map((l) => l.trim().split(/\\s+/))
          .some((x) => x[1] === 'POSIX' && x[4] === String(process.pid) && x[5].endsWith(key));
      };
      let looks = 0, missing = 0;
      const check = setInterval(() => {
        if (Atomics.load(open, 0) !== 1) return;
        let ok;
        try { ok = held(file) && held(file + '-shm'); } catch { return; }
        looks++;
        if (!ok && Atomics.load(open, 0) === 1) missing++;
      }, 3);
      w.on('exit', () => { clearInterval(check); console.log(JSON.stringify({ looks, missing })); });`,
  });
  t.is(run.code, 0, run.stderr);
  const seen = JSON.parse(run.stdout.trim().split('\n').pop()!) as { looks: number; missing: number };
  t.true(seen.looks > 100, `the locks were looked at ${seen.looks} times`);
  t.is(seen.missing, 0, `a lock SQLite held was gone while its connection was open (${seen.missing} of ${seen.looks} looks)`);
  await drainedEqual(t, pair);
  t.is((readDb(path.join(pair.standby, 'app.db'))?.rows.kv ?? []).length, 250);
});

test.serial('a large database in rollback-journal mode: its commits are read from the file a chunk at a time, the cost is said once, and the standby ends equal', async (t) => {
  const pair = await makePair('sqlite-large-rollback');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    code: app(pair, 'DELETE', `
      db.exec('CREATE TABLE blob (id INTEGER PRIMARY KEY, b BLOB)');
      const ins = db.prepare('INSERT INTO blob (b) VALUES (?)');
      // 17 MB, past the size that is said, and many chunks of pages.
      db.transaction(() => { for (let i = 0; i < 4352; i++) ins.run(Buffer.alloc(4000, i % 251)); })();
      for (let i = 0; i < 20; i++) put().run(i, 'v' + i);
      db.prepare('UPDATE blob SET b = ? WHERE id % 500 = 0').run(Buffer.alloc(4000, 7));
      db.prepare('DELETE FROM blob WHERE id > 4000').run();
      db.close();`),
  });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr.match(/is in rollback-journal mode/g)?.length, 1, run.stderr);
  t.regex(run.stderr, /reads the whole database at each one \(1[78] MB/);
  const kinds = [...(await streamEntries(pair.server.url)).values()].flat().filter((e) => e.header.op === 'sqlite').map((e) => (e.header as { kind: string }).kind);
  t.true(kinds.filter((k) => k === 'rollback').length >= 22, `each commit after the first as its changed pages: ${kinds.join(' ')}`);
  await drainedEqual(t, pair);
});

test.serial('a checkpoint taken while a service writes its database: restored, the database at the checkpoint opens, is intact, and is a cut between transactions', async (t) => {
  const pair = await makePair('sqlite-checkpoint');
  t.teardown(() => pair.close());
  const stop = followReplayer(pair);
  const stopFile = path.join(pair.dir, 'stop');
  const app = pair.runApp({
    code: `const Database = require(${SQLITE_MODULE}); const fs = require('fs');
      const db = new Database(${JSON.stringify(path.join(pair.primary, 'app.db'))}); db.pragma('journal_mode = WAL');
      db.exec('CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER)');
      const ins = db.prepare('INSERT INTO ledger (amount) VALUES (?)');
      let i = 0;
      const tick = setInterval(() => {
        if (fs.existsSync(${JSON.stringify(stopFile)})) { clearInterval(tick); db.close(); return; }
        i++; db.transaction(() => { ins.run(i); ins.run(-i); })();
      }, 2);`,
  });
  await until('the standby has rows', () => ((readDb(path.join(pair.standby, 'app.db'))?.rows.ledger ?? []).length) > 40);
  const c = await runCli(['checkpoint', 'c1', '--nats', pair.server.url]);
  t.is(c.code, 0, c.stderr);
  await new Promise((r) => setTimeout(r, 500));
  fs.writeFileSync(stopFile, '');
  t.is((await app).code, 0);
  await new Promise((r) => setTimeout(r, 1500));
  await stop();
  const to = path.join(pair.dir, 'restored');
  const r = await runCli(['restore', '--checkpoint', 'c1', '--state', pair.state, '--root', `data=${pair.standby}`, '--to', to]);
  t.is(r.code, 0, r.stdout + r.stderr);
  const at = readDb(path.join(to, 'data', 'app.db'));
  const live = readDb(path.join(pair.standby, 'app.db'));
  t.is(at?.integrity, 'ok');
  const rows = (at!.rows.ledger as string[]).map((x) => JSON.parse(x) as [number, number]);
  t.true(rows.length > 0 && rows.length % 2 === 0, `${rows.length} rows: whole transactions only`);
  t.is(rows.reduce((s, [, a]) => s + a, 0), 0, 'every transaction whole');
  t.true(rows.length < (live!.rows.ledger as string[]).length, 'the service wrote on after the checkpoint; the restore is of the checkpoint');
});

test.serial('a change that does not follow what the standby holds is not applied: status says the database may differ, in words, until an image mends it', async (t) => {
  const pair = await makePair('sqlite-doubt');
  t.teardown(() => pair.close());
  const mem = new Database(':memory:');
  mem.exec("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT); INSERT INTO kv VALUES (1, 'one')");
  const buf = mem.serialize();
  mem.close();
  const n = buf.length / 4096;
  const pages = new Map(Array.from({ length: n }, (_, i) => [i + 1, buf.subarray(i * 4096, (i + 1) * 4096)] as [number, Buffer]));
  const at = (j: string, s: number, o: number) => ({ j, e: 1, s, t: Date.now(), o, r: 'data', p: 'app.db' });
  // A WAL change whose base the standby never got (its image went to a stream long gone).
  await publish(pair.server.url, [{ header: { ...at('lost', 1, 100), op: 'sqlite', kind: 'wal', w: '0000000100000001', k: 9, bw: '0000000100000001', bk: 4, ps: 4096 }, data: encodePages(4096, [{ end: 9, size: n, pages: new Map([[1, pages.get(1)!]]) }]) }]);
  const first = await pair.drain();
  t.is(first.inDoubt, 1);
  t.false(fs.existsSync(path.join(pair.standby, 'app.db')), 'nothing applied on a guess');
  const status = () => runCli(['status', '--nats', pair.server.url]);
  let s = await status();
  t.regex(s.stdout, /MAY DIFFER from the primary: 1 object\(s\) it cannot be sure of \(data\/app\.db\); first: a change building on frame 4 of WAL 0000000100000001 came before any image of the database/);
  // An image, from any journal, makes it whole again.
  await publish(pair.server.url, [{ header: { ...at('baseline', 1, 200), op: 'sqlite', kind: 'image', w: 'r', k: 1, ps: 4096 }, data: encodePages(4096, [{ end: 1, size: n, pages }]) }]);
  const second = await pair.drain();
  t.is(second.inDoubt, 0);
  t.deepEqual(readDb(path.join(pair.standby, 'app.db'))?.rows, { kv: ['[1,"one"]'] });
  s = await status();
  t.notRegex(s.stdout, /MAY DIFFER/);
});

test.serial('two processes writing one WAL database through a NATS outage: what they spooled while it was down ships when it is back, and the standby ends equal', async (t) => {
  const pair = await makePair('sqlite-outage');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const writer = (who: number) => pair.runApp({
    env: { UNDERSTUDY_NAME: `o${who}`, UNDERSTUDY_EXIT_TIMEOUT_MS: '10000' },
    code: app(pair, 'WAL', `db.pragma('busy_timeout = 10000');
      const pause = new Int32Array(new SharedArrayBuffer(4));
      for (let i = 0; i < 400; i++) {
        db.transaction(() => { put().run(${who} * 100000 + i, 'w${who}'); put().run(-1 - ${who}, String(i)); })();
        if (i % 100 === 0) db.pragma('wal_checkpoint(TRUNCATE)');
        Atomics.wait(pause, 0, 0, 5);
      }
      db.close();`),
  });
  const runs = Promise.all([writer(1), writer(2)]);
  // Back while both are still writing: part of each journal went out late, part at once.
  await new Promise((r) => setTimeout(r, 1200));
  const { startNatsServer } = await import('./helpers/nats-server.js');
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  for (const r of await runs) t.is(r.code, 0, r.stderr);
  await drainedEqual(t, pair);
});
