'use strict';
// node bench/catchup.js: an application writes 4 KiB files at 1,000/s while nats-server is down for
// BENCH_OUTAGE_S (60) seconds; then the server comes back. Measured: how fast the backlog reaches
// JetStream (shipper catch-up) and how fast the standby applies it (entries/s).
const fs = require('node:fs');
const path = require('node:path');
const { CLI, cleanup, fmt, machine, requireDist, sleep, spawnIpc, table, tempDir } = require('./lib/common');

const RATE = Number(process.env.BENCH_CATCHUP_RATE ?? 1000);
const OUTAGE_S = Number(process.env.BENCH_OUTAGE_S ?? 60);

async function main() {
  console.log(`catch-up: ${RATE} writes/s during a ${OUTAGE_S} s NATS outage; ${machine()}`);
  const { startNatsServer } = requireDist('test/helpers/nats-server.js');
  const { connect } = require('@nats-io/transport-node');
  const dir = tempDir('catchup');
  const [root, standby, state, spool, store] = ['root', 'standby', 'state', 'spool', 'store'].map((d) => {
    fs.mkdirSync(path.join(dir, d));
    return path.join(dir, d);
  });
  let server = await startNatsServer({ storeDir: store });
  const port = server.port;
  const url = server.url;
  const replayer = spawnIpc(CLI, ['replay', '--root', `data=${standby}`, '--state', state, '--nats', url]);
  const env = { UNDERSTUDY_NATS_URL: url, UNDERSTUDY_ROOTS: `data=${root}`, UNDERSTUDY_SPOOL_DIR: spool, UNDERSTUDY_NAME: 'catchup' };
  await sleep(500);
  await server.stop(); // the outage begins before the first write
  const app = spawnIpc(path.join(__dirname, 'lib', 'paced-app.js'), [root, String(RATE), String(OUTAGE_S)], { env, agent: true });
  const written = await app.next('written', (OUTAGE_S + 60) * 1000);
  const back = Date.now();
  server = await startNatsServer({ port, storeDir: store });
  const nc = await connect({ servers: url, maxReconnectAttempts: -1 });
  const { Kvm } = require('@nats-io/kv');
  let kv;
  for (;;) {
    try {
      kv = await new Kvm(nc).open('UNDERSTUDY_STATE');
      break;
    } catch {
      await sleep(100);
    }
  }
  const read = async (key) => {
    const e = await kv.get(key).catch(() => null);
    return e && e.operation === 'PUT' ? JSON.parse(e.string()) : undefined;
  };
  let shippedAt;
  let appliedAt;
  const deadline = Date.now() + 600_000;
  while (appliedAt === undefined && Date.now() < deadline) {
    const agent = await read('agent.catchup');
    const applied = await read('applied.catchup');
    if (shippedAt === undefined && agent && agent.acked.seq >= written.n) shippedAt = Date.now();
    if (applied && applied.s >= written.n) appliedAt = Date.now();
    await sleep(100);
  }
  app.child.disconnect();
  await app.exited;
  replayer.child.kill('SIGTERM');
  await replayer.exited;
  await nc.close();
  await server.stop();
  const rows = [['backlog', 'in JetStream after', 'shipping rate', 'applied on the standby after', 'end-to-end catch-up rate']];
  rows.push([
    `${fmt(written.n)} entries`,
    shippedAt === undefined ? 'not within 10 min' : `${fmt((shippedAt - back) / 1000, 1)} s`,
    shippedAt === undefined ? '-' : `${fmt(written.n / ((shippedAt - back) / 1000))} entries/s`,
    appliedAt === undefined ? 'not within 10 min' : `${fmt((appliedAt - back) / 1000, 1)} s`,
    appliedAt === undefined ? '-' : `${fmt(written.n / ((appliedAt - back) / 1000))} entries/s`,
  ]);
  console.log('(times from the moment nats-server is back; positions read from the state bucket every 100 ms)');
  console.log(table(rows));
  return { n: written.n, shippedS: shippedAt && (shippedAt - back) / 1000, appliedS: appliedAt && (appliedAt - back) / 1000 };
}

if (require.main === module) {
  main().then(() => cleanup(), async (err) => {
    console.error(`catch-up bench failed: ${err.stack ?? err.message}`);
    await cleanup();
    process.exit(1);
  });
}
module.exports = { main };
