'use strict';
/**
 * Overhead of the agent on the application's own fs calls: the same workload,
 * bare, with `--require dist/agent/preload.js`, and with OpenTelemetry's fs
 * instrumentation (`--require bench/lib/otel-preload.js`, spans dropped by the
 * exporter) as the peer to beat (issue 15), side by side in one run. Each
 * configuration runs in a fresh child process; the three alternate (in another
 * order every round), and the median over the rounds is reported.
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
const OTEL_PRELOAD = path.join(__dirname, 'lib', 'otel-preload.js');
const KINDS = [
  { kind: 'writeFileSync', label: 'fs.writeFileSync 4 KiB' },
  { kind: 'writeFile', label: 'fs.writeFile (callback) 4 KiB' },
  { kind: 'promisesWriteFile', label: 'fs.promises.writeFile 4 KiB' },
  { kind: 'appendFile', label: 'fs.promises.appendFile 4 KiB' },
  { kind: 'appendFileSync', label: 'fs.appendFileSync 100 B' },
];
const ARMS = ['plain', 'agent', 'otel'];
// Every order of the three arms, one a round, so no arm always runs after the same other.
const ORDERS = [
  ['plain', 'agent', 'otel'], ['otel', 'agent', 'plain'], ['agent', 'otel', 'plain'],
  ['plain', 'otel', 'agent'], ['otel', 'plain', 'agent'], ['agent', 'plain', 'otel'],
];

/** Which arm a workload's result line came from. */
function armOf(result) {
  return result.agent ? 'agent' : result.otel ? 'otel' : 'plain';
}

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
  log(`# overhead: ${ops} timed ops per run after ${warmup} warm-up ops, ${rounds} rounds, bare / agent / OpenTelemetry fs alternating; root on ${FSS.map((f) => `${f.fs} (${f.base})`).join(', ')}`);
  log(`# ${c.machine()}`);
  const nats = await c.startNats('overhead-nats');
  const runs = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const { fs: fsName, base } of FSS) {
        for (const { kind } of KINDS) {
          for (const arm of ORDERS[round % ORDERS.length]) {
            const agent = arm === 'agent';
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
              const execArgv = arm === 'otel' ? ['--require', OTEL_PRELOAD] : [];
              const ran = await c.runNode(WORKLOAD, [kind, String(ops), String(warmup), root], { env, agent, execArgv });
              const { result, stderr } = ran;
              if (armOf(result) !== arm) throw new Error(`${kind}: asked for the ${arm} arm, the workload ran as ${armOf(result)}`);
              if (stderr.trim() !== '') log(`  (${kind}, ${arm}: ${stderr.trim()})`);
              if (agent && (!result.flushed || !result.warmFlushed)) log(`  warning: ${kind} round ${round}: flush did not complete`);
              // Every call the workload made is one fs span; fewer means the arm measured an instrumentation that did not trace.
              if (arm === 'otel' && !(result.spans >= warmup + ops)) {
                throw new Error(`${kind}: the OpenTelemetry arm exported ${result.spans} spans for ${warmup + ops} calls; its figures would mean nothing`);
              }
              row = { round, fs: fsName, arm, ...result };
              runs.push(row);
              log(`  round ${round + 1} ${fsName.padEnd(5)} ${kind.padEnd(17)} ${arm.padEnd(5)}  ${c.fmt(result.opsPerSec).padStart(7)} ops/s` +
                (agent ? `  (flush after loop ${c.fmt(result.flushMs)} ms, ${result.entries} entries)` : '') +
                (arm === 'otel' ? `  (${result.spans} spans exported)` : ''));
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
    const of = (arm) => runs.filter((r) => r.fs === fsName && r.kind === kind && r.arm === arm);
    const plain = of('plain');
    const agent = of('agent');
    const otel = of('otel');
    /** Per-round time ratios of an arm against the bare run of the same round. */
    const ratiosOf = (rows) => {
      const ratios = [];
      for (let round = 0; round < rounds; round++) {
        const p = plain.find((r) => r.round === round);
        const a = rows.find((r) => r.round === round);
        if (p && a) ratios.push(a.ms / p.ms);
      }
      return ratios;
    };
    const ratios = ratiosOf(agent);
    const otelRatios = ratiosOf(otel);
    const plainOps = c.median(plain.map((r) => r.opsPerSec));
    const agentOps = c.median(agent.map((r) => r.opsPerSec));
    const otelOps = c.median(otel.map((r) => r.opsPerSec));
    return {
      fs: fsName, kind, label,
      plainOpsPerSec: plainOps,
      agentOpsPerSec: agentOps,
      /** time with agent / time without, from the medians */
      ratio: plainOps / agentOps,
      ratioMin: Math.min(...ratios),
      ratioMax: Math.max(...ratios),
      otelOpsPerSec: otelOps,
      /** time with OpenTelemetry fs / time without, from the medians */
      otelRatio: plainOps / otelOps,
      otelRatioMin: Math.min(...otelRatios),
      otelRatioMax: Math.max(...otelRatios),
      /** understudy's time per op / OpenTelemetry fs's (below 1 = cheaper than the peer) */
      agentOverOtel: otelOps / agentOps,
      otelUsPerOp: 1e6 / otelOps,
      otelCpuUsPerOp: c.median(otel.map((r) => (r.cpuMs * 1000) / r.ops)),
      spansPerOp: c.median(otel.map((r) => r.spans / (warmup + r.ops))),
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
      otelMainCpuUsPerOp: medianOf(otel, (r) => (r.threads ? (r.threads.mainMs * 1000) / r.ops : undefined)),
      otelOtherCpuUsPerOp: medianOf(otel, (r) => (r.threads ? (r.threads.othersMs * 1000) / r.ops : undefined)),
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
      ['root on', 'workload', 'main thread CPU µs/op: plain → agent (OTel)', 'other threads CPU µs/op: plain → agent (OTel)', 'entries per stream message'],
      ...results.map((r) => [r.fs, r.label, `${c.fmt(r.plainMainCpuUsPerOp)} → ${c.fmt(r.agentMainCpuUsPerOp)} (${c.fmt(r.otelMainCpuUsPerOp)})`,
        `${c.fmt(r.plainOtherCpuUsPerOp)} → ${c.fmt(r.agentOtherCpuUsPerOp)} (${c.fmt(r.otelOtherCpuUsPerOp)})`, c.fmt(r.entriesPerMessage, 1)]),
    ]));
    log('main thread = the application\'s thread, where the agent\'s wrappers and Journal.record run; other threads = the shipper\'s worker,');
    log('libuv\'s pool and V8\'s helpers (from /proc, 10 ms ticks); entries per stream message: warm-up and timed entries over the messages the stream held.');
  }
  log('');
  log(c.table([
    ['root on', 'workload', 'bare µs/op', 'understudy', 'OpenTelemetry fs', 'understudy / OTel', 'CPU µs/op bare / understudy / OTel'],
    ...results.map((r) => [
      r.fs, r.label, c.fmt(r.plainUsPerOp, 1),
      `${c.fmt(r.ratio, 2)}x (${c.fmt(r.ratioMin, 2)}-${c.fmt(r.ratioMax, 2)})`,
      `${c.fmt(r.otelRatio, 2)}x (${c.fmt(r.otelRatioMin, 2)}-${c.fmt(r.otelRatioMax, 2)})`,
      `${c.fmt(r.agentOverOtel, 2)}`,
      `${c.fmt(r.plainCpuUsPerOp, 1)} / ${c.fmt(r.agentCpuUsPerOp, 1)} / ${c.fmt(r.otelCpuUsPerOp, 1)}`,
    ]),
  ]));
  log('OpenTelemetry comparison: time ratios against the bare run (median over rounds; per-round range), and understudy\'s time per op');
  log('over OpenTelemetry fs\'s (issue 15: at most 1, the aim 0.5). OTel arm: @opentelemetry/instrumentation-fs, requireParentSpan false,');
  log(`a BatchSpanProcessor and an exporter that drops spans (median ${c.fmt(c.median(results.map((r) => r.spansPerOp)), 2)} spans exported per timed or warm-up call, the process's other fs calls included).`);
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
