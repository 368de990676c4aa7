'use strict';
/**
 * `npm run bench`: builds (in the npm script), then runs the overhead bench, the
 * end-to-end bench, the mode table and the SQLite benches (small and large databases) in turn and prints a short summary.
 *   BENCH_JSON=/abs/file.json node bench/run.js   (also writes every figure as JSON)
 * See bench/README.md for what each measures and the knobs (BENCH_* variables).
 */
const fs = require('node:fs');
const c = require('./lib/common');
const overhead = require('./overhead');
const e2e = require('./e2e');
const modes = require('./modes');
const sqlite = require('./sqlite');
const sqliteLarge = require('./sqlite-large');

/** The commit measured, and whether files outside bench/ differed from it. */
function revision() {
  try {
    const git = (...args) => require('node:child_process').execFileSync('git', args, { cwd: c.REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const changed = git('status', '--porcelain').split('\n').filter((l) => l !== '' && !l.slice(3).startsWith('bench/'));
    return `commit ${git('rev-parse', '--short', 'HEAD')}${changed.length > 0 ? ` + ${changed.length} uncommitted file(s) outside bench/` : ''}`;
  } catch {
    return 'commit unknown';
  }
}

async function main() {
  const started = Date.now();
  const date = new Date().toISOString();
  console.log(`# understudy bench, ${date}, ${revision()}`);
  const o = await overhead.run();
  console.log('');
  const e = await e2e.run();
  console.log('');
  const m = await modes.main();
  console.log('');
  const q = await sqlite.run();
  console.log('');
  const ql = await sqliteLarge.run();
  console.log('\n# summary');
  for (const r of o.results) {
    console.log(`overhead  ${r.fs.padEnd(5)} ${r.label.padEnd(30)} ${c.fmt(r.ratio, 2)}x time with the agent, ${c.fmt(r.otelRatio, 2)}x with OpenTelemetry fs, ` +
      `understudy/OTel ${c.fmt(r.agentOverOtel, 2)} (${c.fmt(r.plainOpsPerSec)} → ${c.fmt(r.agentOpsPerSec)} / ${c.fmt(r.otelOpsPerSec)} ops/s)`);
  }
  const t = e.throughput;
  if (t) console.log(`e2e       throughput ${c.fmt(t.endToEndRate)} entries/s end to end (app calls ${c.fmt(t.callRate)}/s, in JetStream ${c.fmt(t.shipRate)}/s` +
    `${t.followApplyRate ? `, standby applies ${c.fmt(t.followApplyRate)}/s` : ''}; ${t.drain.stalled ? `fresh drain STALLED after ${c.fmt(t.drain.applied)} of ${c.fmt(t.drain.of)}` : `fresh drain ${c.fmt(t.drain.applyRate ?? t.drain.totalRate)}/s`})`);
  for (const lag of e.lag) {
    const l = lag.visible ?? lag.kv;
    if (!l) continue;
    console.log(`e2e       lag at ${c.fmt(lag.rate)}/s: p50 ${c.fmt(l.p50, 1)} ms, p99 ${c.fmt(l.p99, 1)} ms (${lag.visible ? 'journal → applied' : 'KV appliedAt - t'}); ` +
      `${lag.grew ? 'grew' : 'did not grow'} over the run (p50 ${c.fmt(l.firstQuarter.p50, 1)} → ${c.fmt(l.lastQuarter.p50, 1)} ms)` +
      `${lag.caughtUp ? '' : '; NOT caught up within the bench\'s wait, figures understate the lag'}`);
  }
  for (const [mode, r] of Object.entries(m.results)) {
    console.log(`modes     ${mode.padEnd(6)} 1 caller ${c.fmt(r.one.perSecond)}/s (p50 ${c.fmt(r.one.p50)} µs), 64 callers ${c.fmt(r.many.perSecond)}/s = ${c.fmt((100 * r.many.perSecond) / m.results.async.many.perSecond)} % of async`);
  }
  console.log(`modes     sync writeFileSync added ${c.fmt(m.syncAdded)} µs = ${c.fmt(m.syncAdded / m.rtt, 2)}x a bare round trip (${c.fmt(m.rtt)} µs)`);
  for (const r of q.results) {
    const what = `sqlite    ${r.mode.padEnd(6)} ${(r.workload === 'single' ? '1 row/txn' : '100 rows/txn').padEnd(12)}`;
    console.log(`${what} ${c.fmt(r.bareTps)} → ${c.fmt(r.agentTps)} txn/s with the agent = ${c.fmt(r.ratio, 2)}x (${c.fmt(r.flushedRatio, 2)}x with the exit flush)`);
    console.log(`${what} ${c.fmt(r.ship.bytesPerTxn)} B shipped/txn, ${c.fmt(r.ship.bytesPerRow)} B/row (${c.fmt(r.ship.pagesPerTxn, 2)} pages/txn), ${r.ship.imagesTimed} image(s) in the timed phase, ${r.ship.images} in all`);
    console.log(`${what} standby drain ${c.fmt(r.drain.txnsPerSec)} txn/s, ${c.fmt(r.drain.mbPerSec, 1)} MB/s of pages; rows equal, integrity ok`);
  }
  for (const r of ql.results) {
    console.log(`sqlite    ${r.mode.padEnd(6)} ${r.mb} MB database, 1 row/txn: ${c.fmt(r.bareUs)} → ${c.fmt(r.agentUs)} µs a commit with the agent = ${c.fmt(r.ratio, 1)}x; peak RSS ${c.fmt(r.bareRssMB)} → ${c.fmt(r.agentRssMB)} MB`);
  }
  console.log(`sqlite    Litestream: no published throughput or bytes/txn figure found; its WAL monitor and sync interval default to 1 s (see bench/README.md)`);
  console.log(`# bench took ${c.fmt((Date.now() - started) / 1000, 1)} s`);
  if (process.env.BENCH_JSON) {
    fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({ date, revision: revision(), machine: c.machine(), overhead: o, e2e: e, modes: m, sqlite: q, sqliteLarge: ql }, null, 2));
  }
}

main().then(() => c.cleanup(), async (err) => {
  console.error(err);
  await c.cleanup();
  process.exitCode = 1;
});
