'use strict';
/**
 * A large SQLite database under the agent, in one run: what one single-row autocommit INSERT
 * costs the application, and the process's peak memory, with and without the agent, in
 * rollback-journal mode (DELETE, SQLite's default) and in WAL mode. In rollback mode the agent
 * finds what a commit changed by reading the whole database file and comparing page digests, so
 * its cost grows with the database, not with the change; in WAL mode it reads the frames the
 * commit appended. Bare and agent runs alternate, each a fresh process on a fresh copy of the
 * filled database; medians over the rounds. The agent ships in async mode to a nats-server of
 * its own.
 *
 *   node bench/sqlite-large.js                 (after npx tsc -p tsconfig.json)
 *   BENCH_SQLITE_LARGE_MB=200 BENCH_SQLITE_LARGE_N=20 BENCH_SQLITE_LARGE_ROUNDS=3 node bench/sqlite-large.js
 */
const fs = require('node:fs');
const path = require('node:path');
const c = require('./lib/common');

const APP = path.join(__dirname, 'lib', 'sqlite-large-app.js');
const MB = Number(process.env.BENCH_SQLITE_LARGE_MB ?? 50);
const N = Number(process.env.BENCH_SQLITE_LARGE_N ?? 30);
const ROUNDS = Number(process.env.BENCH_SQLITE_LARGE_ROUNDS ?? 3);

/** A database of about `mb` megabytes: rows of 4,000-byte blobs, and the table the app inserts into. */
function filled(mb) {
  const Database = require(path.join(__dirname, '..', 'node_modules', 'better-sqlite3'));
  const file = path.join(c.tempDir('sqlite-large-seed'), 'seed.db');
  const db = new Database(file);
  db.exec('CREATE TABLE blob (id INTEGER PRIMARY KEY, b BLOB); CREATE TABLE kv (id INTEGER PRIMARY KEY, v TEXT)');
  const ins = db.prepare('INSERT INTO blob (b) VALUES (?)');
  db.transaction(() => { for (let i = 0; i < mb * 256; i++) ins.run(Buffer.alloc(4000, i % 251)); })();
  db.close();
  return file;
}

async function runOnce(seed, mode, agent, nats) {
  const primary = c.tempDir('sqlite-large-primary');
  const file = path.join(primary, 'app.db');
  fs.copyFileSync(seed, file);
  const env = !agent ? {} : {
    UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${primary}`, UNDERSTUDY_SPOOL_DIR: c.tempDir('sqlite-large-spool'),
    UNDERSTUDY_NAME: 'sqlite-large', UNDERSTUDY_MODE: 'async',
  };
  const { result } = await c.runNode(APP, [file, mode, String(N)], { env, agent, timeoutMs: 600_000 });
  if (agent && !result.flushed) throw new Error(`${mode}: the app's flush did not complete`);
  c.removeDir(primary);
  return result;
}

/** Runs the bench, prints its table, and returns its rows: {mode, bareUs, agentUs, ratio, bareRssMB, agentRssMB}. */
async function run() {
  console.log(`# SQLite, a large database: one single-row INSERT per commit (${c.machine()})`);
  console.log(`# ${MB} MB database, ${N} commits per run, ${ROUNDS} rounds; load before: ${require('node:os').loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const seed = filled(MB);
  console.log(`# database: ${(fs.statSync(seed).size / 1e6).toFixed(1)} MB`);
  const rows = [['mode', 'bare µs/commit', 'agent µs/commit', 'agent/bare', 'bare peak RSS MB', 'agent peak RSS MB']];
  const results = [];
  for (const mode of ['DELETE', 'WAL']) {
    const bare = [];
    const under = [];
    for (let r = 0; r < ROUNDS; r++) {
      // A fresh nats-server per agent run: every run starts on an empty stream.
      const order = r % 2 === 0 ? [false, true] : [true, false];
      for (const agent of order) {
        const nats = agent ? await c.startNats('sqlite-large-nats') : undefined;
        try {
          (agent ? under : bare).push(await runOnce(seed, mode, agent, nats));
        } finally {
          await nats?.stop();
        }
      }
    }
    const m = (xs, k) => c.median(xs.map((x) => x[k]));
    const r = { mode, mb: MB, bareUs: m(bare, 'perCommitUs'), agentUs: m(under, 'perCommitUs'), bareRssMB: m(bare, 'maxRssMB'), agentRssMB: m(under, 'maxRssMB') };
    r.ratio = r.agentUs / r.bareUs;
    results.push(r);
    rows.push([mode, c.fmt(r.bareUs), c.fmt(r.agentUs), r.ratio.toFixed(1), c.fmt(r.bareRssMB), c.fmt(r.agentRssMB)]);
  }
  console.log(c.table(rows));
  console.log(`# load after: ${require('node:os').loadavg().map((x) => x.toFixed(2)).join(' ')}; 2 cores shared with nats-server`);
  return { results };
}

module.exports = { run };

if (require.main === module) c.runMain(run);
