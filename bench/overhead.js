'use strict';
/**
 * Overhead of the agent on the application's own fs calls: the same workload,
 * with and without `--require dist/agent/preload.js`, side by side in one run.
 * Each configuration runs in a fresh child process; the two alternate (and
 * swap order every round), and the median over the rounds is reported.
 *
 *   node bench/overhead.js            (after npx tsc -p tsconfig.json)
 *   BENCH_OPS=5000 BENCH_ROUNDS=5 BENCH_FS=disk,tmpfs node bench/overhead.js
 *
 * The application's root lies on the disk (os.tmpdir()) and, as a second
 * view, on tmpfs (/dev/shm, when there is one): on ext4 with auto_da_alloc an
 * overwrite through O_TRUNC waits for the device, which buries the agent's own
 * cost in disk latency; on tmpfs what is left is mostly the agent's CPU cost.
 * The spool is always on the disk, as it would be in production.
 */
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const c = require('./lib/common');

const WORKLOAD = path.join(__dirname, 'lib', 'workload.js');
const KINDS = [
  { kind: 'writeFileSync', label: 'fs.writeFileSync 4 KiB' },
  { kind: 'writeFile', label: 'fs.writeFile (callback) 4 KiB' },
  { kind: 'appendFile', label: 'fs.promises.appendFile 4 KiB' },
];

/** Empties the stream; returns how many messages it held (the shipper batches entries into messages). */
async function purgeStream(url) {
  const { connect } = require(require.resolve('@nats-io/transport-node', { paths: [c.REPO] }));
  const { jetstreamManager } = require(require.resolve('@nats-io/jetstream', { paths: [c.REPO] }));
  const nc = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(nc);
    const held = await jsm.streams.info('UNDERSTUDY').then((i) => i.state.messages, () => undefined);
    await jsm.streams.purge('UNDERSTUDY').catch(() => undefined);
    return held;
  } finally {
    await nc.close();
  }
}

function syncDisks() {
  try {
    require('node:child_process').execFileSync('sync', { stdio: 'ignore' });
  } catch {
    // no sync(1): the runs are just noisier
  }
}

function filesystems() {
  const wanted = (process.env.BENCH_FS ?? 'disk,tmpfs').split(',').map((s) => s.trim());
  const all = [{ fs: 'disk', base: os.tmpdir() }];
  if (fs.existsSync('/dev/shm') && fs.statSync('/dev/shm').isDirectory()) all.push({ fs: 'tmpfs', base: '/dev/shm' });
  return all.filter((f) => wanted.includes(f.fs));
}

async function run({ ops = Number(process.env.BENCH_OPS ?? 5_000), rounds = Number(process.env.BENCH_ROUNDS ?? 5), warmup = 500, log = console.log } = {}) {
  c.hookSignals();
  const started = Date.now();
  const FSS = filesystems();
  log(`# overhead: ${ops} timed ops per run after ${warmup} warm-up ops, ${rounds} rounds, agent and baseline alternating; root on ${FSS.map((f) => `${f.fs} (${f.base})`).join(', ')}`);
  log(`# ${c.machine()}`);
  const nats = await c.startNats('overhead-nats');
  const runs = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const { fs: fsName, base } of FSS) {
        for (const { kind } of KINDS) {
          const order = round % 2 === 0 ? [false, true] : [true, false];
          for (const agent of order) {
            // Start each run with no dirty pages left by the previous one being written back under it.
            syncDisks();
            const root = c.tempDir(`overhead-root-${fsName}`, base);
            const spool = c.tempDir('overhead-spool');
            let row;
            const env = agent ? {
              UNDERSTUDY_NATS_URL: nats.url,
              UNDERSTUDY_ROOTS: `data=${root}`,
              UNDERSTUDY_SPOOL_DIR: spool,
              UNDERSTUDY_NAME: `overhead-${fsName}-${kind}-${round}`,
            } : {};
            try {
              const ran = await c.runNode(WORKLOAD, [kind, String(ops), String(warmup), root], { env, agent });
              const { result, stderr } = ran;
              if (stderr.trim() !== '') log(`  (${kind}, ${agent ? 'agent' : 'plain'}: ${stderr.trim()})`);
              if (agent && (!result.flushed || !result.warmFlushed)) log(`  warning: ${kind} round ${round}: flush did not complete`);
              row = { round, fs: fsName, ...result };
              runs.push(row);
              log(`  round ${round + 1} ${fsName.padEnd(5)} ${kind.padEnd(13)} ${agent ? 'agent' : 'plain'}  ${c.fmt(result.opsPerSec).padStart(7)} ops/s` +
                (agent ? `  (flush after loop ${c.fmt(result.flushMs)} ms, ${result.entries} entries)` : ''));
            } finally {
              c.removeDir(root);
              c.removeDir(spool);
            }
            if (agent) {
              // Messages for warm-up and timed entries together (the stream is emptied after every agent run).
              const messages = await purgeStream(nats.url);
              if (row && messages) row.entriesPerMessage = (warmup + ops) / messages;
            }
          }
        }
      }
    }
  } finally {
    await nats.stop();
  }

  const results = FSS.flatMap(({ fs: fsName }) => KINDS.map(({ kind, label }) => {
    const of = (agent) => runs.filter((r) => r.fs === fsName && r.kind === kind && r.agent === agent);
    const plain = of(false);
    const agent = of(true);
    const ratios = [];
    for (let round = 0; round < rounds; round++) {
      const p = plain.find((r) => r.round === round);
      const a = agent.find((r) => r.round === round);
      if (p && a) ratios.push(a.ms / p.ms);
    }
    const plainOps = c.median(plain.map((r) => r.opsPerSec));
    const agentOps = c.median(agent.map((r) => r.opsPerSec));
    return {
      fs: fsName, kind, label,
      plainOpsPerSec: plainOps,
      agentOpsPerSec: agentOps,
      /** time with agent / time without, from the medians */
      ratio: plainOps / agentOps,
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      plainUsPerOp: 1e6 / plainOps,
      agentUsPerOp: 1e6 / agentOps,
      plainCpuUsPerOp: c.median(plain.map((r) => (r.cpuMs * 1000) / r.ops)),
      agentCpuUsPerOp: c.median(agent.map((r) => (r.cpuMs * 1000) / r.ops)),
      flushMs: c.median(agent.map((r) => r.flushMs)),
      // By thread, µs per op: the application's (main) thread, and all others (shipper worker, libuv pool, V8).
      plainMainCpuUsPerOp: medianOf(plain, (r) => (r.threads ? (r.threads.mainMs * 1000) / r.ops : undefined)),
      plainOtherCpuUsPerOp: medianOf(plain, (r) => (r.threads ? (r.threads.othersMs * 1000) / r.ops : undefined)),
      agentMainCpuUsPerOp: medianOf(agent, (r) => (r.threads ? (r.threads.mainMs * 1000) / r.ops : undefined)),
      agentOtherCpuUsPerOp: medianOf(agent, (r) => (r.threads ? (r.threads.othersMs * 1000) / r.ops : undefined)),
      entriesPerMessage: medianOf(agent, (r) => r.entriesPerMessage),
    };
  }));
  log('');
  log(c.table([
    ['root on', 'workload', 'plain ops/s', 'agent ops/s', 'time ratio', 'ratio range', 'µs/op plain', 'µs/op agent', 'CPU µs/op plain', 'CPU µs/op agent', 'flush after (ms)'],
    ...results.map((r) => [
      r.fs, r.label, c.fmt(r.plainOpsPerSec), c.fmt(r.agentOpsPerSec), `${c.fmt(r.ratio, 2)}x`,
      `${c.fmt(r.ratioMin, 2)}-${c.fmt(r.ratioMax, 2)}`, c.fmt(r.plainUsPerOp, 1), c.fmt(r.agentUsPerOp, 1),
      c.fmt(r.plainCpuUsPerOp, 1), c.fmt(r.agentCpuUsPerOp, 1), c.fmt(r.flushMs),
    ]),
  ]));
  log('time ratio = median time per op with the agent / without (1.00x = no overhead); ratio range = per-round min-max.');
  log('CPU µs/op is the whole process (the shipper worker thread included) during the timed loop.');
  if (results.some((r) => r.agentMainCpuUsPerOp !== undefined)) {
    log('');
    log(c.table([
      ['root on', 'workload', 'main thread CPU µs/op: plain → agent', 'other threads CPU µs/op: plain → agent', 'entries per stream message'],
      ...results.map((r) => [r.fs, r.label, `${c.fmt(r.plainMainCpuUsPerOp)} → ${c.fmt(r.agentMainCpuUsPerOp)}`,
        `${c.fmt(r.plainOtherCpuUsPerOp)} → ${c.fmt(r.agentOtherCpuUsPerOp)}`, c.fmt(r.entriesPerMessage, 1)]),
    ]));
    log('main thread = the application\'s thread, where the agent\'s wrappers and Journal.record run; other threads = the shipper\'s worker,');
    log('libuv\'s pool and V8\'s helpers (from /proc, 10 ms ticks); entries per stream message: warm-up and timed entries over the messages the stream held.');
  }
  log(`# overhead bench took ${c.fmt((Date.now() - started) / 1000, 1)} s`);
  return { ops, rounds, warmup, filesystems: FSS, results };
}

/** Median of fn over rows, ignoring undefined; undefined when none. */
function medianOf(rows, fn) {
  const xs = rows.map(fn).filter((x) => typeof x === 'number' && Number.isFinite(x));
  return xs.length === 0 ? undefined : c.median(xs);
}

module.exports = { run };

if (require.main === module) c.runMain(run);
