'use strict';
// node bench/modes.js: the mode table. For async, sync, strong: 1 and 64 concurrent fs.promises.writeFile
// callers (4 KiB), throughput and ratio to async; one caller's added latency as a multiple of a bare
// JetStream round trip plus one standby apply with its fsync, both measured in the same run; and one
// writeFileSync caller in sync mode against a bare round trip.
const path = require('node:path');
const fs = require('node:fs');
const { CLI, cleanup, fmt, machine, publishRoundTrip, quantile, runNode, sleep, spawnIpc, startNats, table, tempDir } = require('./lib/common');

const N = Number(process.env.BENCH_MODES_N ?? 2000);

/** "One standby apply with its fsync": 4 KiB to a temp file, fsync, rename, on the standby's disk (p50 µs). */
function applyOnce(dir, n = 300) {
  const body = Buffer.alloc(4096, 2);
  const us = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const tmp = path.join(dir, `.apply-${i}.tmp`);
    const fd = fs.openSync(tmp, 'w');
    fs.writeSync(fd, body);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, path.join(dir, `apply-${i % 10}`));
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  return quantile(us, 0.5);
}

async function main() {
  const seconds = Number(process.env.BENCH_MODES_SECONDS ?? 5);
  console.log(`modes: per mode 1 and 64 concurrent fs.promises.writeFile callers (4 KiB) for ${seconds} s each, and ${N} sequential writeFileSync; ${machine()}`);
  const nats = await startNats('modes-nats');
  const dir = tempDir('modes');
  const standby = path.join(dir, 'standby');
  const state = path.join(dir, 'state');
  fs.mkdirSync(standby);
  const replayer = spawnIpc(CLI, ['replay', '--root', `data=${standby}`, '--state', state, '--nats', nats.url]);
  await sleep(500);
  let runs = 0;
  const envFor = (mode) => {
    const root = path.join(dir, `root-${++runs}`);
    fs.mkdirSync(root);
    const env = {
      UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${root}`, UNDERSTUDY_SPOOL_DIR: path.join(dir, 'spool'),
      UNDERSTUDY_NAME: `modes-${runs}`, UNDERSTUDY_SYNC_TIMEOUT_MS: '120000', UNDERSTUDY_MODE: mode === 'none' ? 'async' : mode,
    };
    return { root, env };
  };
  const concurrent = async (mode, callers) => {
    const { root, env } = envFor(mode);
    const { result } = await runNode(path.join(__dirname, 'lib', 'modes-concurrent-app.js'), [root, String(callers), String(seconds)], { env, agent: mode !== 'none', timeoutMs: 300_000 });
    return result;
  };
  const sequentialSync = async (mode) => {
    const { root, env } = envFor(mode);
    const { result } = await runNode(path.join(__dirname, 'lib', 'modes-app.js'), [root, String(N)], { env, agent: mode !== 'none', timeoutMs: 300_000 });
    return result;
  };
  const rtt = (await publishRoundTrip(nats.url, { n: Math.min(N, 1000) })).p50;
  const apply = applyOnce(standby);
  const bare1 = await concurrent('none', 1);
  const results = {};
  for (const mode of ['async', 'sync', 'strong']) results[mode] = { one: await concurrent(mode, 1), many: await concurrent(mode, 64) };
  const bareSync = await sequentialSync('none');
  const syncSync = await sequentialSync('sync');
  const rtt2 = (await publishRoundTrip(nats.url, { n: Math.min(N, 1000) })).p50;
  replayer.child.kill('SIGTERM');
  await replayer.exited;
  const rows = [['mode', '1 caller /s', '1 caller p50 µs', 'added p50 µs', 'added / (RTT + apply)', '64 callers /s', '64 callers / async 64']];
  for (const [mode, r] of Object.entries(results)) {
    const added = r.one.p50 - bare1.p50;
    rows.push([mode, fmt(r.one.perSecond, 0), fmt(r.one.p50, 0), fmt(added, 0), `${fmt(added / (rtt + apply), 2)}x`, fmt(r.many.perSecond, 0), `${fmt((100 * r.many.perSecond) / results.async.many.perSecond, 0)} %`]);
  }
  console.log(`bare JetStream publish-ack round trip (4 KiB) p50 ${fmt(rtt, 0)} µs (again at the end: ${fmt(rtt2, 0)}); one standby apply (4 KiB temp file, fsync, rename) p50 ${fmt(apply, 0)} µs; without the agent 1 caller p50 ${fmt(bare1.p50, 0)} µs`);
  console.log(table(rows));
  const syncAdded = syncSync.p50 - bareSync.p50;
  console.log(`sync mode, one writeFileSync caller: added p50 ${fmt(syncAdded, 0)} µs = ${fmt(syncAdded / rtt, 2)}x a bare round trip (goal <= 4x)`);
  return { rtt, apply, results, syncAdded };
}

if (require.main === module) {
  main().then(() => cleanup(), async (err) => {
    console.error(`modes bench failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
}
module.exports = { main };
