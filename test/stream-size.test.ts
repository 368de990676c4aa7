import test from 'ava';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer } from './helpers/nats-server';
import { makePair } from './helpers/pair';

// nats-server reserves a stream's max_bytes; one that may store less than the default 8 GiB
// (by default it may use 75 % of its disk) refused to make the stream, and nothing shipped.

test.serial('on a server with less JetStream storage than 8 GiB the stream is made smaller, said once, and entries ship', async (t) => {
  const pair = await makePair('small-store');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const server = await startNatsServer({
    storeDir: path.join(pair.dir, 'small-store'),
    config: (port, store) => `listen: 127.0.0.1:${port}\njetstream { store_dir: "${store}", max_file_store: 1GB }\n`,
  });
  t.teardown(() => server.stop());
  const run = await pair.runApp({
    env: { UNDERSTUDY_NATS_URL: server.url },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'a.txt'))}, 'shipped to a small server');`,
  });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr.match(/stream UNDERSTUDY was created with max_bytes 512 MiB, not 8 GiB: the server's JetStream storage is smaller/g)?.length, 1, run.stderr);
  t.notRegex(run.stderr, /state bucket/, 'what the stream leaves is room enough for the state bucket');
  const nc = await connect({ servers: server.url });
  t.teardown(() => nc.close());
  const info = await (await jetstreamManager(nc)).streams.info('UNDERSTUDY');
  t.is(info.config.max_bytes, 512 * 1024 * 1024);
  t.is(info.config.discard, 'new');
  t.true(info.state.messages >= 1);
});
