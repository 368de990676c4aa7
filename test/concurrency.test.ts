import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { makePair, REPO, type Pair } from './helpers/pair';
import { startNatsServer } from './helpers/nats-server';
import { diffTrees } from './helpers/tree';

const CONCURRENT_OPS = path.join(REPO, 'test', 'fixtures', 'concurrent-ops.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function runSeed(pair: Pair, seed: number, rounds: number): Promise<number> {
  const run = await pair.runApp({ file: CONCURRENT_OPS, args: [String(seed), pair.primary, String(rounds)] });
  if (run.code !== 0 || run.stderr !== '') throw new Error(`seed ${seed}: exit ${run.code}\n${run.stderr}`);
  return (JSON.parse(run.stdout) as { calls: number }).calls;
}

/** Keeps every core busy with a spinning process until stopped, so that calls overlap on a loaded machine. */
function busyCores(): () => void {
  const spinners: ChildProcess[] = [];
  for (let i = 0; i < os.availableParallelism(); i++) {
    spinners.push(spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end);'], { stdio: 'ignore' }));
  }
  return () => {
    for (const s of spinners) s.kill('SIGKILL');
  };
}

for (const seed of [7, 19, 2024, 31337]) {
  test.serial(`calls in flight on the same files at once (seed ${seed}): the standby equals the primary`, async (t) => {
    const pair = await makePair('concurrent');
    t.teardown(() => pair.close());
    const calls = await runSeed(pair, seed, 60);
    t.log(`seed ${seed}: ${calls} calls`);
    await pair.drain();
    t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  });
}

test.serial('calls in flight on the same files with both cores busy: the standby equals the primary', async (t) => {
  const pair = await makePair('concurrent-busy');
  t.teardown(() => pair.close());
  const stop = busyCores();
  t.teardown(stop);
  await runSeed(pair, 555, 60);
  stop();
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('calls in flight on the same files through a NATS outage: the standby equals the primary', async (t) => {
  const pair = await makePair('concurrent-outage');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const app = runSeed(pair, 8080, 120);
  await sleep(700);
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  await app;
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('the issue\'s repro: ten appendFile callbacks in flight on one file', async (t) => {
  const pair = await makePair('ten-appends');
  t.teardown(() => pair.close());
  const f = JSON.stringify(path.join(pair.primary, 'f'));
  const run = await pair.runApp({ code: `const fs=require('fs');fs.writeFileSync(${f},'');for(let i=0;i<10;i++)fs.appendFile(${f},'line'+i+'\\n',()=>{})` });
  t.is(run.code, 0, run.stderr);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('calls in flight on the same files in sync mode: every call is confirmed, and the standby equals the primary', async (t) => {
  const pair = await makePair('concurrent-sync');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ file: CONCURRENT_OPS, args: ['77', pair.primary, '40'], env: { UNDERSTUDY_MODE: 'sync', UNDERSTUDY_SYNC_TIMEOUT_MS: '20000' } });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
