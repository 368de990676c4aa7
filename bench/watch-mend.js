'use strict';
/**
 * How long a change no event announced takes to reach the standby: reconciliation's mend time.
 *
 * The change is missed for real. `understudy watch` (on a tree of 10,000 small files in 100
 * directories, with a following `understudy replay` on a standby that starts as its copy) is
 * stopped with SIGSTOP; meanwhile a flood of events twice /proc/sys/fs/inotify/max_queued_events
 * long is made (more than the kernel queues for the watcher's one inotify instance, so the queue
 * overflows and the rest of the events are dropped, IN_Q_OVERFLOW, which libuv ignores), then one
 * distinguished file in d099, a directory the flood never touched. The flood is either
 * `rewrites`: 2 x max_queued_events writes in place to two files of d000 in turn (one modify event each;
 * the kernel merges only identical events in a row), so 2 changes to journal and the mend time is
 * reconciliation's own; or `files`: max_queued_events new files in d000..d049 (a create and a
 * modify event each), all of them to journal and replay before the distinguished one.
 * Then SIGCONT. Its events were certainly among those dropped; the flood's directories have events
 * in the queue, so they are listed as usual. Measured: from the distinguished change (and from the
 * SIGCONT) to the file with its content on the standby, and which way it came, from the watcher's
 * --verbose line for it ("(mended by a full pass)" or a plain event line). Each trial begins 3 s
 * after the previous one ended (the first 3 s after the watch is ready), at no chosen point of the
 * full pass's cycle; the bound by design is UNDERSTUDY_WATCH_FULL_PASS_MS + one pass.
 *
 * Run with the default full-pass interval and with UNDERSTUDY_WATCH_FULL_PASS_MS=5000.
 *
 *   node bench/watch-mend.js
 *   BENCH_WATCH_FILES=10000 BENCH_WATCH_MEND_TRIALS=2 BENCH_WATCH_MEND_PASS_MS=default,5000 BENCH_WATCH_MEND_FLOOD=rewrites,files
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { fmt, machine, runMain, sleep } = require('./lib/common');
const { diskOf, loadNow, assertSameTree } = require('./lib/commands');
const { startPair, waitFor, countNamed } = require('./lib/watch-pair');

const FILES = Number(process.env.BENCH_WATCH_FILES ?? 10_000);
const TRIALS = Number(process.env.BENCH_WATCH_MEND_TRIALS ?? 2);
const SETTINGS = (process.env.BENCH_WATCH_MEND_PASS_MS ?? 'default,5000').split(',').filter(Boolean);
const FLOODS = (process.env.BENCH_WATCH_MEND_FLOOD ?? 'rewrites,files').split(',').filter(Boolean);
const QUEUED = Number(fs.readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8').trim());

async function trial(pair, k, flood) {
  const prefix = `flood${k}-`;
  const name = `mended-${k}.txt`;
  const content = `missed change ${k} ${Date.now()}\n`;
  const pid = pair.watcher.child.pid;
  process.kill(pid, 'SIGSTOP');
  const ts = performance.now();
  if (flood === 'files') for (let i = 0; i < QUEUED; i++) fs.writeFileSync(path.join(pair.src, `d${String(i % 50).padStart(3, '0')}`, `${prefix}${i}.txt`), `${i}\n`);
  else {
    // In place, without O_TRUNC: on ext4 a truncation waits for the old blocks' writeback, and 32,768 of them take half a minute.
    const fds = [0, 1].map((j) => fs.openSync(path.join(pair.src, 'd000', `${prefix}${j}.txt`), 'w'));
    for (let i = 0; i < 2 * QUEUED; i++) fs.writeSync(fds[i % 2], `${String(i).padStart(8, '0')}\n`, 0);
    for (const fd of fds) fs.closeSync(fd);
  }
  const floodFiles = flood === 'files' ? QUEUED : 2;
  fs.writeFileSync(path.join(pair.src, 'd099', name), content);
  const tChange = performance.now();
  process.kill(pid, 'SIGCONT');
  const tCont = performance.now();
  const contWall = Date.now();
  // The flood is watched for beside the distinguished file, not after it.
  const flooded = (async () => {
    for (;;) {
      if (countNamed(pair.dst, prefix) === floodFiles) return performance.now();
      if (performance.now() - tCont > 180_000) throw new Error(`flood ${k}: ${countNamed(pair.dst, prefix)} of ${floodFiles} on the standby after 180 s`);
      await sleep(50);
    }
  })();
  flooded.catch(() => undefined);
  const tArrive = await waitFor(path.join(pair.dst, 'd099', name), content, { timeoutMs: 180_000 });
  const tFlood = await flooded;
  const lines = pair.watcher.output().split('\n');
  const line = lines.find((l) => l.endsWith(`data/d099/${name}`) || l.includes(`data/d099/${name} `)) ??
    lines.find((l) => l.includes(`d099/${name}`)) ?? '(no line for it)';
  const floodLines = lines.filter((l) => l.includes(`/${prefix}`));
  const floodByPass = floodLines.filter((l) => l.includes('mended by a full pass')).length;
  // What status says of the pass that mended it, once the watcher reported it (every 5 s).
  let status;
  for (let i = 0; i < 20; i++) {
    const w = await pair.watchStatus();
    if (w?.lastPass !== undefined && w.lastPass.finishedAt >= contWall) {
      status = w.lastPass;
      break;
    }
    await sleep(1000);
  }
  return {
    stoppedS: (tCont - ts) / 1000,
    changeToStandbyS: (tArrive - tChange) / 1000,
    contToStandbyS: (tArrive - tCont) / 1000,
    floodS: (tFlood - tCont) / 1000,
    how: line.includes('mended by a full pass') ? 'full pass' : line.includes('(no line') ? 'no line' : 'event',
    line,
    floodLines: floodLines.length,
    floodFiles,
    floodByPass,
    status,
  };
}

async function run() {
  console.log(`watch-mend.js: ${new Date().toISOString()}, ${machine()}`);
  console.log(`  ${diskOf(os.tmpdir())}; max_queued_events ${QUEUED}; at start: ${loadNow()}`);
  for (const flood of FLOODS) for (const setting of SETTINGS) {
    const env = setting === 'default' ? {} : { UNDERSTUDY_WATCH_FULL_PASS_MS: setting };
    const pair = await startPair({ files: FILES, env, verbose: true });
    try {
      console.log(`  flood of ${flood}; full pass every ${setting === 'default' ? 'default (30000)' : setting} ms; tree ${pair.tree.files} files in ${pair.tree.dirs} directories`);
      for (let k = 0; k < TRIALS; k++) {
        await sleep(3000);
        const r = await trial(pair, k, flood);
        console.log(`    trial ${k + 1}: watcher stopped ${fmt(r.stoppedS, 1)} s for ${flood === 'files' ? `${QUEUED} new files` : `${2 * QUEUED} rewrites of 2 files`} (${2 * QUEUED} events) + the distinguished one; ` +
          `it was on the standby ${fmt(r.changeToStandbyS, 2)} s after the change (${fmt(r.contToStandbyS, 2)} s after SIGCONT), by ${r.how}: "${r.line}"`);
        console.log(`      the flood: all ${r.floodFiles} on the standby ${fmt(r.floodS, 2)} s after SIGCONT; ${r.floodLines} journaled, ${r.floodByPass} of them by a full pass`);
        console.log(`      status's last pass after it: ${r.status === undefined ? 'none reported within 20 s' :
          `${r.status.objects} objects in ${fmt((r.status.finishedAt - r.status.startedAt) / 1000, 1)} s, mended ${r.status.mended} (${r.status.examples.slice(0, 3).join(', ')}${r.status.mended > 3 ? ', …' : ''})`}`);
      }
      console.log(`    status: ${await pair.watchLine()}`);
      await sleep(1000);
      assertSameTree(pair.src, pair.dst);
      console.log(`    standby equals the primary (diff -r, types and modes); ${loadNow()}`);
    } finally {
      const w = await pair.stop();
      if (w.code !== 0) console.log(`    (understudy watch exited ${w.code ?? w.signal}: ${pair.watcher.output().trim().split('\n').pop()})`);
    }
  }
}

runMain(run);
