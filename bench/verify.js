'use strict';
/**
 * `understudy verify` on an unchanged tree against `rsync -an --checksum` in the same run.
 *
 * One nats-server; 10,000 files of 1-4 KiB in 100 directories under os.tmpdir(), baselined
 * (`understudy baseline`) and applied by a following `understudy replay` (a child, left
 * running: verify asks it for the standby's digests). Once the standby equals the source,
 * every round runs, in rotating order:
 *  - `understudy verify --root data=src` (xxh64, the default)
 *  - `understudy verify --root data=src --hash sha256`
 *  - `rsync -an --checksum src/ standby/` (a dry run that reads and checksums both trees)
 * each timed from spawn to exit (process start-up included), under /usr/bin/time for its CPU;
 * the following replayer's CPU during each verify is read from /proc. Each verify must exit 0
 * ("equal"); the replayer's CPU over 5 idle seconds is given for comparison. Both trees stay in the page cache throughout (warm-cache figures).
 *
 *   node bench/verify.js
 *   BENCH_VERIFY_ROUNDS=5 BENCH_VERIFY_FILES=10000
 */
const fs = require('node:fs');
const os = require('node:os');
const { startNats, tempDir, median, fmt, table, machine, runMain, sleep } = require('./lib/common');
const { CLI } = require('./lib/common');
const { timed, cli, daemon, makeSmallTree, assertSameTree, diskOf, loadNow, version, min, max } = require('./lib/commands');

const ROUNDS = Number(process.env.BENCH_VERIFY_ROUNDS ?? 5);
const FILES = Number(process.env.BENCH_VERIFY_FILES ?? 10_000);

/** CPU seconds (user + system) a process has used so far, from /proc. */
function cpuOf(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
}

async function run() {
  console.log(`verify.js: ${new Date().toISOString()}, ${machine()}`);
  console.log(`  ${diskOf(os.tmpdir())}`);
  console.log(`  ${version('rsync')}; ${version('nats-server')}`);
  console.log(`  at start: ${loadNow()}`);
  const nats = await startNats('verify-nats');
  const src = tempDir('verify-src');
  const standby = tempDir('verify-standby');
  const state = tempDir('verify-state');
  const spool = tempDir('verify-spool');
  const made = makeSmallTree(src, { files: FILES });
  const b = await cli(['baseline', '--root', `data=${src}`, '--nats', nats.url], { env: { UNDERSTUDY_SPOOL_DIR: spool } });
  const replayer = daemon(process.execPath, [CLI, 'replay', '--root', `data=${standby}`, '--nats', nats.url, '--state', state]);
  const t0 = Date.now();
  for (;;) {
    try {
      assertSameTree(src, standby);
      break;
    } catch (err) {
      if (Date.now() - t0 > 90_000) throw new Error(`the standby is not complete 90 s after the baseline: ${err.message}\n${replayer.output()}`);
      await sleep(500);
    }
  }
  console.log(`  ${fmt(made.files)} files (${fmt(made.bytes / 1048576, 1)} MiB) baselined in ${fmt(b.ms)} ms, on the following standby ${fmt(Date.now() - t0)} ms after that`);

  const tools = [
    { key: 'xxh64', label: 'understudy verify (xxh64)', go: () => cli(['verify', '--root', `data=${src}`, '--nats', nats.url], { rss: true }) },
    { key: 'sha256', label: 'understudy verify --hash sha256', go: () => cli(['verify', '--root', `data=${src}`, '--nats', nats.url, '--hash', 'sha256'], { rss: true }) },
    { key: 'rsync', label: 'rsync -an --checksum', go: () => timed('rsync', ['-an', '--checksum', `${src}/`, `${standby}/`], { rss: true }) },
  ];
  // One untimed verify first: the replayer's verify service and xxhash-wasm are then loaded once.
  const warm = await cli(['verify', '--root', `data=${src}`, '--nats', nats.url]);
  console.log(`  warm-up verify: ${fmt(warm.ms)} ms, said "${warm.stdout.trim().split('\n').pop()}"`);
  // What the following replayer burns with nothing to do, for comparison with its CPU during a verify.
  const idle0 = cpuOf(replayer.child.pid);
  await sleep(5000);
  const idleCpu = cpuOf(replayer.child.pid) - idle0;
  console.log(`  following replayer, idle: ${fmt(idleCpu, 2)} s CPU in 5 s`);
  const got = Object.fromEntries(tools.map((t) => [t.key, { ms: [], cpu: [], rss: [], replayerCpu: [] }]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = tools.map((_, i) => tools[(i + r) % tools.length]);
    const line = [];
    for (const t of order) {
      const c0 = cpuOf(replayer.child.pid);
      const res = await t.go();
      const c1 = cpuOf(replayer.child.pid);
      if (t.key !== 'rsync' && !/^equal/m.test(res.stdout)) throw new Error(`${t.label} did not say equal:\n${res.stdout}${res.stderr}`);
      got[t.key].ms.push(res.ms);
      got[t.key].cpu.push(res.cpuS);
      got[t.key].rss.push(res.rssKiB / 1024);
      got[t.key].replayerCpu.push(c1 - c0);
      line.push(`${t.key} ${fmt(res.ms)} ms`);
    }
    console.log(`  round ${r + 1}: ${line.join(', ')}; ${loadNow()}`);
  }
  await replayer.stop();
  await nats.stop();
  console.log(`  at end: ${loadNow()}\n`);

  const rs = got.rsync.ms;
  const rows = [['tool', 'median ms', 'range ms', 'files/s', 'ratio to rsync (median)', 'ratio range (per round)', 'own CPU s', 'replayer CPU s meanwhile', 'peak RSS MiB']];
  for (const t of tools) {
    const g = got[t.key];
    const med = median(g.ms);
    const ratios = g.ms.map((v, i) => v / rs[i]);
    rows.push([t.label, fmt(med), `${fmt(min(g.ms))}-${fmt(max(g.ms))}`, fmt(made.files / (med / 1000)), `${fmt(med / median(rs), 2)}x`,
      `${fmt(min(ratios), 2)}-${fmt(max(ratios), 2)}x`, `${fmt(median(g.cpu), 2)} (${fmt(min(g.cpu), 2)}-${fmt(max(g.cpu), 2)})`,
      t.key === 'rsync' ? '-' : `${fmt(median(g.replayerCpu), 2)} (${fmt(min(g.replayerCpu), 2)}-${fmt(max(g.replayerCpu), 2)})`, fmt(median(g.rss), 1)]);
  }
  console.log(table(rows));
  console.log(`\n(${ROUNDS} rounds, ${fmt(made.files)} unchanged files; medians, ranges over the rounds; ratios = tool / rsync of the same round.)`);
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify({ made, got }, null, 2));
}

runMain(run);
