'use strict';
/**
 * One timed fs workload, run in a fresh process, with or without the agent
 * (the parent decides with --require). Usage:
 *   node [--require dist/agent/preload.js] workload.js <kind> <ops> <warmup> <dir>
 * kinds: writeFileSync | writeFile (callback) | promisesWriteFile | appendFile
 * (fs.promises), all 4 KiB; appendFileSync, 100 B (a log line's size).
 * Prints one JSON line: timed ops, elapsed ms, ops/s, CPU of the whole process
 * (shipper worker included) and split by thread (main / others, from /proc),
 * with the agent how long flush() then took, and under bench/lib/otel-preload.js
 * how many spans its exporter got.
 *
 * The timed part is only the application's calls. With the agent, a warm-up
 * batch is written and flushed first, so the shipper is connected and the JIT
 * warm before the clock starts; the baseline does the same warm-up.
 */
const fs = require('node:fs');
const path = require('node:path');
const { threadCpuMs } = require('./thread-cpu');

const [kind, opsText, warmupText, dir] = process.argv.slice(2);
const OPS = Number(opsText);
const WARMUP = Number(warmupText);
const FILES = 100;
const SIZE = kind === 'appendFileSync' ? 100 : 4096;

const understudy = require(path.join(__dirname, '..', '..', 'dist', 'index.js'));
const agentOn = understudy.journalPosition() !== undefined;
const otel = globalThis[Symbol.for('understudy.bench.otel')];

const names = Array.from({ length: FILES }, (_, i) => path.join(dir, `f${String(i).padStart(3, '0')}`));
const payload = Buffer.alloc(SIZE, 0x61);

function writeFileSyncLoop(n, offset) {
  for (let i = 0; i < n; i++) {
    payload[0] = (offset + i) & 0xff;
    fs.writeFileSync(names[(offset + i) % FILES], payload);
  }
}

function writeFileLoop(n, offset) {
  return new Promise((resolve, reject) => {
    let i = 0;
    const step = (err) => {
      if (err) return reject(err);
      if (i === n) return resolve();
      const k = offset + i++;
      payload[0] = k & 0xff;
      fs.writeFile(names[k % FILES], payload, step);
    };
    step();
  });
}

async function promisesWriteFileLoop(n, offset) {
  for (let i = 0; i < n; i++) {
    payload[0] = (offset + i) & 0xff;
    await fs.promises.writeFile(names[(offset + i) % FILES], payload);
  }
}

function appendFileSyncLoop(n, offset) {
  for (let i = 0; i < n; i++) {
    payload[0] = (offset + i) & 0xff;
    fs.appendFileSync(names[(offset + i) % FILES], payload);
  }
}

async function appendFileLoop(n, offset) {
  for (let i = 0; i < n; i++) {
    payload[0] = (offset + i) & 0xff;
    await fs.promises.appendFile(names[(offset + i) % FILES], payload);
  }
}

const LOOPS = {
  writeFileSync: writeFileSyncLoop, writeFile: writeFileLoop, promisesWriteFile: promisesWriteFileLoop,
  appendFile: appendFileLoop, appendFileSync: appendFileSyncLoop,
};


async function main() {
  const loop = LOOPS[kind];
  if (loop === undefined) throw new Error(`unknown workload ${kind}; one of ${Object.keys(LOOPS).join(', ')}`);
  if (kind === 'appendFile' || kind === 'appendFileSync') for (const n of names) fs.writeFileSync(n, '');
  await loop(WARMUP, 0);
  let warmFlushed = true;
  if (agentOn) warmFlushed = understudy.flush(20_000);
  const before = understudy.journalPosition();

  const th0 = threadCpuMs();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await loop(OPS, WARMUP);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const cpu = process.cpuUsage(cpu0);
  const th1 = threadCpuMs();
  const threads = th0 && th1 ? { mainMs: th1.main - th0.main, othersMs: th1.others - th0.others } : undefined;

  let flushMs = 0;
  let flushed = true;
  let entries = 0;
  if (agentOn) {
    const f0 = process.hrtime.bigint();
    flushed = understudy.flush(60_000);
    flushMs = Number(process.hrtime.bigint() - f0) / 1e6;
    entries = understudy.journalPosition().appended - before.appended;
  }
  const spans = otel === undefined ? undefined : await otel.spans();
  process.stdout.write(JSON.stringify({
    kind, agent: agentOn, otel: otel !== undefined, spans, ops: OPS, ms, opsPerSec: OPS / (ms / 1000),
    cpuMs: (cpu.user + cpu.system) / 1000, threads, flushMs, flushed, warmFlushed, entries,
  }) + '\n');
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
