'use strict';
/**
 * CPU of `understudy watch` on a tree of 10,000 small files in 100 directories: idle (nothing
 * changes; the full passes every 30 s are the only work, and are included), and under a writer
 * that creates 1,000 new files a second for 20 s, with a following `understudy replay` whose
 * standby is checked to keep up.
 *
 * CPU is utime + stime of the whole `understudy watch` process (/proc/<pid>/stat: its main thread,
 * the shipper's worker thread, libuv's pool, V8's helpers), sampled every 500 ms. The full passes
 * in the idle window are found from `understudy status --json` (asked every 10 s; it holds the
 * last pass), and the CPU over each pass's span is given apart.
 *
 *   node bench/watch-cpu.js
 *   BENCH_WATCH_FILES=10000 BENCH_WATCH_IDLE_S=60 BENCH_WATCH_LOAD_RATE=1000 BENCH_WATCH_LOAD_S=20
 */
const os = require('node:os');
const path = require('node:path');
const { fmt, machine, runMain, sleep, runNode } = require('./lib/common');
const { diskOf, loadNow, assertSameTree } = require('./lib/commands');
const { startPair, cpuSeconds, countNamed } = require('./lib/watch-pair');

const FILES = Number(process.env.BENCH_WATCH_FILES ?? 10_000);
const IDLE_S = Number(process.env.BENCH_WATCH_IDLE_S ?? 60);
const RATE = Number(process.env.BENCH_WATCH_LOAD_RATE ?? 1000);
const LOAD_S = Number(process.env.BENCH_WATCH_LOAD_S ?? 20);

/** Samples the CPU seconds of `pids` every 500 ms until `stop()`; `at(t)` interpolates nothing, it takes the sample at or before t. */
function sampler(pids) {
  const samples = [];
  const take = () => samples.push({ t: Date.now(), cpu: pids.map(cpuSeconds) });
  take();
  const timer = setInterval(take, 500);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
    },
    /** CPU of pid i between the samples around [from, to] (wall ms), and that span in s. */
    between(i, from, to) {
      const a = [...samples].reverse().find((s) => s.t <= from) ?? samples[0];
      const b = samples.find((s) => s.t >= to) ?? samples[samples.length - 1];
      return { cpu: b.cpu[i] - a.cpu[i], s: (b.t - a.t) / 1000 };
    },
  };
}

async function run() {
  console.log(`watch-cpu.js: ${new Date().toISOString()}, ${machine()}`);
  console.log(`  ${diskOf(os.tmpdir())}; at start: ${loadNow()}`);
  // BENCH_PROF=<dir>: the watcher runs under the V8 profiler (bench/prof-summary.js reads what it leaves).
  const prof = process.env.BENCH_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROF}`] : [];
  const pair = await startPair({ files: FILES, nodeArgs: prof });
  try {
    const wpid = pair.watcher.child.pid;
    const rpid = pair.replayer.child.pid;
    console.log(`  tree: ${pair.tree.files} files in ${pair.tree.dirs} directories; watch ready ${fmt(pair.startS, 1)} s after its start, ` +
      `${fmt(cpuSeconds(wpid), 2)} CPU s by then (start-up and the first look)`);

    // Idle.
    await sleep(2000);
    const idle = sampler([wpid]);
    const t0 = Date.now();
    const passes = new Map();
    while (Date.now() - t0 < IDLE_S * 1000) {
      await sleep(Math.min(10_000, t0 + IDLE_S * 1000 - Date.now()));
      const p = (await pair.watchStatus())?.lastPass;
      if (p !== undefined) passes.set(p.startedAt, p);
    }
    idle.stop();
    const t1 = Date.now();
    const total = idle.between(0, t0, t1);
    const inWindow = [...passes.values()].filter((p) => p.startedAt >= t0 && p.finishedAt <= t1);
    let passCpu = 0;
    let passS = 0;
    let passDurS = 0;
    for (const p of inWindow) {
      passDurS += (p.finishedAt - p.startedAt) / 1000;
      const c = idle.between(0, p.startedAt, p.finishedAt);
      passCpu += c.cpu;
      passS += c.s;
      console.log(`  full pass ${new Date(p.startedAt).toISOString()}: ${p.objects} objects in ${fmt((p.finishedAt - p.startedAt) / 1000, 1)} s, mended ${p.mended}; ` +
        `${fmt(c.cpu, 2)} CPU s over the ${fmt(c.s, 1)} s of samples around it`);
    }
    const outside = (total.cpu - passCpu) / Math.max(0.001, total.s - passS);
    console.log(`  idle ${fmt(total.s, 1)} s: ${fmt(total.cpu, 2)} CPU s = ${fmt((total.cpu / total.s) * 60, 2)} CPU s per minute (${inWindow.length} full pass(es) inside); ` +
      `outside the passes ${fmt(outside * 60, 3)} CPU s per minute; ${loadNow()}`);
    if (inWindow.length > 0) {
      // A pass begins UNDERSTUDY_WATCH_FULL_PASS_MS after the last one ended: so many a minute, whatever the window held.
      const every = Number(process.env.UNDERSTUDY_WATCH_FULL_PASS_MS ?? 30_000) / 1000 + passDurS / inWindow.length;
      console.log(`  steady state, one pass every ${fmt(every, 1)} s: ${fmt(outside * 60 + (60 / every) * (passCpu / inWindow.length), 2)} CPU s per minute`);
    }

    // Under load.
    const load = sampler([wpid, rpid]);
    const lag = [];
    const prefix = `load${Date.now()}-`;
    const tl0 = Date.now();
    const writer = runNode(path.join(__dirname, 'lib', 'watch-writer.js'), [pair.src, String(RATE), String(LOAD_S), prefix], { timeoutMs: (LOAD_S + 60) * 1000 });
    let done = false;
    writer.finally(() => (done = true)).catch(() => undefined);
    while (!done) {
      await sleep(1000);
      const written = countNamed(pair.src, prefix);
      const there = countNamed(pair.dst, prefix);
      lag.push({ s: (Date.now() - tl0) / 1000, written, there });
    }
    const { result } = await writer;
    const tl1 = Date.now();
    let caught;
    for (;;) {
      const there = countNamed(pair.dst, prefix);
      if (there === result.n) {
        caught = Date.now();
        break;
      }
      if (Date.now() - tl1 > 120_000) throw new Error(`standby has ${there} of ${result.n} files 120 s after the writer ended`);
      await sleep(100);
    }
    await sleep(1000);
    load.stop();
    const w = load.between(0, tl0, tl1);
    const wAfter = load.between(0, tl1, caught);
    const r = load.between(1, tl0, caught);
    const maxLag = Math.max(...lag.map((l) => l.written - l.there));
    console.log(`  load: ${result.n} new files in ${fmt(result.ms / 1000, 1)} s (${fmt(result.n / (result.ms / 1000))}/s achieved)`);
    console.log(`  watcher while writing: ${fmt(w.cpu, 2)} CPU s over ${fmt(w.s, 1)} s = ${fmt((w.cpu / w.s) * 60, 1)} CPU s per minute (${fmt((100 * w.cpu) / w.s)}% of a core); ` +
      `after the writer until caught up: ${fmt(wAfter.cpu, 2)} CPU s`);
    console.log(`  replayer (writer start to caught up): ${fmt(r.cpu, 2)} CPU s over ${fmt(r.s, 1)} s`);
    console.log(`  standby: every file there ${fmt((caught - tl1) / 1000, 2)} s after the last write; behind by at most ${maxLag} files (sampled each second: ` +
      `${lag.map((l) => l.written - l.there).join(' ')})`);
    // Under load a full pass is slowed by the event work beside it: when did the first one end that ran during the load?
    let pass;
    for (let i = 0; i < 36 && pass === undefined; i++) {
      const p = (await pair.watchStatus())?.lastPass;
      if (p !== undefined && p.finishedAt >= tl0) pass = p;
      else await sleep(5000);
    }
    console.log(`  the first full pass to end after the writer began: ${pass === undefined ? 'none within 180 s of the catch-up' :
      `began ${fmt((pass.startedAt - tl0) / 1000, 1)} s after the writer began, took ${fmt((pass.finishedAt - pass.startedAt) / 1000, 1)} s for ${pass.objects} objects, mended ${pass.mended}`}`);
    assertSameTree(pair.src, pair.dst);
    console.log(`  standby equals the primary (diff -r, types and modes); at end: ${loadNow()}`);
    console.log(`  status: ${await pair.watchLine()}`);
  } finally {
    const w = await pair.stop();
    if (w.code !== 0) console.log(`  (understudy watch exited ${w.code ?? w.signal}: ${pair.watcher.output().trim().split('\n').pop()})`);
  }
}

runMain(run);
