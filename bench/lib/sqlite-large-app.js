'use strict';
/**
 * The application of the large-database SQLite bench, run with or without the agent:
 *   node [--require dist/agent/preload.js] sqlite-large-app.js <db file> <WAL|DELETE> <n>
 * Opens <db file> (already filled by the bench) in the journal mode given, writes one warm-up
 * row, untimed (under the agent that first change goes as an image), then n single-row
 * autocommit INSERTs, timed. Prints as its last line {n, perCommitUs, maxRssMB, flushed}.
 */
const path = require('node:path');

const REPO = path.resolve(__dirname, '..', '..');
const Database = require(path.join(REPO, 'node_modules', 'better-sqlite3'));
const understudy = require(path.join(REPO, 'dist', 'index.js'));

const [file, mode, nText] = process.argv.slice(2);
const n = Number(nText);
if (!['WAL', 'DELETE'].includes(mode) || !(n > 0)) {
  process.stderr.write('usage: sqlite-large-app.js <db file> <WAL|DELETE> <n>\n');
  process.exit(2);
}
const db = new Database(file);
db.pragma(`journal_mode = ${mode}`);
const put = db.prepare('INSERT INTO kv (v) VALUES (?)');
put.run('warm-up');
understudy.flush(60_000);
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) put.run(`row ${i}`);
const perCommitUs = Number(process.hrtime.bigint() - t0) / 1000 / n;
const flushed = understudy.flush(120_000);
db.close();
console.log(JSON.stringify({ n, perCommitUs, maxRssMB: process.resourceUsage().maxRSS / 1024, flushed }));
