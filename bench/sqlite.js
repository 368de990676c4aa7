'use strict';
/**
 * SQLite replication (better-sqlite3 under the agent), in one run:
 *  1. transactions/s of an application with and without the agent, as a ratio, for single-row
 *     autocommit INSERTs and 100-row db.transaction()s, in WAL mode (synchronous=NORMAL) and in
 *     rollback-journal mode (DELETE, synchronous FULL, SQLite's default). Bare and agent runs
 *     alternate (the order swapped every round), each a fresh process on a fresh database;
 *     medians over the rounds. The agent ships in async mode to a nats-server of its own (a
 *     fresh one per run, so every run starts on an empty stream). The rate is over the
 *     application's calls alone; a second figure adds the explicit flush the app does before
 *     exiting (what its exit would otherwise wait for).
 *  2. bytes shipped per transaction and per row: the `sqlite` entries of the last agent run, read
 *     back from the stream, within the timed phase; and the images in the whole stream.
 *  3. the standby's apply rate: that run's stream drained by a Replayer (drain mode) into an
 *     empty standby, transactions/s and MB/s of page data; the standby's rows must equal the
 *     primary's and integrity_check must say ok, else the bench fails.
 *  4. Litestream's own published figures, quoted for scale.
 *
 *   node bench/sqlite.js            (after npx tsc -p tsconfig.json)
 *   BENCH_SQLITE_N=1000 BENCH_SQLITE_BATCH_N=200 BENCH_SQLITE_ROUNDS=5 node bench/sqlite.js
 *   BENCH_SQLITE_BASE=/dev/shm node bench/sqlite.js   (the primary's database on tmpfs: no fsync
 *   cost, so what is left of the ratio is the agent's CPU; the spool stays on the disk)
 *
 * BENCH_SQLITE_N is the count of single-row transactions per run, BENCH_SQLITE_BATCH_N that of
 * 100-row ones (fewer by default: in rollback mode the agent reads the whole database at every
 * commit, so a run's cost grows with the square of its rows; 1,000 × 100 rows take ~20 s).
 */
const fs = require('node:fs');
const path = require('node:path');
const c = require('./lib/common');

const APP = path.join(__dirname, 'lib', 'sqlite-app.js');
const N = Number(process.env.BENCH_SQLITE_N ?? 1000);
const BATCH_N = Number(process.env.BENCH_SQLITE_BATCH_N ?? 200);
const ROUNDS = Number(process.env.BENCH_SQLITE_ROUNDS ?? 5);
const CONFIGS = [
  { mode: 'WAL', workload: 'single' }, { mode: 'WAL', workload: 'batch' },
  { mode: 'DELETE', workload: 'single' }, { mode: 'DELETE', workload: 'batch' },
];

/**
 * Litestream's published figures found for scale (search of docs, pages and issues, 2026-12-03).
 * No throughput, lag measurement or bytes per transaction of Litestream's own was found: only
 * its intervals, which bound how far a replica trails, and one price. Paraphrased, with where.
 */
const LITESTREAM = [
  { figure: 'v0.5.x defaults: WAL monitored every 1 s (DefaultMonitorInterval = 1 * time.Second), checkpoint every 1 min, at >= 1000 pages (DefaultMinCheckpointPageN)',
    url: 'https://pkg.go.dev/github.com/benbjohnson/litestream@v0.5.3' },
  { figure: 'replica sync-interval defaults to 1 s (a user\'s note: 20 million R2 Class A operations from forgetting to raise it)',
    url: 'https://notes.ghinda.com/post/remember-to-the-frequency-for-replication-to-litestream' },
  { figure: 'v0.5.0: changes compacted in 30 s, 5 min and 1 h windows; a point-in-time restore reads "a dozen or so files on average"',
    url: 'https://fly.io/blog/litestream-v050-is-here/ (as summarised at https://sysdesign-wiki.pages.dev/sources/2025-10-02-flyio-litestream-v050-is-here/)' },
  { figure: 'v0.3.5: S3 charges $0.000005 per PUT, which is why S3 uploads are batched and the default S3 sync interval was raised',
    url: 'https://litestream.io/blog/litestream-v0.3.5-released/' },
];

/** One run of the app on a fresh database; under the agent, shipping to `nats`. Returns its report and where its files are. */
async function runApp(cfg, n, nats) {
  const primary = c.tempDir('sqlite-primary', process.env.BENCH_SQLITE_BASE);
  const spool = c.tempDir('sqlite-spool');
  const env = nats === undefined ? {} : {
    UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${primary}`, UNDERSTUDY_SPOOL_DIR: spool,
    UNDERSTUDY_NAME: 'sqlite-bench', UNDERSTUDY_MODE: 'async',
  };
  const { result, stderr } = await c.runNode(APP, [path.join(primary, 'app.db'), cfg.mode, cfg.workload, String(n)], { env, agent: nats !== undefined, timeoutMs: 300_000 });
  if (stderr.trim() !== '') console.log(`  (app${nats ? ' under the agent' : ''}: ${stderr.trim()})`);
  if (!result.flushed) throw new Error(`${cfg.mode} ${cfg.workload}: the app's flush did not complete`);
  return { ...result, primary, spool };
}

/** The `sqlite` entries of the stream: payload bytes and pages in the timed phase [first, last], and images. */
async function shipped(url, run) {
  const { streamEntries } = c.requireDist('test/helpers/stream-entries.js');
  const { decodePages } = c.requireDist('lib/sqlite-pages.js');
  const byJournal = await streamEntries(url);
  if (byJournal.size !== 1) throw new Error(`expected one journal in the stream, found ${byJournal.size}`);
  const all = [...byJournal.values()][0].filter((e) => e.header.op === 'sqlite');
  const out = { entries: 0, bytes: 0, pages: 0, txns: 0, images: 0, imagesTimed: 0, allBytes: 0, allTxns: 0 };
  for (const e of all) {
    const h = e.header;
    const txns = decodePages(e.data, h.ps);
    out.allBytes += e.data.length;
    if (h.kind === 'image') out.images++;
    else out.allTxns += txns.length;
    if (h.s < run.first || h.s > run.last) continue;
    out.entries++;
    out.bytes += e.data.length;
    if (h.kind === 'image') out.imagesTimed++;
    else out.txns += txns.length;
    for (const t of txns) out.pages += t.pages.size;
  }
  return out;
}

/**
 * Drains the stream into an empty standby; checks it against the primary, throwing on any
 * difference. Timed twice: the whole drain, and up to the last apply plus the duration of the
 * group commit that wrote it (the appliers are wrapped, as bench/lib/e2e-replayer.js does): a
 * drain often ends 1-3 s after its last apply (seemingly its watchdog: a quiet consumer,
 * replay.quietMs), time that is no apply work.
 */
async function drain(url, run, ship) {
  const { Replayer } = c.requireDist('replayer/replayer.js');
  const { parseRoots } = c.requireDist('lib/roots.js');
  const { readDb, readPrimary } = c.requireDist('test/helpers/sqlite-app.js');
  const standby = c.tempDir('sqlite-standby');
  const state = c.tempDir('sqlite-state');
  const replayer = new Replayer({
    nats: { url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${standby}`),
    stateDir: state, drain: true, log: () => undefined,
  });
  replayer.open();
  let lastApply = NaN;
  const syncs = [];
  const appliers = replayer.appliers;
  if (appliers !== undefined && typeof appliers.apply === 'function' && typeof appliers.sync === 'function') {
    const apply = appliers.apply.bind(appliers);
    appliers.apply = (h, data) => {
      const out = apply(h, data);
      lastApply = performance.now();
      return out;
    };
    const sync = appliers.sync.bind(appliers);
    appliers.sync = async (...args) => {
      const s0 = performance.now();
      const out = await sync(...args);
      syncs.push({ s0, ms: performance.now() - s0 });
      return out;
    };
  }
  const t0 = performance.now();
  const summary = await replayer.run();
  const seconds = (performance.now() - t0) / 1000;
  // The commit that wrote what the last apply staged: counted for its own duration, not for when it began.
  const last = syncs.find((x) => x.s0 >= lastApply);
  const instrumented = last !== undefined;
  const workSeconds = instrumented ? (lastApply - t0 + last.ms) / 1000 : seconds;
  const s = readDb(path.join(standby, 'app.db'));
  const p = readPrimary(path.join(run.primary, 'app.db'));
  const problems = [];
  if (summary.skipped !== 0 || summary.inDoubt !== 0) problems.push(`${summary.skipped} skipped, ${summary.inDoubt} in doubt`);
  if (s === undefined) problems.push('no database on the standby');
  else {
    if (s.integrity !== 'ok') problems.push(`standby integrity_check: ${s.integrity}`);
    if (JSON.stringify(s.rows) !== JSON.stringify(p.rows)) problems.push(`standby rows differ (${s.rows.items?.length} against ${p.rows.items?.length} items)`);
  }
  if (p.integrity !== 'ok') problems.push(`primary integrity_check: ${p.integrity}`);
  if (problems.length > 0) throw new Error(`the standby does not equal the primary: ${problems.join('; ')}`);
  c.removeDir(standby);
  c.removeDir(state);
  return {
    seconds, workSeconds, instrumented, applied: summary.applied, rows: s.rows.items.length,
    txnsPerSec: ship.allTxns / workSeconds, mbPerSec: ship.allBytes / 1e6 / workSeconds, wallTxnsPerSec: ship.allTxns / seconds,
  };
}

/** Writes back what earlier runs left dirty, so one run does not pay for another's writeback (as e2e.js does). */
function syncDisks() {
  try {
    require('node:child_process').execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // no sync(1)
  }
}

/** Rounds of one configuration: bare and agent alternating; the last agent run's stream read and drained. */
async function measure(cfg) {
  const n = cfg.workload === 'single' ? N : BATCH_N;
  const bare = [];
  const agent = [];
  let last;
  for (let r = 0; r < ROUNDS; r++) {
    for (const arm of r % 2 === 0 ? ['bare', 'agent'] : ['agent', 'bare']) {
      syncDisks();
      if (arm === 'bare') {
        const run = await runApp(cfg, n, undefined);
        bare.push(run);
        c.removeDir(run.primary);
        c.removeDir(run.spool);
        continue;
      }
      const nats = await c.startNats('sqlite-nats');
      const run = await runApp(cfg, n, nats);
      agent.push(run);
      if (r < ROUNDS - 1) {
        await nats.stop();
        c.removeDir(run.primary);
        c.removeDir(run.spool);
      } else last = { run, nats };
    }
  }
  const ship = await shipped(last.nats.url, last.run);
  const applied = await drain(last.nats.url, last.run, ship);
  await last.nats.stop();
  c.removeDir(last.run.primary);
  c.removeDir(last.run.spool);
  const rates = (runs, withFlush) => runs.map((x) => x.n / ((x.callsMs + (withFlush ? x.flushMs : 0)) / 1000));
  const tps = (runs, withFlush) => c.median(rates(runs, withFlush));
  const spread = (runs) => `${c.fmt(Math.min(...rates(runs, false)))}-${c.fmt(Math.max(...rates(runs, false)))}`;
  const rows = last.run.rows;
  return {
    ...cfg, n, rowsPerTxn: rows / n, pages: last.run.pages,
    bareSpread: spread(bare), agentSpread: spread(agent),
    bareTps: tps(bare, false), agentTps: tps(agent, false), agentFlushedTps: tps(agent, true),
    ratio: tps(agent, false) / tps(bare, false), flushedRatio: tps(agent, true) / tps(bare, false),
    addedUsPerTxn: 1e6 / tps(agent, false) - 1e6 / tps(bare, false),
    ship: { ...ship, bytesPerTxn: ship.bytes / n, bytesPerRow: ship.bytes / rows, pagesPerTxn: ship.pages / n },
    drain: applied,
  };
}

async function run() {
  console.log(`sqlite: better-sqlite3 with and without the agent (async, to a nats-server of its own); ${ROUNDS} rounds, ${c.fmt(N)} single-row and ${c.fmt(BATCH_N)} 100-row transactions per run; ` +
    `primary under ${process.env.BENCH_SQLITE_BASE ?? require('node:os').tmpdir()}; ${c.machine()}`);
  const results = [];
  for (const cfg of CONFIGS) {
    const r = await measure(cfg);
    results.push(r);
    console.log(`  ${cfg.mode} ${cfg.workload}: ${c.fmt(r.bareTps)} → ${c.fmt(r.agentTps)} txn/s; drained ${c.fmt(r.drain.txnsPerSec)} txn/s`);
  }
  const label = (r) => `${r.mode.padEnd(6)} ${r.workload === 'single' ? '1 row' : '100 rows'}`;
  console.log('\n## 1. transactions/s, median of the rounds (the agent\'s rate without / with the flush before exit)');
  console.log(c.table([
    ['mode, rows/txn', 'txns/run', 'bare txn/s', '(min-max)', 'agent txn/s', '(min-max)', 'agent/bare', 'added µs/txn', 'agent+flush txn/s', 'agent+flush/bare', 'db pages at end'],
    ...results.map((r) => [label(r), c.fmt(r.n), c.fmt(r.bareTps), r.bareSpread, c.fmt(r.agentTps), r.agentSpread, c.fmt(r.ratio, 2), c.fmt(r.addedUsPerTxn, 1), c.fmt(r.agentFlushedTps), c.fmt(r.flushedRatio, 2), c.fmt(r.pages)]),
  ]));
  console.log('\n## 2. bytes shipped (sqlite entries\' payload: pages + 4 B page number + 12 B per transaction), last agent run, timed phase');
  console.log(c.table([
    ['mode, rows/txn', 'entries', 'txns carried', 'pages/txn', 'bytes/txn', 'bytes/row', 'images (timed / whole stream)'],
    ...results.map((r) => [label(r), c.fmt(r.ship.entries), c.fmt(r.ship.txns), c.fmt(r.ship.pagesPerTxn, 2), c.fmt(r.ship.bytesPerTxn), c.fmt(r.ship.bytesPerRow), `${r.ship.imagesTimed} / ${r.ship.images}`]),
  ]));
  console.log('\n## 3. the standby\'s apply: that stream drained into an empty standby by a Replayer in this process');
  console.log('   (apply s: from run() to the last apply, connecting included, plus the group commit that wrote it; drain s: until run() returned, end detection included)');
  console.log(c.table([
    ['mode, rows/txn', 'entries applied', 'txns', 'page data MB', 'apply s', 'txn/s', 'MB/s', 'drain s', 'txn/s whole drain', 'rows equal, integrity ok'],
    ...results.map((r) => [label(r), c.fmt(r.drain.applied), c.fmt(r.ship.allTxns), c.fmt(r.ship.allBytes / 1e6, 2), r.drain.instrumented ? c.fmt(r.drain.workSeconds, 2) : '-',
      c.fmt(r.drain.txnsPerSec), c.fmt(r.drain.mbPerSec, 1), c.fmt(r.drain.seconds, 2), c.fmt(r.drain.wallTxnsPerSec), `yes (${c.fmt(r.drain.rows)} rows)`]),
  ]));
  console.log('\n## 4. Litestream\'s published figures, for scale');
  console.log('  no throughput, lag or bytes-per-transaction figure of Litestream\'s own found; its intervals and a price:');
  for (const l of LITESTREAM) console.log(`  ${l.figure}\n    ${l.url}`);
  return { n: N, batchN: BATCH_N, rounds: ROUNDS, results, litestream: LITESTREAM };
}

module.exports = { run };

if (require.main === module) c.runMain(run);
