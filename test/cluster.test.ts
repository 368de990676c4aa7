import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ensureStream } from '../lib/nats';
import { freePort, startNatsServer, jetstreamBlock, type NatsServer } from './helpers/nats-server';
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
${jetstreamBlock(store)}
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
  // The stream's leader is the hardest node to lose: the other two must elect a new one
  // (seconds on nats-server 2.9) while the application goes on writing.
  const leader = (await (await jetstreamManager(nc)).streams.info('UNDERSTUDY')).cluster?.leader;
  await nc.close();
  const victim = ['n0', 'n1', 'n2'].indexOf(leader ?? '');
  t.true(victim >= 0, `the stream has a leader among the nodes (${leader})`);

  const killedFile = path.join(pair.dir, 'killed');
  const running = pair.runApp({
    env: { UNDERSTUDY_NATS_URL: urls, UNDERSTUDY_STREAM_REPLICAS: '3' },
    // Writes every 5 ms; once told of the kill, goes on until what it wrote after it is shipped.
    code: `const fs = require('fs'); const { journalPosition } = require(${JSON.stringify(path.resolve(__dirname, '../index.js'))});
      const r = ${JSON.stringify(pair.primary)}; let i = 0; let killed;
      const t = setInterval(() => {
        fs.writeFileSync(r + '/f' + (i % 40), 'version ' + i); fs.appendFileSync(r + '/log', i++ + '\\n');
        const p = journalPosition();
        if (killed === undefined && fs.existsSync(${JSON.stringify(killedFile)})) killed = { at: Date.now(), appended: p.appended };
        if (killed !== undefined && p.acked > killed.appended + 100) {
          console.log(JSON.stringify({ pausedMs: Date.now() - killed.at, lines: i }));
          clearInterval(t);
        } else if (killed !== undefined && Date.now() - killed.at > 60000) {
          console.log(JSON.stringify({ lines: i }));
          clearInterval(t);
        }
      }, 5);`,
  });
  await sleep(1000);
  nodes[victim].process.kill('SIGKILL');
  fs.writeFileSync(killedFile, '');
  const app = await running;
  t.is(app.code, 0, app.stderr);
  const result = JSON.parse(app.stdout) as { pausedMs?: number; lines: number };
  t.log(`shipping resumed ${result.pausedMs} ms after the stream leader was killed; the application wrote ${result.lines} lines and never stopped`);
  t.not(result.pausedMs, undefined, 'shipping resumed within a minute of the node\'s death');
  t.notRegex(app.stderr, /not yet in JetStream at exit/);
  const others = nodes.filter((_, i) => i !== victim);
  const s = await pair.drain(undefined, { nats: { url: others.map((n) => n.url).join(','), replicas: 3 } });
  t.is(s.applied, result.lines * 2, 'every write of every line, the ones during the election too, applied once');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
