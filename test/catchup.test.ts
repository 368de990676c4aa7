import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { parseRoots } from '../lib/roots';
import { Replayer } from '../replayer/replayer';
import { makePair, REPO, type Pair } from './helpers/pair';
import { Journal } from '../agent/journal';
import { listSegments } from '../lib/spool';
import { diffTrees } from './helpers/tree';

/** An application that writes `n` files, one every `everyMs`, then stays up (answering resends) until told to stop. */
function longApp(pair: Pair, n: number, everyMs: number) {
  const stopFile = path.join(pair.dir, 'stop');
  const running = pair.runApp({
    code: `const fs = require('fs'); let i = 0;
      const t = setInterval(() => {
        if (i < ${n}) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'content ' + i++);
        else if (fs.existsSync(${JSON.stringify(stopFile)})) { clearInterval(t); }
        else fs.writeFileSync(${JSON.stringify(path.join(pair.dir, 'written'))}, String(i));
      }, ${everyMs});`,
  });
  return { running, stop: () => fs.writeFileSync(stopFile, ''), done: () => fs.existsSync(path.join(pair.dir, 'written')) };
}

async function until(cond: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function streamOp(pair: Pair, op: 'delete' | 'purge'): Promise<void> {
  const nc = await connect({ servers: pair.server.url });
  const jsm = await jetstreamManager(nc);
  if (op === 'delete') await jsm.streams.delete('UNDERSTUDY');
  else await jsm.streams.purge('UNDERSTUDY');
  await nc.close();
}

test.serial('the stream deleted under a running pair: the replayer pulls what was lost from the agent\'s spool', async (t) => {
  const pair = await makePair('deleted');
  t.teardown(() => pair.close());
  const logs: string[] = [];
  const ac = new AbortController();
  const replaying = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`), stateDir: pair.state,
    drain: false, log: (l) => logs.push(l),
  }).run(ac.signal);
  const app = longApp(pair, 120, 10);
  await until(() => fs.existsSync(path.join(pair.standby, 'f30')));
  await streamOp(pair, 'delete');
  await until(app.done);
  await until(() => fs.existsSync(path.join(pair.standby, 'f119')) && diffTrees(pair.primary, pair.standby).length === 0, 30_000);
  app.stop();
  t.is((await app.running).code, 0);
  ac.abort();
  await replaying;
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.true(logs.some((l) => /stream UNDERSTUDY was made again/.test(l)), logs.join('\n'));
});

test.serial('a purged stream is not "caught up": --drain asks the agent, which resends from its spool', async (t) => {
  const pair = await makePair('purged');
  t.teardown(() => pair.close());
  const app = longApp(pair, 40, 5);
  await until(app.done);
  await new Promise((r) => setTimeout(r, 1200)); // the agent's heartbeat reports what JetStream acknowledged
  await streamOp(pair, 'purge');
  const logs: string[] = [];
  const s = await pair.drain(undefined, { log: (l) => logs.push(l) });
  app.stop();
  await app.running;
  t.is(s.applied, 40);
  t.true(logs.some((l) => /entries 1\.\.40 were missing from the stream; the agent resent 40/.test(l)), logs.join('\n'));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('without an agent to answer, --drain reports the missing entries instead of calling itself caught up', async (t) => {
  const pair = await makePair('noagent');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ code: `for (let i = 0; i < 5; i++) require('fs').writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, 'x');` });
  t.is(run.code, 0);
  await streamOp(pair, 'purge');
  const logs: string[] = [];
  await pair.drain(undefined, { log: (l) => logs.push(l) });
  t.true(logs.some((l) => /journal app: entries 1\.\.5 are missing from the stream and its agent does not answer/.test(l)), logs.join('\n'));
});

test.serial('a journal first seen past its start is held, not taken as begun: the missing start is pulled from the agent', async (t) => {
  const pair = await makePair('late-start');
  t.teardown(() => pair.close());
  const file = (name: string): string => path.join(pair.dir, name);
  // Ten files; then, once told, ten more; then it stays up (answering resends) until stopped.
  const running = pair.runApp({
    code: `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)};
      for (let i = 0; i < 10; i++) fs.writeFileSync(r + '/f' + i, 'first ' + i);
      require(${JSON.stringify(path.join(REPO, 'dist', 'index.js'))}).flush(10000);
      fs.writeFileSync(${JSON.stringify(file('first'))}, '');
      const t = setInterval(() => {
        if (fs.existsSync(${JSON.stringify(file('go'))}) && !fs.existsSync(r + '/g9')) {
          for (let i = 0; i < 10; i++) fs.writeFileSync(r + '/g' + i, 'second ' + i);
          fs.writeFileSync(${JSON.stringify(file('second'))}, '');
        }
        if (fs.existsSync(${JSON.stringify(file('stop'))})) clearInterval(t);
      }, 5);`,
  });
  await until(() => fs.existsSync(file('first')));
  // The stream loses the start (as a server killed before flushing would); the rest arrives after.
  await streamOp(pair, 'purge');
  fs.writeFileSync(file('go'), '');
  await until(() => fs.existsSync(file('second')));
  await new Promise((r) => setTimeout(r, 1200)); // the heartbeat reports what JetStream acknowledged
  const logs: string[] = [];
  const s = await pair.drain(undefined, { log: (l) => logs.push(l) });
  fs.writeFileSync(file('stop'), '');
  t.is((await running).code, 0);
  t.is(s.applied, 20);
  t.true(logs.some((l) => /journal app: entries 1\.\.10 were missing from the stream; the agent resent 10/.test(l)), logs.join('\n'));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('entries that neither the stream nor the spool holds any more are said to be lacking, and the journal goes on', async (t) => {
  const pair = await makePair('gone');
  t.teardown(() => pair.close());
  // A spool whose first four entries were trimmed (as after a standby applied them), acknowledged up to 10.
  const j = new Journal(pair.spool, 'app', { segmentBytes: 64 });
  const { epoch } = j.open();
  for (let i = 1; i <= 10; i++) {
    fs.writeFileSync(path.join(pair.primary, `old${i}`), `old ${i}`);
    j.record({ root: 'data', path: `old${i}`, op: { op: 'put', mode: 0o644 }, data: Buffer.from(`old ${i}`) });
  }
  j.close();
  for (const seg of listSegments(j.dir).slice(0, 4)) fs.rmSync(seg.file);
  fs.writeFileSync(path.join(j.dir, 'acked.json'), JSON.stringify({ epoch, seq: 10 }));
  const file = (name: string): string => path.join(pair.dir, name);
  const running = pair.runApp({
    code: `const fs = require('fs');
      fs.writeFileSync(${JSON.stringify(path.join(pair.primary, 'new'))}, 'new');
      require(${JSON.stringify(path.join(REPO, 'dist', 'index.js'))}).flush(10000);
      fs.writeFileSync(${JSON.stringify(file('written'))}, '');
      const t = setInterval(() => { if (fs.existsSync(${JSON.stringify(file('stop'))})) clearInterval(t); }, 5);`,
  });
  await until(() => fs.existsSync(file('written')));
  await new Promise((r) => setTimeout(r, 1200)); // the heartbeat reports what JetStream acknowledged
  const logs: string[] = [];
  const s = await pair.drain(undefined, { log: (l) => logs.push(l) });
  fs.writeFileSync(file('stop'), '');
  t.is((await running).code, 0);
  // The spool says entries up to 10 were acknowledged by a stream, and this one never had them:
  // the journal's history here begins at the spool's oldest entry, which it ships again.
  t.true(logs.some((l) => /journal app's entries 1\.\.4 went to an earlier stream UNDERSTUDY/.test(l)), logs.join('\n'));
  t.is(s.inDoubt, 1, 'the standby says it lacks them');
  t.is(s.applied, 7, 'old5..old10 resent from the spool, and the new file');
  const onStandby = fs.readdirSync(pair.standby).sort();
  t.deepEqual(onStandby, ['new', 'old10', 'old5', 'old6', 'old7', 'old8', 'old9']);
});
