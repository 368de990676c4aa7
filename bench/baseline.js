'use strict';
/**
 * `understudy baseline` throughput against `rsync -a` of the same tree in the same run.
 *
 * Trees (made once, under os.tmpdir()): an empty root (what every run costs whatever the tree), (a) 10,000 files of 1-4 KiB random bytes in 100
 * directories, (b) one 200 MiB file of random bytes. Every round, for each tree, in alternating
 * order:
 *  - understudy: a fresh nats-server, a fresh spool; `understudy baseline` (timed, under
 *    /usr/bin/time for its peak RSS and CPU), then at once `understudy replay --drain` into an
 *    empty standby (timed likewise). End to end = start of baseline → the drain's exit.
 *    The standby is then compared with the source (diff -r, types and modes) outside the timing.
 *  - rsync: `rsync -a src/ dst/` into an empty local directory (timed), then `sync` (timed apart:
 *    the replayer fsyncs what it applies, rsync does not).
 * `sync` runs before each timed part so one does not pay for the previous one's dirty pages.
 *
 *   node bench/baseline.js
 *   BENCH_BASELINE_ROUNDS=3 BENCH_BASELINE_TREES=empty,small,big BENCH_BASELINE_FILES=10000 BENCH_BASELINE_BIG_MIB=200
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startNats, tempDir, removeDir, median, fmt, table, machine, runMain } = require('./lib/common');
const { timed, cli, makeSmallTree, makeBigFile, assertSameTree, syncDisk, diskOf, loadNow, version, min, max, haveTime } = require('./lib/commands');

const ROUNDS = Number(process.env.BENCH_BASELINE_ROUNDS ?? 3);
const TREES = (process.env.BENCH_BASELINE_TREES ?? 'empty,small,big').split(',').filter(Boolean);
const FILES = Number(process.env.BENCH_BASELINE_FILES ?? 10_000);
const BIG_MIB = Number(process.env.BENCH_BASELINE_BIG_MIB ?? 200);

async function understudyRun(src) {
  const nats = await startNats('baseline-nats');
  const spool = tempDir('baseline-spool');
  const standby = tempDir('baseline-standby');
  const state = tempDir('baseline-state');
  try {
    syncDisk();
    const b = await cli(['baseline', '--root', `data=${src}`, '--nats', nats.url], { env: { UNDERSTUDY_SPOOL_DIR: spool }, rss: true });
    const d = await cli(['replay', '--root', `data=${standby}`, '--nats', nats.url, '--state', state, '--drain'], { rss: true });
    assertSameTree(src, standby);
    return { baselineMs: b.ms, drainMs: d.ms, e2eMs: b.ms + d.ms, baselineRss: b.rssKiB, baselineCpu: b.cpuS, drainRss: d.rssKiB, drainCpu: d.cpuS };
  } finally {
    await nats.stop();
    for (const dir of [spool, standby, state]) removeDir(dir);
  }
}

async function rsyncRun(src) {
  const dst = tempDir('baseline-rsync');
  try {
    syncDisk();
    const r = await timed('rsync', ['-a', `${src}/`, `${dst}/`], { rss: true });
    const s = await timed('sync', []);
    return { rsyncMs: r.ms, syncMs: s.ms, rsyncRss: r.rssKiB };
  } finally {
    removeDir(dst);
  }
}

function spread(v, digits = 0) {
  return `${fmt(min(v), digits)}-${fmt(max(v), digits)}`;
}

async function run() {
  console.log(`baseline.js: ${new Date().toISOString()}, ${machine()}`);
  console.log(`  ${diskOf(os.tmpdir())}`);
  console.log(`  ${version('rsync')}; ${version('nats-server')}; /usr/bin/time ${haveTime ? 'present' : 'missing (no RSS)'}`);
  console.log(`  at start: ${loadNow()}`);
  const results = {};
  for (const tree of TREES) {
    const src = tempDir(`baseline-src-${tree}`);
    const made = tree === 'small' ? makeSmallTree(src, { files: FILES })
      : tree === 'big' ? makeBigFile(path.join(src, 'big.bin'), BIG_MIB << 20)
        : { files: 0, dirs: 0, bytes: 0 };
    const label = tree === 'small' ? `${fmt(made.files)} files of 1-4 KiB in ${made.dirs} dirs (${fmt(made.bytes / 1048576, 1)} MiB)`
      : tree === 'big' ? `one ${BIG_MIB} MiB file` : 'empty root (fixed cost)';
    const runs = [];
    for (let r = 0; r < ROUNDS; r++) {
      const u = r % 2 === 0 ? await understudyRun(src) : undefined;
      const rs = await rsyncRun(src);
      const u2 = u ?? (await understudyRun(src));
      runs.push({ ...u2, ...rs });
      console.log(`  ${tree} round ${r + 1}: baseline ${fmt(u2.baselineMs)} ms (peak RSS ${fmt(u2.baselineRss / 1024, 1)} MiB, CPU ${fmt(u2.baselineCpu, 2)} s), ` +
        `drain ${fmt(u2.drainMs)} ms (peak RSS ${fmt(u2.drainRss / 1024, 1)} MiB, CPU ${fmt(u2.drainCpu, 2)} s), rsync -a ${fmt(rs.rsyncMs)} ms + sync ${fmt(rs.syncMs)} ms; ${loadNow()}`);
    }
    removeDir(src);
    results[tree] = { label, made, runs };
  }
  console.log(`  at end: ${loadNow()}\n`);

  const rows = [['tree', 'measure', 'median ms', 'range ms', 'files/s', 'MiB/s', 'ratio to rsync -a (median)', 'ratio range (per round)']];
  for (const tree of TREES) {
    const { label, made, runs } = results[tree];
    const col = (k) => runs.map((x) => x[k]);
    const rsyncMed = median(col('rsyncMs'));
    const add = (name, ms) => {
      const med = median(ms);
      const ratios = runs.map((x, i) => ms[i] / x.rsyncMs);
      rows.push([label, name, fmt(med), spread(ms), made.files > 1 ? fmt(made.files / (med / 1000)) : '-', made.bytes > 0 ? fmt(made.bytes / 1048576 / (med / 1000), 1) : '-',
        `${fmt(med / rsyncMed, 2)}x`, `${fmt(min(ratios), 2)}-${fmt(max(ratios), 2)}x`]);
    };
    add('understudy baseline (command alone)', col('baselineMs'));
    add('replay --drain (alone)', col('drainMs'));
    add('baseline + drain, end to end', col('e2eMs'));
    add('rsync -a', col('rsyncMs'));
    add('rsync -a, then sync', runs.map((x) => x.rsyncMs + x.syncMs));
  }
  console.log(table(rows));
  const mem = [['tree', 'baseline peak RSS MiB (median, range)', 'baseline CPU s', 'drain peak RSS MiB', 'drain CPU s', 'rsync peak RSS MiB']];
  for (const tree of TREES) {
    const { label, runs } = results[tree];
    const mib = (k) => runs.map((x) => x[k] / 1024);
    const c = (k) => runs.map((x) => x[k]);
    mem.push([label, `${fmt(median(mib('baselineRss')), 1)} (${spread(mib('baselineRss'), 1)})`, `${fmt(median(c('baselineCpu')), 2)} (${spread(c('baselineCpu'), 2)})`,
      `${fmt(median(mib('drainRss')), 1)} (${spread(mib('drainRss'), 1)})`, `${fmt(median(c('drainCpu')), 2)} (${spread(c('drainCpu'), 2)})`,
      `${fmt(median(mib('rsyncRss')), 1)} (${spread(mib('rsyncRss'), 1)})`]);
  }
  console.log(`\n${table(mem)}`);
  console.log(`\n(${ROUNDS} rounds; each understudy run on a fresh nats-server and spool; times include process start-up; ratios = understudy / rsync -a of the same round.)`);
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(results, null, 2));
}

runMain(run);
