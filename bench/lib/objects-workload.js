'use strict';
/**
 * One timed configuration or queue workload, in a fresh process, with or without the
 * agent (the parent decides with --require). Usage:
 *   node [--require dist/agent/preload.js] objects-workload.js <fastq|env> <ops> <warmup>
 * fastq: <ops> trivial jobs ({ n }, a worker that calls back at once) pushed on one
 *   queue, timed from the first push to the drain of the last.
 * env:   <ops> `process.env.K = String(i)` writes over 16 keys.
 * Prints one JSON line: ops, ms, ops/s, process CPU ms, and with the agent how long
 * flush() took after the loop (the shipper's backlog when the loop ended).
 */
const path = require('node:path');
const fastq = require('fastq');

const [kind, opsText, warmupText] = process.argv.slice(2);
const OPS = Number(opsText);
const WARMUP = Number(warmupText);
const understudy = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));
const agentOn = understudy.journalPosition() !== undefined;

function runFastq(n) {
  return new Promise((resolve) => {
    const q = fastq((task, cb) => cb(null, task.n), 1);
    q.drain = resolve;
    for (let i = 0; i < n; i++) q.push({ n: i });
  });
}

function runEnv(n) {
  for (let i = 0; i < n; i++) process.env[`BENCH_K${i & 15}`] = String(i);
}

async function main() {
  const work = kind === 'fastq' ? runFastq : kind === 'env' ? async (n) => runEnv(n) : undefined;
  if (work === undefined) throw new Error(`unknown kind ${kind}`);
  await work(WARMUP);
  if (agentOn) understudy.flush(30_000);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await work(OPS);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  let flushMs = 0;
  if (agentOn) {
    const f0 = Date.now();
    understudy.flush(120_000);
    flushMs = Date.now() - f0;
  }
  console.log(JSON.stringify({ kind, agent: agentOn, ops: OPS, ms, opsPerSec: OPS / (ms / 1000), cpuMs: (cpu.user + cpu.system) / 1000, flushMs }));
}

main().catch((err) => {
  console.error(err.stack);
  process.exit(1);
});
