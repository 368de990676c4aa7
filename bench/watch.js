'use strict';
/**
 * Latency of `understudy watch` (with a following `understudy replay`) against lsyncd with
 * default.rsync to a local directory, with `delay = 0` and with lsyncd's default delay (15 s in
 * lsyncd 2.2: it gathers events for 15 s before it runs rsync), in the same run.
 *
 * A shell writes a new file every 200 ms, 100 times (`sh -c 'echo "$1" > "$2"'`, one process per
 * write). Latency = from the shell's exit (the write is done) to the file being on the target with
 * the right content; the target directory is polled every BENCH_WATCH_POLL_MS (3) ms (readdir,
 * then a read of each new name). Both tools make a file visible by renaming a complete temporary
 * file, so present = complete, and the content is checked anyway.
 *
 * understudy: a fresh nats-server per run, `understudy replay` following into an empty standby,
 * `understudy watch` on the empty primary (ready when it says "watching"); one write is made and
 * awaited on the standby before the timed writes, so both are connected. Its figure includes the
 * reconciler's settling: a directory is listed UNDERSTUDY_WATCH_SETTLE_MS (200) after the event
 * in it, and a file whose mtime is younger than that is looked at again later.
 * lsyncd: `lsyncd -nodaemon` with `sync { default.rsync, source, target, delay = … }`, ready when
 * it logs that its start-up sync finished. `lsyncd0` is delay = 0; `lsyncd` is its default delay
 * (BENCH_LSYNCD_DELAY sets another), and gets BENCH_WATCH_N_SLOW writes (20) since each waits 15 s.
 *
 *   node bench/watch.js
 *   BENCH_WATCH_ROUNDS=2 BENCH_WATCH_N=100 BENCH_WATCH_N_SLOW=20 BENCH_WATCH_INTERVAL_MS=200 BENCH_WATCH_TOOLS=understudy,lsyncd0,lsyncd BENCH_LSYNCD_DELAY=
 */
const { spawn, spawnSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startNats, tempDir, removeDir, quantile, fmt, table, machine, runMain, sleep, CLI } = require('./lib/common');
const { daemon, diskOf, loadNow, version, min, max } = require('./lib/commands');

const ROUNDS = Number(process.env.BENCH_WATCH_ROUNDS ?? 2);
const N = Number(process.env.BENCH_WATCH_N ?? 100);
const INTERVAL_MS = Number(process.env.BENCH_WATCH_INTERVAL_MS ?? 200);
const POLL_MS = Number(process.env.BENCH_WATCH_POLL_MS ?? 3);
const N_SLOW = Number(process.env.BENCH_WATCH_N_SLOW ?? 20);
const TOOLS = (process.env.BENCH_WATCH_TOOLS ?? 'understudy,lsyncd0,lsyncd').split(',').filter(Boolean);
const LSYNCD_DELAY = process.env.BENCH_LSYNCD_DELAY;
const haveLsyncd = spawnSync('lsyncd', ['-version']).error === undefined;

function shWrite(content, file) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const c = spawn('sh', ['-c', 'echo "$1" > "$2"', 'sh', content, file], { stdio: 'ignore' });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve({ spawned: t0, written: performance.now() }) : reject(new Error(`sh exited ${code}`))));
  });
}

/**
 * Writes N files into `src` every INTERVAL_MS and measures until each is in `dst` with its content.
 * Resolves with the latencies (ms) and the shell's own times.
 */
async function measure(src, dst, label, { waitMs, n = N }) {
  const nonce = crypto.randomBytes(4).toString('hex');
  const pending = new Map(); // name -> { content, written }
  const lat = [];
  const shellMs = [];
  let stop = false;
  let stopAt = Infinity;
  const poller = (async () => {
    while (!stop || pending.size > 0) {
      if (pending.size > 0) {
        let names;
        try {
          names = fs.readdirSync(dst);
        } catch {
          names = [];
        }
        const now = performance.now();
        for (const name of names) {
          const p = pending.get(name);
          if (p === undefined || p.written === undefined) continue;
          let got;
          try {
            got = fs.readFileSync(path.join(dst, name), 'utf8');
          } catch {
            continue;
          }
          if (got !== p.content) continue;
          lat.push(now - p.written);
          pending.delete(name);
        }
      }
      if (stop && pending.size > 0 && performance.now() > stopAt + waitMs) {
        throw new Error(`${label}: ${pending.size} of ${n} files not on the target ${waitMs} ms after the last write`);
      }
      await sleep(POLL_MS);
    }
  })();
  poller.catch(() => undefined);
  const start = performance.now();
  const writes = [];
  for (let i = 0; i < n; i++) {
    const due = start + i * INTERVAL_MS;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const name = `w${String(i).padStart(4, '0')}.txt`;
    const content = `${name} ${nonce} ${i}`;
    const entry = { content: `${content}\n`, written: undefined }; // echo adds the newline
    pending.set(name, entry);
    writes.push(shWrite(content, path.join(src, name)).then((t) => {
      entry.written = t.written;
      shellMs.push(t.written - t.spawned);
    }));
  }
  await Promise.all(writes);
  stopAt = performance.now();
  stop = true;
  await poller;
  return { lat, shellMs, spanS: (stopAt - start) / 1000 };
}

async function understudyRun() {
  const nats = await startNats('watch-nats');
  const src = tempDir('watch-primary');
  const dst = tempDir('watch-standby');
  const state = tempDir('watch-state');
  const spool = tempDir('watch-spool');
  const replayer = daemon(process.execPath, [CLI, 'replay', '--root', `data=${dst}`, '--nats', nats.url, '--state', state]);
  const watcher = daemon(process.execPath, [CLI, 'watch', '--root', `data=${src}`, '--nats', nats.url], {
    env: { UNDERSTUDY_SPOOL_DIR: spool }, readyRe: /watching /,
  });
  try {
    await watcher.ready;
    // Warm-up: one file through the whole path, so the shipper and the consumer are connected.
    await shWrite('warm-up', path.join(src, 'warm-up.txt')); // echo adds the newline
    const t0 = Date.now();
    while (!(fs.existsSync(path.join(dst, 'warm-up.txt')) && fs.readFileSync(path.join(dst, 'warm-up.txt'), 'utf8') === 'warm-up\n')) {
      if (Date.now() - t0 > 30_000) throw new Error(`warm-up file not on the standby after 30 s\nwatch: ${watcher.output()}\nreplay: ${replayer.output()}`);
      await sleep(10);
    }
    return await measure(src, dst, 'understudy', { waitMs: 30_000 });
  } finally {
    const w = await watcher.stop();
    await replayer.stop();
    await nats.stop();
    for (const d of [src, dst, state, spool]) removeDir(d);
    if (w.code !== 0) console.log(`  (understudy watch exited ${w.code ?? w.signal}: ${watcher.output().trim().split('\n').pop()})`);
  }
}

/** lsyncd with `delay` seconds (undefined: its default). */
async function lsyncdRun(delay) {
  const src = tempDir('watch-lsrc');
  const dst = tempDir('watch-ldst');
  const conf = tempDir('watch-lconf');
  const file = path.join(conf, 'bench.lua');
  fs.writeFileSync(file, `settings { nodaemon = true, statusFile = ${JSON.stringify(path.join(conf, 'status'))} }\n` +
    `sync { default.rsync, source = ${JSON.stringify(src)}, target = ${JSON.stringify(dst)}${delay !== undefined ? `, delay = ${delay}` : ''} }\n`);
  const l = daemon('lsyncd', ['-nodaemon', file], { readyRe: /Startup of .* finished/ });
  try {
    await l.ready;
    return await measure(src, dst, 'lsyncd', { waitMs: 120_000, n: delay === 0 ? N : N_SLOW });
  } finally {
    await l.stop();
    for (const d of [src, dst, conf]) removeDir(d);
  }
}

const slowDelay = LSYNCD_DELAY !== undefined && LSYNCD_DELAY !== '' ? Number(LSYNCD_DELAY) : undefined;
const LABEL = {
  understudy: 'understudy watch + replay',
  lsyncd0: 'lsyncd default.rsync, delay = 0',
  lsyncd: `lsyncd default.rsync, ${slowDelay !== undefined ? `delay = ${slowDelay}` : 'default delay (15 s)'}`,
};

async function run() {
  console.log(`watch.js: ${new Date().toISOString()}, ${machine()}`);
  console.log(`  ${diskOf(os.tmpdir())}`);
  console.log(`  ${version('nats-server')}; ${haveLsyncd ? version('lsyncd', ['-version']) : 'lsyncd: not installed'}; ${version('rsync')}`);
  console.log(`  ${N} writes (${N_SLOW} for lsyncd's default delay), one every ${INTERVAL_MS} ms, target polled every ${POLL_MS} ms; at start: ${loadNow()}`);
  const tools = TOOLS.filter((t) => !t.startsWith('lsyncd') || haveLsyncd);
  if (tools.length < TOOLS.length) console.log('  lsyncd is not installed: only understudy is measured');
  const runs = Object.fromEntries(tools.map((t) => [t, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = r % 2 === 0 ? tools : [...tools].reverse();
    for (const t of order) {
      const res = t === 'understudy' ? await understudyRun() : await lsyncdRun(t === 'lsyncd0' ? 0 : slowDelay);
      runs[t].push(res);
      console.log(`  round ${r + 1} ${t}: p50 ${fmt(quantile(res.lat, 0.5))} ms, p99 ${fmt(quantile(res.lat, 0.99))} ms, min ${fmt(min(res.lat))}, max ${fmt(max(res.lat))} ms; ` +
        `writes spanned ${fmt(res.spanS, 1)} s, shell spawn→exit p50 ${fmt(quantile(res.shellMs, 0.5), 1)} ms; ${loadNow()}`);
    }
  }
  console.log(`  at end: ${loadNow()}\n`);
  const ref = runs.lsyncd0 ? 'lsyncd0' : runs.lsyncd ? 'lsyncd' : undefined;
  const rows = [['tool', 'samples', 'p50 ms (all rounds)', 'p99 ms (all rounds)', 'max ms', 'p50 per round', 'p99 per round', `p50 ratio to ${ref ? LABEL[ref] : '-'}`]];
  const p50All = (t) => quantile(runs[t].flatMap((x) => x.lat), 0.5);
  for (const t of tools) {
    const all = runs[t].flatMap((x) => x.lat);
    rows.push([LABEL[t] ?? t,
      fmt(all.length), fmt(quantile(all, 0.5)), fmt(quantile(all, 0.99)), fmt(max(all)),
      runs[t].map((x) => fmt(quantile(x.lat, 0.5))).join(' / '), runs[t].map((x) => fmt(quantile(x.lat, 0.99))).join(' / '),
      ref ? `${fmt(p50All(t) / p50All(ref), 3)}x` : '-']);
  }
  console.log(table(rows));
  console.log(`\n(${ROUNDS} rounds; latency from the writing shell's exit to the file with its content on the target. understudy's includes the 200 ms settling.` +
    ` lsyncd's default delay gathers events for 15 s before rsync runs: its figure is that wait, by design, not a fault.)`);
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(runs, null, 2));
}

runMain(run);
