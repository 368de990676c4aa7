'use strict';
// node bench/modes.js: the latency a write gains in sync and strong modes, as a ratio to a bare
// JetStream publish-ack round trip measured in the same run (goal: sync <= 1.5x that round trip).
const path = require('node:path');
const fs = require('node:fs');
const { CLI, cleanup, fmt, machine, quantile, runNode, sleep, spawnIpc, startNats, table, tempDir } = require('./lib/common');

const N = Number(process.env.BENCH_MODES_N ?? 2000);

/** Sequential publish-ack round trips of 4 KiB messages on a stream of their own: the floor sync mode builds on. */
async function publishRtt(url, n = N) {
  const { connect } = require('@nats-io/transport-node');
  const { jetstream, jetstreamManager } = require('@nats-io/jetstream');
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'RTT', subjects: ['rtt.>'], storage: 'file' });
  const js = jetstream(nc);
  const body = Buffer.alloc(4096, 1);
  for (let i = 0; i < 100; i++) await js.publish('rtt.x', body);
  const us = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    await js.publish('rtt.x', body);
    us.push(Number(process.hrtime.bigint() - t0) / 1000);
  }
  await jsm.streams.delete('RTT');
  await nc.close();
  return { p50: quantile(us, 0.5), p99: quantile(us, 0.99) };
}

async function main() {
  console.log(`modes: ${N} sequential 4 KiB writeFileSync per mode; ${machine()}`);
  const nats = await startNats('modes-nats');
  const dir = tempDir('modes');
  const standby = path.join(dir, 'standby');
  const state = path.join(dir, 'state');
  fs.mkdirSync(standby);
  const replayer = spawnIpc(CLI, ['replay', '--root', `data=${standby}`, '--state', state, '--nats', nats.url]);
  await sleep(500);
  // The round trip drifts with whatever else the VM does: it is measured again before each mode.
  const rows = [['mode', 'p50 µs', 'p99 µs', 'added p50 µs', 'publish RTT p50 µs (just before)', 'added / publish RTT p50']];
  const rtts = [];
  let bare;
  const run = async (mode, label) => {
    const root = path.join(dir, `root-${label.replace(/\W+/g, '-')}`);
    fs.mkdirSync(root);
    const env = {
      UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${root}`, UNDERSTUDY_SPOOL_DIR: path.join(dir, 'spool'),
      UNDERSTUDY_NAME: `modes-${label.replace(/\W+/g, '-')}`, UNDERSTUDY_MODE: mode === 'none' ? 'async' : mode,
    };
    const rtt = await publishRtt(nats.url, Math.min(N, 1000));
    rtts.push(rtt.p50);
    // The standby root is shared; the journals differ, so each mode's files land under their own names.
    const { result } = await runNode(path.join(__dirname, 'lib', 'modes-app.js'), [root, String(N)], { env, agent: mode !== 'none', timeoutMs: 300_000 });
    if (mode === 'none') bare = result;
    const added = result.p50 - bare.p50;
    rows.push([label, fmt(result.p50, 1), fmt(result.p99, 1), mode === 'none' ? '-' : fmt(added, 1), fmt(rtt.p50, 1), mode === 'none' ? '-' : `${fmt(added / rtt.p50, 2)}x`]);
  };
  for (const mode of ['none', 'async', 'sync', 'strong']) await run(mode, mode === 'none' ? 'without the agent' : mode);
  replayer.child.kill('SIGTERM');
  await replayer.exited;
  // Sync waits for JetStream only. Here the standby shares the 2 cores; elsewhere it would not.
  await run('sync', 'sync, no standby running here');
  console.log(`bare JetStream publish-ack round trip (4 KiB, sequential, ${Math.min(N, 1000)} before each mode): p50 ${rtts.map((r) => fmt(r, 1)).join(' / ')} µs`);
  console.log(table(rows));
  return { rtts, rows };
}

if (require.main === module) {
  main().then(() => cleanup(), async (err) => {
    console.error(`modes bench failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
}
module.exports = { main };
