import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { freePort } from './helpers/nats-server';
import { makePair, PRELOAD, REPO, runCli, type Pair } from './helpers/pair';
import { diffTrees, readTree } from './helpers/tree';

// Every process and thread under the agent replicates with default settings (issue 11, items 2 and 3).
const APP = path.join(REPO, 'test', 'fixtures', 'multiproc.js');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function journals(pair: Pair): string[] {
  return fs.readdirSync(pair.spool).sort();
}

/** Environment of a first run whose NATS is not there: everything stays spooled, and exits do not wait for it. */
async function natsDown(): Promise<Record<string, string>> {
  return { UNDERSTUDY_NATS_URL: `nats://127.0.0.1:${await freePort()}`, UNDERSTUDY_EXIT_TIMEOUT_MS: '100' };
}

async function journalRows(pair: Pair): Promise<Map<string, { lag_entries?: number; applied_seq?: number }>> {
  const run = await runCli(['status', '--json'], { UNDERSTUDY_NATS_URL: pair.server.url });
  const rows = (JSON.parse(run.stdout) as { journals: { journal: string; lag_entries?: number; applied_seq?: number }[] }).journals;
  return new Map(rows.map((r) => [r.journal, r]));
}

test.serial('a cluster of 3 workers: each worker has a journal of its own, and the standby equals the primary', async (t) => {
  const pair = await makePair('cluster');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ file: APP, args: ['cluster', '3', pair.primary, 'r1'] });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '', 'no process ran without replication');
  t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3'], 'the primary and each worker took a slot');
  t.is(readTree(pair.primary).size, 3 * 4, 'each worker wrote its four files');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const rows = await journalRows(pair);
  for (const name of ['app-1', 'app-2', 'app-3']) {
    t.is(rows.get(name)?.lag_entries, 0, `status lists journal ${name}, applied`);
    t.true((rows.get(name)?.applied_seq ?? 0) > 0);
  }
});

test.serial('a restarted cluster takes the same journals again', async (t) => {
  const pair = await makePair('restart');
  t.teardown(() => pair.close());
  for (const tag of ['r1', 'r2', 'r3']) {
    const run = await pair.runApp({ file: APP, args: ['cluster', '3', pair.primary, tag] });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr, '');
    t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3'], `after run ${tag}`);
  }
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

/** Pools whose children each get a journal of their own: how the fixture starts them, and with which agent. */
const POOLS: { title: string; label: string; args: string[]; prefix: string; run?: { withAgent: false; env: Record<string, string> } }[] = [
  { title: 'a fork() pool: each child has a journal of its own', label: 'fork', args: ['fork', '3'], prefix: 'f' },
  {
    title: 'children started with NODE_OPTIONS=--require understudy/agent each have a journal of their own', label: 'nodeopts', args: ['spawn', '3'], prefix: 's',
    run: { withAgent: false, env: { NODE_OPTIONS: `--require ${PRELOAD}` } },
  },
];

for (const pool of POOLS) {
  test.serial(pool.title, async (t) => {
    const pair = await makePair(pool.label);
    t.teardown(() => pair.close());
    const run = await pair.runApp({ file: APP, args: [...pool.args, pair.primary, pool.prefix], ...pool.run });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr, '');
    t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3']);
    await pair.drain();
    t.deepEqual(diffTrees(pair.primary, pair.standby), []);
    t.is(readTree(pair.standby).size, 3 * 4);
  });
}

test.serial('killed workers: what they left spooled is shipped by the workers that take their journals next', async (t) => {
  const pair = await makePair('killed');
  t.teardown(() => pair.close());
  const first = await pair.runApp({ file: APP, args: ['cluster', '3', pair.primary, 'r1', 'kill'], env: await natsDown() });
  t.is(first.code, 0, first.stderr);
  t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3']);
  for (const name of ['app-1', 'app-2', 'app-3']) t.true(fs.existsSync(path.join(pair.spool, name, 'lock')), `${name} was left locked by a killed worker`);
  const second = await pair.runApp({ file: APP, args: ['cluster', '3', pair.primary, 'r2'] });
  t.is(second.code, 0, second.stderr);
  t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3'], 'the replacements took the killed workers\' journals');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(readTree(pair.standby).size, 2 * 3 * 4, 'both runs\' files');
});

test.serial('a pool restarted smaller: a live agent ships the journals no process took again', async (t) => {
  const pair = await makePair('shrink');
  t.teardown(() => pair.close());
  const first = await pair.runApp({ file: APP, args: ['cluster', '4', pair.primary, 'r1', 'kill'], env: await natsDown() });
  t.is(first.code, 0, first.stderr);
  t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3', 'app-4']);
  const second = pair.runApp({ file: APP, args: ['cluster', '2', pair.primary, 'r2', 'stay'] });
  let equal = false;
  // Adoption begins DEFAULTS.adoptAfterMs (10 s) after the agents start; the bound is generous for a busy machine.
  for (let i = 0; i < 60 && !equal; i++) {
    await sleep(1000);
    await pair.drain();
    equal = diffTrees(pair.primary, pair.standby).length === 0 && readTree(pair.standby).size === 4 * 4 + 2 * 4;
  }
  fs.writeFileSync(path.join(pair.dir, 'stop'), '');
  const run = await second;
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  t.true(equal, `the standby differs: ${JSON.stringify(diffTrees(pair.primary, pair.standby))}`);
  t.deepEqual(journals(pair), ['app', 'app-1', 'app-2', 'app-3', 'app-4'], 'no new journal names');
  for (const name of ['app-3', 'app-4']) t.false(fs.existsSync(path.join(pair.spool, name, 'lock')), `${name} was let go after its backlog shipped`);
});

test.serial('worker threads: each has a journal of its own; sync, callback and promise writes reach the standby', async (t) => {
  const pair = await makePair('threads');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ file: APP, args: ['threads', pair.primary, 'th'] });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  t.deepEqual(journals(pair), ['app', 'app-t1', 'app-t2', 'app-t3']);
  t.is(readTree(pair.primary).size, 1 + 4 + 1 + 3, 'main, the sync worker\'s four files, the callback one\'s, the promise one\'s file, dir and inner file');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a worker thread still running when the process exits: what it journaled is shipped before the process ends', async (t) => {
  const pair = await makePair('thread-exit');
  t.teardown(() => pair.close());
  for (const tag of ['a', 'b', 'c', 'd', 'e']) {
    const run = await pair.runApp({ file: APP, args: ['threads-exit', pair.primary, tag] });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr, '');
    // Each run's thread takes the journal the last one left: drain before it can ship the last run's backlog.
    await pair.drain();
    t.deepEqual(diffTrees(pair.primary, pair.standby), [], `run ${tag}`);
  }
});

test.serial('worker threads stopped with terminate(): what they journaled is shipped all the same, under a few journal names', async (t) => {
  const pair = await makePair('thread-terminate');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ file: APP, args: ['threads-terminate', pair.primary, 'tt'] });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  t.true(journals(pair).length <= 4, `journals: ${journals(pair).join(' ')}`);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(readTree(pair.standby).size, 3 * 4);
});

// pino is a devDependency (its transport runs pino/file in a worker thread of its own).
for (const how of ['end', 'exit'] as const) {
  test.serial(`pino.transport() to a file: the log reaches the standby whole (process ${how === 'exit' ? 'calls process.exit()' : 'ends by itself'})`, async (t) => {
    const pair = await makePair(`pino-${how}`);
    t.teardown(() => pair.close());
    const run = await pair.runApp({ file: path.join(REPO, 'test', 'fixtures', 'pino-transport.js'), args: [pair.primary, '500', how] });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr, '');
    t.is(fs.readFileSync(path.join(pair.primary, 'app.log'), 'utf8').split('\n').length, 501, 'pino wrote every line');
    t.true(journals(pair).includes('app-t1'), 'the transport thread had a journal');
    await pair.drain();
    t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  });
}

test.serial('a worker thread that changes nothing under the roots starts no shipper thread', async (t) => {
  const pair = await makePair('thread-idle');
  t.teardown(() => pair.close());
  const counter = path.join(REPO, 'test', 'fixtures', 'count-threads.js');
  const run = await pair.runApp({ file: APP, args: ['threads-idle', pair.primary, 'ti'], env: { NODE_OPTIONS: `--require ${counter}` } });
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '');
  t.deepEqual(journals(pair), ['app', 'app-t1'], 'the thread took a journal');
  t.is(run.stdout.trim(), 'idle thread started 0 threads');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
