import test from 'ava';
import * as path from 'node:path';
import { makePair, REPO, runCli, type Pair } from './helpers/pair';
import { startNatsServer } from './helpers/nats-server';
import { diffTrees } from './helpers/tree';

// The "done when": a cluster service, its workers and their threads, busy with calls in
// flight, taking turns on shared files; with NATS up and through an outage; default settings.
const SERVICE = path.join(REPO, 'test', 'fixtures', 'cluster-service.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runService(pair: Pair, rounds: number): Promise<void> {
  const run = await pair.runApp({ file: SERVICE, args: [pair.primary, String(rounds)], env: { UNDERSTUDY_NAME: '' } });
  if (run.code !== 0 || run.stderr !== '') throw new Error(`service: exit ${run.code} ${run.signal ?? ''}\n${run.stderr}`);
}

test.serial('a cluster service with worker threads, calls in flight and turns on shared files: the standby equals the primary', async (t) => {
  const pair = await makePair('service');
  t.teardown(() => pair.close());
  await runService(pair, 60);
  const s = await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(s.inDoubt, 0);
  const st = await runCli(['status', '--nats', pair.server.url, '--json']);
  const journals = (JSON.parse(st.stdout) as { journals: { journal: string; lag_entries: number }[] }).journals;
  t.log(journals.map((j) => j.journal).join(', '));
  t.true(journals.filter((j) => j.journal.includes('-t')).length >= 3, 'a journal for each worker thread');
  t.true(journals.every((j) => j.lag_entries === 0));
});

test.serial('the same service through a NATS outage: every process spools, the backlogs arrive in any order, the standby equals the primary', async (t) => {
  const pair = await makePair('service-outage');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const app = runService(pair, 80);
  await sleep(1500);
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  await app;
  const s = await pair.drain();
  t.log(`${s.applied} applied, ${s.superseded} superseded by a later change from another journal, ${s.inDoubt} in doubt`);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(s.inDoubt, 0);
});
