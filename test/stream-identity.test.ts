import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makePair, runCli, type Pair } from './helpers/pair';
import { startNatsServer, type NatsServer } from './helpers/nats-server';
import { diffTrees } from './helpers/tree';

/** Replaces the pair's nats-server by a new one on the same port with an empty store: a new stream. */
async function newServer(pair: Pair): Promise<NatsServer> {
  await pair.server.stop();
  fs.rmSync(pair.server.storeDir, { recursive: true, force: true });
  const fresh = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  pair.server = fresh;
  return fresh;
}

const writeSome = (pair: Pair, name: string, n: number) => pair.runApp({
  code: `const fs = require('fs'); for (let i = 0; i < ${n}; i++) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/${name}' + i, 'v' + i);`,
});

test.serial('a journal that ships to a new stream ships again what its spool still holds: a new standby has everything', async (t) => {
  const pair = await makePair('newstream');
  t.teardown(() => pair.close());
  t.is((await writeSome(pair, 'first', 20)).code, 0);
  const fresh = await newServer(pair);
  t.teardown(() => fresh.stop());
  const second = await writeSome(pair, 'second', 5);
  t.is(second.code, 0, second.stderr);
  const s = await pair.drain();
  t.is(s.inDoubt, 0);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a journal whose early entries went to an earlier stream: the standby goes on, says it needs a baseline, and a baseline mends it', async (t) => {
  const pair = await makePair('newstream-trimmed');
  t.teardown(() => pair.close());
  t.is((await writeSome(pair, 'first', 20)).code, 0);
  // As if a standby of the first stream had applied everything and the spool had been trimmed.
  const dir = path.join(pair.spool, 'app');
  for (const f of fs.readdirSync(dir)) if (f.endsWith('.seg') || /^\d+/.test(f)) fs.rmSync(path.join(dir, f));
  t.deepEqual(fs.readdirSync(dir).filter((f) => !f.endsWith('.json') && f !== 'lock'), [], 'the test removed every spool segment');
  const fresh = await newServer(pair);
  t.teardown(() => fresh.stop());
  t.is((await writeSome(pair, 'second', 5)).code, 0);
  const logs: string[] = [];
  const s = await pair.drain(undefined, { log: (l: string) => logs.push(l) });
  t.true(logs.some((l) => /entries 1\.\.20 went to an earlier stream/.test(l)), logs.join('\n'));
  t.is(s.inDoubt, 1);
  for (let i = 0; i < 5; i++) t.is(fs.readFileSync(path.join(pair.standby, `second${i}`), 'utf8'), `v${i}`);
  const st = await runCli(['status', '--nats', pair.server.url]);
  t.regex(st.stdout, /MAY DIFFER[^\n]*journal app[^\n]*understudy baseline/);
  const b = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(b.code, 0, b.stderr);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const after = await runCli(['status', '--nats', pair.server.url]);
  t.notRegex(after.stdout, /MAY DIFFER/);
});
