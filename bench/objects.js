'use strict';
/**
 * Overhead of the configuration and queue wrappers (issue 5): a fastq workload of
 * 100k trivial jobs, and 100k `process.env` writes, each with and without
 * `--require dist/agent/preload.js`, side by side in one run. Each run is a fresh
 * child process; agent and baseline alternate and swap order every round; the
 * median over the rounds is reported, with the ratio time-with / time-without.
 *
 *   node bench/objects.js             (after npx tsc -p tsconfig.json)
 *   BENCH_OBJ_OPS=100000 BENCH_ROUNDS=5 node bench/objects.js
 */
const path = require('node:path');
const c = require('./lib/common');

const WORKLOAD = path.join(__dirname, 'lib', 'objects-workload.js');
const KINDS = [
  { kind: 'fastq', label: 'fastq: 100k trivial jobs (enqueued + completed journaled)' },
  { kind: 'env', label: 'process.env writes' },
];

async function run({ ops = Number(process.env.BENCH_OBJ_OPS ?? 100_000), rounds = Number(process.env.BENCH_ROUNDS ?? 5), warmup = 2_000, log = console.log } = {}) {
  c.hookSignals();
  log(`# objects: ${ops} timed ops per run after ${warmup} warm-up ops, ${rounds} rounds, agent and baseline alternating`);
  log(`# ${c.machine()}`);
  const nats = await c.startNats('objects-nats');
  const runs = [];
  try {
    for (let round = 0; round < rounds; round++) {
      for (const { kind } of KINDS) {
        for (const agent of round % 2 === 0 ? [false, true] : [true, false]) {
          const root = c.tempDir('objects-root');
          const spool = c.tempDir('objects-spool');
          const env = agent ? {
            UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${root}`, UNDERSTUDY_SPOOL_DIR: spool,
            UNDERSTUDY_NAME: `objects-${kind}-${round}`, UNDERSTUDY_SPOOL_MAX_BYTES: String(8 * 1024 ** 3),
          } : {};
          try {
            const { result, stderr } = await c.runNode(WORKLOAD, [kind, String(ops), String(warmup)], { env, agent, timeoutMs: 300_000 });
            if (stderr.trim() !== '') log(`  (${kind}, ${agent ? 'agent' : 'plain'}: ${stderr.trim()})`);
            runs.push({ round, ...result });
            log(`  round ${round + 1} ${kind.padEnd(6)} ${agent ? 'agent' : 'plain'}  ${c.fmt(result.opsPerSec).padStart(9)} ops/s  cpu ${c.fmt(result.cpuMs)} ms` +
              (agent ? `  (flush after loop ${c.fmt(result.flushMs)} ms)` : ''));
          } finally {
            c.removeDir(root);
            c.removeDir(spool);
          }
        }
      }
    }
  } finally {
    await nats.stop();
  }
  const results = KINDS.map(({ kind, label }) => {
    const of = (agent) => runs.filter((r) => r.kind === kind && r.agent === agent);
    const ratios = [];
    for (let round = 0; round < rounds; round++) {
      const p = of(false).find((r) => r.round === round);
      const a = of(true).find((r) => r.round === round);
      if (p && a) ratios.push(a.ms / p.ms);
    }
    const plainOps = c.median(of(false).map((r) => r.opsPerSec));
    const agentOps = c.median(of(true).map((r) => r.opsPerSec));
    return {
      kind, label, plainOpsPerSec: plainOps, agentOpsPerSec: agentOps, ratio: plainOps / agentOps,
      ratioMin: Math.min(...ratios), ratioMax: Math.max(...ratios),
      plainUsPerOp: 1e6 / plainOps, agentUsPerOp: 1e6 / agentOps,
      flushMs: c.median(of(true).map((r) => r.flushMs)),
    };
  });
  log('');
  log(c.table([['workload', 'plain ops/s', 'agent ops/s', 'µs/op plain', 'µs/op agent', 'time ratio (median)', 'range over rounds', 'flush after (ms)'],
    ...results.map((r) => [r.label, c.fmt(r.plainOpsPerSec), c.fmt(r.agentOpsPerSec), r.plainUsPerOp.toFixed(2), r.agentUsPerOp.toFixed(2),
      `${r.ratio.toFixed(2)}x`, `${r.ratioMin.toFixed(2)}–${r.ratioMax.toFixed(2)}x`, c.fmt(r.flushMs)])]));
  return results;
}

module.exports = { run };
if (require.main === module) c.runMain(run);
