import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ensureStream } from '../lib/nats';
import { freePort, startNatsServer, type NatsServer } from './helpers/nats-server';
import { makePair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Three JetStream servers clustered on loopback. */
async function cluster(dir: string): Promise<NatsServer[]> {
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const routes = await Promise.all([0, 1, 2].map(() => freePort()));
  return Promise.all([0, 1, 2].map((i) => startNatsServer({
    port: ports[i],
    storeDir: path.join(dir, `node${i}`),
    config: (port, store) => `server_name: n${i}
listen: 127.0.0.1:${port}
jetstream { store_dir: "${store}" }
cluster {
  name: understudy-test
  listen: 127.0.0.1:${routes[i]}
  routes: [${routes.filter((_, j) => j !== i).map((r) => `nats-route://127.0.0.1:${r}`).join(', ')}]
}
`,
  })));
}

test.serial('a 3-node cluster with an R3 stream: killing one node mid-stream loses nothing and stops nothing', async (t) => {
  const pair = await makePair('cluster');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const nodes = await cluster(pair.dir);
  t.teardown(async () => {
    for (const n of nodes) await n.stop();
  });
  const urls = nodes.map((n) => n.url).join(',');
  // The cluster needs a meta leader before it takes a stream.
  const nc = await connect({ servers: nodes.map((n) => n.url) });
  for (let i = 0; ; i++) {
    try {
      await ensureStream(await jetstreamManager(nc), 'UNDERSTUDY', 3);
      break;
    } catch (err) {
      if (i > 100) throw err;
      await sleep(200);
    }
  }
  await nc.close();

  const stopFile = path.join(pair.dir, 'stop');
  const running = pair.runApp({
    env: { UNDERSTUDY_NATS_URL: urls, UNDERSTUDY_STREAM_REPLICAS: '3' },
    code: `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)}; let i = 0;
      const t = setInterval(() => {
        fs.writeFileSync(r + '/f' + (i % 40), 'version ' + i); fs.appendFileSync(r + '/log', i++ + '\\n');
        if (fs.existsSync(${JSON.stringify(stopFile)})) clearInterval(t);
      }, 5);`,
  });
  await sleep(1000);
  // Kill the node the stream's leader is not guaranteed to be on: any one of three must be survivable.
  nodes[0].process.kill('SIGKILL');
  await sleep(2500);
  const linesBeforeStop = fs.readFileSync(path.join(pair.primary, 'log'), 'utf8').split('\n').length;
  fs.writeFileSync(stopFile, '');
  const app = await running;
  t.is(app.code, 0, app.stderr);
  t.true(linesBeforeStop > 300, `the application kept writing through the node's death (${linesBeforeStop} lines)`);
  const s = await pair.drain(undefined, { nats: { url: nodes.slice(1).map((n) => n.url).join(','), replicas: 3 } });
  t.log(`the application wrote ${linesBeforeStop}+ lines; the drain applied ${s.applied} entries (${s.duplicates} duplicates)`);
  t.true(s.applied > 600);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
