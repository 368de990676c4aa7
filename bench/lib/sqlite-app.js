'use strict';
/**
 * The application of the SQLite bench, run with or without the agent:
 *   node [--require dist/agent/preload.js] sqlite-app.js <db file> <WAL|DELETE> <single|batch> <n>
 * Opens <db file> with better-sqlite3 in the journal mode given (WAL with synchronous=NORMAL;
 * DELETE with SQLite's default, FULL), creates its table and writes one warm-up row, untimed:
 * under the agent that first write goes as an image, and the shipper is connected before the
 * clock starts. Then n transactions, timed: `single` = n autocommit single-row INSERTs,
 * `batch` = n db.transaction() of 100 INSERTs each. Afterwards it flushes (blocks until
 * JetStream has every entry; a no-op without the agent), timed apart, and prints as its last line
 * {n, rows, callsMs, flushMs, flushed, first, last, pages} — first/last: the journal sequences of
 * the timed phase (undefined without the agent).
 */
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const Database = require(path.join(REPO, 'node_modules', 'better-sqlite3'));
const understudy = require(path.join(REPO, 'dist', 'index.js'));

const [file, mode, workload, nText] = process.argv.slice(2);
const n = Number(nText);
const ROWS_PER_BATCH = 100;
if (!['WAL', 'DELETE'].includes(mode) || !['single', 'batch'].includes(workload) || !(n > 0)) {
  process.stderr.write('usage: sqlite-app.js <db file> <WAL|DELETE> <single|batch> <n>\n');
  process.exit(2);
}

const db = new Database(file);
db.pragma(`journal_mode = ${mode}`);
if (mode === 'WAL') db.pragma('synchronous = NORMAL');
db.exec('CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL, note TEXT)');
const insert = db.prepare('INSERT INTO items (name, qty, note) VALUES (?, ?, ?)');
// A row of about 60 bytes, not all alike (a page holds some tens of them).
const row = (i) => insert.run(`item-${i}`, i % 1000, `note ${i * 7919} ${'x'.repeat(i % 17)}`);
row(0);
if (!understudy.flush(30_000)) throw new Error('the warm-up did not reach JetStream');

const position = () => understudy.journalPosition()?.appended;
const first = position();
const batch = db.transaction((base) => { for (let j = 0; j < ROWS_PER_BATCH; j++) row(base + j); });
const t0 = performance.now();
if (workload === 'single') for (let i = 1; i <= n; i++) row(i);
else for (let i = 0; i < n; i++) batch(1 + i * ROWS_PER_BATCH);
const t1 = performance.now();
const last = position();
const flushed = understudy.flush(120_000);
const t2 = performance.now();
const pages = db.pragma('page_count', { simple: true });
db.close();
console.log(JSON.stringify({
  n, rows: workload === 'single' ? n : n * ROWS_PER_BATCH, callsMs: t1 - t0, flushMs: t2 - t1, flushed,
  first: first === undefined ? undefined : first + 1, last, pages,
}));
