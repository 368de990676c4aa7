import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { makePair, REPO, type Pair, type RunResult } from './helpers/pair';
import { pendingJobs, readConfigReplica } from '../index';
import { diffTrees } from './helpers/tree';

// ES module applications under `node --import understudy/agent`, resolved by package name
// through a node_modules of the app's own (ESM resolution ignores NODE_PATH).
const PACKAGES = ['p-queue', 'conf', 'fastq', 'nconf', 'better-queue'];

function appDir(pair: Pair): string {
  const dir = path.join(pair.dir, 'app');
  const nm = path.join(dir, 'node_modules');
  if (!fs.existsSync(nm)) {
    fs.mkdirSync(nm, { recursive: true });
    for (const p of PACKAGES) fs.symlinkSync(path.join(REPO, 'node_modules', p), path.join(nm, p));
    fs.symlinkSync(REPO, path.join(nm, 'understudy'));
  }
  return dir;
}

/** Runs `code` as `name` with `flag understudy/agent`; with `killOn`, SIGKILLs it once that text is printed. */
function runModule(pair: Pair, name: string, code: string, flag: '--import' | '--require', killOn?: string): Promise<RunResult> {
  const dir = appDir(pair);
  fs.writeFileSync(path.join(dir, name), code);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [flag, 'understudy/agent', name], { cwd: dir, env: pair.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (killOn !== undefined && stdout.includes(killOn)) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (c, signal) => resolve({ code: c, signal, stdout, stderr }));
  });
}

test.serial('an ESM app under --import: p-queue, conf, fastq, nconf, process.env and node:fs named imports all reach the standby', async (t) => {
  const pair = await makePair('esm');
  t.teardown(() => pair.close());
  const r = await runModule(pair, 'app.mjs', `
    import PQueue from 'p-queue';
    import Conf from 'conf';
    import fastq from 'fastq';
    import nconf from 'nconf';
    import { writeFileSync, mkdirSync } from 'node:fs';
    import { nameQueue, flush } from 'understudy';
    const root = ${JSON.stringify(pair.primary)};
    mkdirSync(root + '/uploads');
    writeFileSync(root + '/uploads/a.bin', 'named import of node:fs');
    const conf = new Conf({ projectName: 'esm-test', cwd: ${JSON.stringify(path.join(pair.dir, 'conf-home'))} });
    conf.set('ui.theme', 'dark');
    conf.set({ retries: 3, gone: true });
    conf.delete('gone');
    nconf.use('memory');
    nconf.set('flags:esm', true);
    process.env.ESM_FLAG = 'on';
    const pq = nameQueue(new PQueue({ concurrency: 1 }), 'mail');
    pq.add(async function sendWelcome() { return 'sent'; });
    pq.add(async function stuck() { await new Promise(() => {}); });
    pq.addAll([async function digestA() {}, async function digestB() {}]);
    const fq = nameQueue(fastq((task, cb) => (task.done ? cb(null) : undefined), 1), 'thumbs');
    fq.push({ id: 1, done: true });
    fq.push({ id: 2 });
    fq.push({ id: 3 });
    setTimeout(() => { flush(5000); console.log('ready'); }, 300);
  `, '--import', 'ready');
  t.is(r.signal, 'SIGKILL', r.stderr);
  // p-queue tasks are functions: not captured, said once for the queue
  t.is(r.stderr.match(/queue "mail": a job's payload cannot be structured-cloned/g)?.length, 1, r.stderr);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.deepEqual(readConfigReplica('conf', pair.state), { ui: { theme: 'dark' }, retries: 3 });
  t.deepEqual(readConfigReplica('nconf', pair.state), { flags: { esm: true } });
  t.deepEqual(readConfigReplica('env', pair.state), { ESM_FLAG: 'on' });
  const mail = pendingJobs('mail', pair.state);
  t.deepEqual(mail.map((j) => [j.label, j.started, j.captured]), [['stuck', true, false], ['digestA', false, false], ['digestB', false, false]]);
  t.deepEqual(pendingJobs('thumbs', pair.state).map((j) => j.payload), [{ id: 2 }, { id: 3 }]);
});

test.serial('p-queue clear: the tasks it throws away leave the pending list, a running one stays', async (t) => {
  const pair = await makePair('pqclear');
  t.teardown(() => pair.close());
  const r = await runModule(pair, 'clear.mjs', `
    import PQueue from 'p-queue';
    import { nameQueue, flush } from 'understudy';
    const pq = nameQueue(new PQueue({ concurrency: 1 }), 'work');
    pq.add(async function running() { await new Promise(() => {}); });
    pq.addAll([async function droppedA() {}, async function droppedB() {}]);
    setTimeout(() => {
      pq.clear();
      pq.add(async function afterClear() {});
      setTimeout(() => { flush(5000); console.log('ready'); }, 200);
    }, 100);
  `, '--import', 'ready');
  t.is(r.signal, 'SIGKILL', r.stderr);
  await pair.drain();
  t.deepEqual(pendingJobs('work', pair.state).map((j) => [j.label, j.started]), [['running', true], ['afterClear', false]]);
});

test.serial('a CommonJS app under --import works as under --require', async (t) => {
  const pair = await makePair('esmcjs');
  t.teardown(() => pair.close());
  const code = `
    const fs = require('fs'); const fastq = require('fastq'); const { nameQueue } = require('understudy');
    fs.writeFileSync(${JSON.stringify(pair.primary)} + '/' + process.argv[1].split('/').pop() + '.txt', 'x');
    process.env['FROM_' + (process.execArgv.includes('--import') ? 'IMPORT' : 'REQUIRE')] = 'yes';
    nameQueue(fastq((t, cb) => {}, 1), 'q').push({ flag: process.execArgv[0] });
  `;
  for (const flag of ['--import', '--require'] as const) {
    const r = await runModule(pair, `cjs${flag}.cjs`, code, flag);
    t.is(r.code, 0, r.stderr);
    t.is(r.stderr, '');
  }
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.deepEqual(readConfigReplica('env', pair.state), { FROM_IMPORT: 'yes', FROM_REQUIRE: 'yes' });
  t.deepEqual(pendingJobs('q', pair.state).map((j) => j.payload), [{ flag: '--import' }, { flag: '--require' }]);
});

test.serial('better-queue: finished and failed tasks leave the pending list, the rest stay', async (t) => {
  const pair = await makePair('bq');
  t.teardown(() => pair.close());
  const r = await runModule(pair, 'bq.cjs', `
    const Queue = require('better-queue'); const { nameQueue, flush } = require('understudy');
    const q = nameQueue(new Queue((task, cb) => {
      if (task.n === 1) return cb(null, 'ok');
      if (task.n === 2) return cb(new Error('bad'));
      // task 3 never finishes; 4 waits behind it
    }, { concurrent: 1, maxRetries: 1 }), 'bq');
    let finished = 0;
    for (const n of [1, 2, 3, 4]) q.push({ n }, () => finished++);
    setTimeout(() => { flush(5000); console.log('ready ' + finished); }, 500);
  `, '--require', 'ready');
  t.regex(r.stdout, /ready 2/);
  t.is(r.stderr, '');
  await pair.drain();
  const jobs = pendingJobs('bq', pair.state);
  t.deepEqual(jobs.map((j) => [j.payload, j.started]), [[{ n: 3 }, true], [{ n: 4 }, false]]);
  const q = JSON.parse(fs.readFileSync(path.join(pair.state, 'queues', 'bq.json'), 'utf8')) as { completed: number; failed: number };
  t.deepEqual([q.completed, q.failed], [1, 1]);
});
