'use strict';
// node bench/modes.js: the latency a write gains in sync and strong modes, as a ratio to a bare
// JetStream publish-ack round trip measured in the same run (goal: sync <= 1.5x that round trip).
const path = require('node:path');
const fs = require('node:fs');
const { CLI, cleanup, fmt, machine, quantile, runNode, sleep, spawnIpc, startNats, table, tempDir } = require('./lib/common');

const N = Number(process.env.BENCH_MODES_N ?? 2000);

/** Sequential publish-ack round trips of 4 KiB messages on a stream of their own: the floor sync mode builds on. */
async function publishRtt(url) {
  const { connect } = require('@nats-io/transport-node');
  const { jetstream, jetstreamManager } = require('@nats-io/jetstream');
  const nc = await connect({ servers: url, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'RTT', subjects: ['rtt.>'], storage: 'file' });
  const js = jetstream(nc);
  const body = Buffer.alloc(4096, 1);
  for (let i = 0; i < 100; i++) await js.publish('rtt.x', body);
  const us = [];
  for (let i = 0; i < N; i++) {
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
  const rtt = await publishRtt(nats.url);
  const rows = [['mode', 'p50 µs', 'p99 µs', 'added p50 µs', 'added / publish RTT p50']];
  let bare;
  for (const mode of ['none', 'async', 'sync', 'strong']) {
    const root = path.join(dir, `root-${mode}`);
    fs.mkdirSync(root);
    const env = {
      UNDERSTUDY_NATS_URL: nats.url, UNDERSTUDY_ROOTS: `data=${root}`, UNDERSTUDY_SPOOL_DIR: path.join(dir, 'spool'),
      UNDERSTUDY_NAME: `modes-${mode}`, UNDERSTUDY_MODE: mode === 'none' ? 'async' : mode,
    };
    // The standby root is shared; the journals differ, so each mode's files land under their own names.
    const { result } = await runNode(path.join(__dirname, 'lib', 'modes-app.js'), [root, String(N)], { env, agent: mode !== 'none', timeoutMs: 300_000 });
    if (mode === 'none') bare = result;
    const added = result.p50 - bare.p50;
    rows.push([mode === 'none' ? 'without the agent' : mode, fmt(result.p50, 1), fmt(result.p99, 1), mode === 'none' ? '-' : fmt(added, 1), mode === 'none' ? '-' : `${fmt(added / rtt.p50, 2)}x`]);
  }
  replayer.child.kill('SIGTERM');
  await replayer.exited;
  console.log(`bare JetStream publish-ack round trip (4 KiB, sequential): p50 ${fmt(rtt.p50, 1)} µs, p99 ${fmt(rtt.p99, 1)} µs`);
  console.log(table(rows));
  return { rtt, rows };
}

if (require.main === module) {
  main().then(() => cleanup(), async (err) => {
    console.error(`modes bench failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
}
module.exports = { main };
