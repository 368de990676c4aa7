'use strict';
/**
 * The pause a checkpoint imposes on the application: 4 processes under the agent write as fast
 * as they can (4 KiB writeFileSync and fs.promises.appendFile in turn) while checkpoints are taken
 * every 200 ms. Reported: how long each checkpoint held the application's changes (frozenMs, the
 * longest over the agents: from the freeze to the commit's thaw), how long the command took from
 * start to every entry acked, and the writers' call latencies with and without checkpoints.
 *
 *   node bench/checkpoint.js           (after npx tsc -p tsconfig.json)
 *   BENCH_SECONDS=20 BENCH_EVERY_MS=200 BENCH_WRITERS=4 node bench/checkpoint.js
 */
const path = require('node:path');
const c = require('./lib/common');

const WRITER = path.join(__dirname, 'lib', 'cp-writer.js');

async function phase(nats, label, seconds, everyMs, writers, log) {
  const procs = [];
  const roots = [];
  for (let i = 0; i < writers; i++) {
    const root = c.tempDir(`cp-root-${i}`);
    roots.push(root);
    procs.push(c.spawnIpc(WRITER, [root], {
      agent: true,
      env: { UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${root}`, UNDERSTUDY_SPOOL_DIR: c.tempDir(`cp-spool-${i}`), UNDERSTUDY_NAME: `w${i}` },
    }));
  }
  await Promise.all(procs.map((p) => p.next('ready')));
  // Heartbeats in: every writer is a live agent before the first checkpoint.
  await c.sleep(2000);
  const frozen = [];
  const took = [];
  let failed = 0;
  if (everyMs !== undefined) {
    const { connect } = require(require.resolve('@nats-io/transport-node', { paths: [c.REPO] }));
    const { takeCheckpoint } = c.requireDist('agent/commands/checkpoint.js');
    const { openStateKv } = c.requireDist('lib/nats.js');
    const { readState } = c.requireDist('lib/state-bucket.js');
    const nc = await connect({ servers: nats.url });
    const kv = await openStateKv(nc, 'UNDERSTUDY');
    const quiet = console.log;
    console.log = () => {};
    const end = Date.now() + seconds * 1000;
    let n = 0;
    try {
      while (Date.now() < end) {
        const began = Date.now();
        const name = `b${n++}`;
        const ok = await takeCheckpoint(nc, kv, 'UNDERSTUDY', name, 2000);
        if (!ok) failed++;
        else {
          took.push(Date.now() - began);
          const r = await readState(kv, 'checkpoint', name);
          if (r?.frozenMs !== undefined) frozen.push(r.frozenMs);
        }
        await c.sleep(Math.max(0, everyMs - (Date.now() - began)));
      }
    } finally {
      console.log = quiet;
      await nc.close();
    }
  } else {
    await c.sleep(seconds * 1000);
  }
  const done = procs.map((p) => p.next('done', 60_000));
  for (const p of procs) p.child.send({ type: 'stop' });
  const results = await Promise.all(done);
  await Promise.all(procs.map((p) => p.exited));
  for (const r of roots) c.removeDir(r);
  const calls = {
    p50: c.median(results.map((r) => r.p50)), p99: c.median(results.map((r) => r.p99)),
    p999: c.median(results.map((r) => r.p999)), max: Math.max(...results.map((r) => r.max)),
    callsPerSec: results.reduce((s, r) => s + r.calls, 0) / seconds,
  };
  log(`  ${label}: ${c.fmt(calls.callsPerSec)} calls/s over ${writers} writers; call p50 ${c.fmt(calls.p50, 3)} ms, p99 ${c.fmt(calls.p99, 2)} ms, p99.9 ${c.fmt(calls.p999, 2)} ms, max ${c.fmt(calls.max, 1)} ms`);
  if (everyMs !== undefined) {
    log(`  ${frozen.length} checkpoints taken, ${failed} failed; frozen p50 ${c.fmt(c.quantile(frozen, 0.5), 1)} ms, p99 ${c.fmt(c.quantile(frozen, 0.99), 1)} ms, max ${c.fmt(Math.max(...frozen), 1)} ms; ` +
      `command p50 ${c.fmt(c.quantile(took, 0.5))} ms, p99 ${c.fmt(c.quantile(took, 0.99))} ms`);
  }
  return { label, calls, checkpoints: frozen.length, failed, frozenP50: c.quantile(frozen, 0.5), frozenP99: c.quantile(frozen, 0.99), commandP50: c.quantile(took, 0.5), commandP99: c.quantile(took, 0.99) };
}

async function run({ seconds = Number(process.env.BENCH_SECONDS ?? 20), everyMs = Number(process.env.BENCH_EVERY_MS ?? 200), writers = Number(process.env.BENCH_WRITERS ?? 4), log = console.log } = {}) {
  c.hookSignals();
  log(`# checkpoint: ${writers} writers under the agent for ${seconds} s, without checkpoints, then with one every ${everyMs} ms`);
  log(`# ${c.machine()}`);
  const nats = await c.startNats('cp-nats');
  try {
    const plain = await phase(nats, 'no checkpoints', seconds, undefined, writers, log);
    const taken = await phase(nats, `checkpoint every ${everyMs} ms`, seconds, everyMs, writers, log);
    return { plain, taken };
  } finally {
    await nats.stop();
  }
}

module.exports = { run };
if (require.main === module) c.runMain(run);
