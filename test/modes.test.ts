import test, { type ExecutionContext } from 'ava';
import * as path from 'node:path';
import { parseRoots } from '../lib/roots';
import { Replayer } from '../replayer/replayer';
import { makePair, REPO, type Pair, type RunResult } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const API = JSON.stringify(path.join(REPO, 'dist', 'index.js'));

/** The app printed, per call, whether its change was confirmed when the call returned: every one must be. */
function allConfirmed(t: ExecutionContext, run: RunResult, calls: number): void {
  t.is(run.code, 0, run.stderr);
  const seen = JSON.parse(run.stdout) as boolean[];
  t.is(seen.length, calls);
  t.deepEqual(seen, seen.map(() => true));
}

/** A replayer following the stream until the returned function stops it. */
function follow(pair: Pair): () => Promise<void> {
  const ac = new AbortController();
  const run = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`), stateDir: pair.state, drain: false, log: () => undefined,
  }).run(ac.signal);
  return async () => {
    ac.abort();
    await run;
  };
}

test.serial('strong mode: when a call returns, its change is already on the standby (sync, callback and promise shapes)', async (t) => {
  const pair = await makePair('strong');
  t.teardown(() => pair.close());
  const stop = follow(pair);
  const run = await pair.runApp({
    env: { UNDERSTUDY_MODE: 'strong' },
    code: `const fs = require('fs'); const root = ${JSON.stringify(pair.primary)}, standby = ${JSON.stringify(pair.standby)};
      const seen = [];
      const onStandby = (f, want) => { try { return fs.readFileSync(standby + '/' + f, 'utf8') === want; } catch { return false; } };
      for (let i = 0; i < 20; i++) { fs.writeFileSync(root + '/f' + i, 'v' + i); seen.push(onStandby('f' + i, 'v' + i)); }
      fs.appendFile(root + '/f0', '+', (err) => {
        seen.push(!err && onStandby('f0', 'v0+'));
        fs.promises.writeFile(root + '/p', 'p').then(() => { seen.push(onStandby('p', 'p')); console.log(JSON.stringify(seen)); });
      });`,
  });
  await stop();
  allConfirmed(t, run, 22);
  t.is(run.stderr, '');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('strong mode, two processes with 16 calls in flight each: every call finds its change on the standby when it returns, and the trees end equal', async (t) => {
  const pair = await makePair('strong-many');
  t.teardown(() => pair.close());
  const stop = follow(pair);
  const app = (who: string) => pair.runApp({
    env: { UNDERSTUDY_MODE: 'strong', UNDERSTUDY_NAME: who, UNDERSTUDY_SYNC_TIMEOUT_MS: '20000' },
    code: `const fs = require('fs'); const root = ${JSON.stringify(pair.primary)}, standby = ${JSON.stringify(pair.standby)};
      const onStandby = (f, want) => { try { return fs.readFileSync(standby + '/' + f, 'utf8') === want; } catch { return false; } };
      const seen = [];
      const loop = async (c) => { for (let i = 0; i < 5; i++) { const f = '${who}-' + c, v = 'v' + i + '-'.repeat(c * 100);
        await fs.promises.writeFile(root + '/' + f, v); seen.push(onStandby(f, v)); } };
      Promise.all(Array.from({ length: 16 }, (_, c) => loop(c))).then(() => console.log(JSON.stringify(seen)));`,
  });
  const runs = await Promise.all([app('one'), app('two')]);
  await stop();
  for (const run of runs) {
    allConfirmed(t, run, 80);
    t.is(run.stderr, '');
  }
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('strong mode inside a transaction: its calls wait for JetStream only (the standby applies none of it before the end), and when transaction() returns all of it is on the standby', async (t) => {
  const pair = await makePair('strong-tx');
  t.teardown(() => pair.close());
  const stop = follow(pair);
  const run = await pair.runApp({
    env: { UNDERSTUDY_MODE: 'strong', UNDERSTUDY_SYNC_TIMEOUT_MS: '3000' },
    code: `const fs = require('fs'); const { transaction } = require(${API});
      const root = ${JSON.stringify(pair.primary)}, standby = ${JSON.stringify(pair.standby)};
      const onStandby = (f) => fs.existsSync(standby + '/' + f);
      (async () => {
        const during = await transaction(async () => {
          const seen = [];
          for (let i = 0; i < 5; i++) { fs.writeFileSync(root + '/t' + i, 'v' + i); seen.push(onStandby('t' + i)); }
          await fs.promises.writeFile(root + '/tp', 'p');
          seen.push(onStandby('tp'));
          return seen;
        });
        const after = ['t0', 't1', 't2', 't3', 't4', 'tp'].map(onStandby);
        console.log(JSON.stringify({ during, after }));
      })();`,
  });
  await stop();
  t.is(run.code, 0, run.stderr);
  t.is(run.stderr, '', 'no call timed out');
  const { during, after } = JSON.parse(run.stdout) as { during: boolean[]; after: boolean[] };
  t.deepEqual(during, [false, false, false, false, false, false], 'none of it applied before its end');
  t.deepEqual(after, [true, true, true, true, true, true], 'all of it applied when transaction() returned');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('strong mode: configuration and queue changes are on the standby when their call returns', async (t) => {
  const pair = await makePair('strong-objects');
  t.teardown(() => pair.close());
  const stop = follow(pair);
  const run = await pair.runApp({
    env: { UNDERSTUDY_MODE: 'strong', NODE_PATH: path.join(REPO, 'node_modules') },
    code: `const { readConfigReplica, pendingJobs, nameQueue } = require(${API}); const state = ${JSON.stringify(pair.state)};
      const fastq = require('fastq');
      const seen = [];
      for (let i = 0; i < 5; i++) { process.env.UNDERSTUDY_TEST_KEY = 'v' + i; seen.push(readConfigReplica('env', state)?.UNDERSTUDY_TEST_KEY === 'v' + i); }
      delete process.env.UNDERSTUDY_TEST_KEY; seen.push(readConfigReplica('env', state)?.UNDERSTUDY_TEST_KEY === undefined);
      // No worker free (concurrency 1, the first job holds it): each later push leaves its job pending.
      let release;
      const q = nameQueue(fastq((job, done) => { if (job.n === 0) release = () => done(null); else done(null); }, 1), 'jobs');
      for (let n = 0; n < 3; n++) { q.push({ n }); seen.push(pendingJobs('jobs', state).some((j) => j.payload.n === n)); }
      release(); console.log(JSON.stringify(seen));`,
  });
  await stop();
  allConfirmed(t, run, 9);
  t.is(run.stderr, '');
});

test.serial('sync mode: when a call returns, JetStream has acknowledged its entry', async (t) => {
  const pair = await makePair('sync');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    env: { UNDERSTUDY_MODE: 'sync' },
    code: `const fs = require('fs'); const { journalPosition } = require(${API}); const root = ${JSON.stringify(pair.primary)};
      const seen = [];
      for (let i = 0; i < 50; i++) { fs.writeFileSync(root + '/f' + i, 'x'); const p = journalPosition(); seen.push(p.acked >= p.appended); }
      fs.writeFile(root + '/cb', 'cb', () => { const p = journalPosition(); seen.push(p.acked >= p.appended); console.log(JSON.stringify(seen)); });`,
  });
  allConfirmed(t, run, 51);
});

const DOWN_APP = (pair: Pair) => `const fs = require('fs'); const root = ${JSON.stringify(pair.primary)}; const out = {};
  const t0 = Date.now();
  try { fs.writeFileSync(root + '/a', 'a'); out.sync = 'returned'; } catch (e) { out.sync = e.code + ': ' + e.message; }
  out.syncMs = Date.now() - t0; out.localA = fs.readFileSync(root + '/a', 'utf8');
  fs.writeFile(root + '/b', 'b', (err) => {
    out.callback = err ? err.code : 'ok';
    fs.promises.writeFile(root + '/c', 'c').then(() => 'ok', (e) => e.code).then((r) => {
      out.promise = r; const t1 = Date.now(); try { fs.writeFileSync(root + '/d', 'd'); } catch {} out.laterMs = Date.now() - t1;
      console.log(JSON.stringify(out)); process.exit(0);
    });
  });`;

test.serial('sync and strong modes with NATS down and UNDERSTUDY_ON_TIMEOUT=fail: each call fails clearly after the timeout, the local change made', async (t) => {
  const pair = await makePair('fail');
  t.teardown(() => pair.close());
  await pair.server.stop();
  for (const mode of ['sync', 'strong']) {
    const run = await pair.runApp({
      env: { UNDERSTUDY_MODE: mode, UNDERSTUDY_SYNC_TIMEOUT_MS: '300', UNDERSTUDY_ON_TIMEOUT: 'fail', UNDERSTUDY_EXIT_TIMEOUT_MS: '200', UNDERSTUDY_NAME: `app-${mode}` },
      code: DOWN_APP(pair),
    });
    t.is(run.code, 0, run.stderr);
    const out = JSON.parse(run.stdout) as Record<string, string | number>;
    t.regex(String(out.sync), new RegExp(`^EUNDERSTUDYTIMEOUT: UNDERSTUDY_MODE=${mode}: the put of data/a was made here and journaled as seq 1, but .* within 300 ms$`));
    t.true(Number(out.syncMs) >= 290 && Number(out.syncMs) < 5000, `waited ${out.syncMs} ms`);
    t.is(out.localA, 'a');
    t.is(out.callback, 'EUNDERSTUDYTIMEOUT');
    t.is(out.promise, 'EUNDERSTUDYTIMEOUT');
  }
});

test.serial('with NATS down and UNDERSTUDY_ON_TIMEOUT=fail a configuration change fails clearly after the timeout, made; a queue goes on', async (t) => {
  const pair = await makePair('fail-objects');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const run = await pair.runApp({
    env: { UNDERSTUDY_MODE: 'sync', UNDERSTUDY_SYNC_TIMEOUT_MS: '300', UNDERSTUDY_ON_TIMEOUT: 'fail', UNDERSTUDY_EXIT_TIMEOUT_MS: '200', NODE_PATH: path.join(REPO, 'node_modules') },
    code: `const out = {};
      try { process.env.UNDERSTUDY_TEST_KEY = 'set'; out.env = 'returned'; } catch (e) { out.env = e.code + ': ' + e.message; }
      out.local = process.env.UNDERSTUDY_TEST_KEY;
      const q = require('fastq')((job, done) => done(null, job * 2), 1);
      try { q.push(21, (err, r) => { out.job = err ? 'failed' : r; console.log(JSON.stringify(out)); process.exit(0); }); } catch (e) { out.push = e.message; }`,
  });
  t.is(run.code, 0, run.stderr);
  const out = JSON.parse(run.stdout) as Record<string, unknown>;
  t.regex(String(out.env), /^EUNDERSTUDYTIMEOUT: UNDERSTUDY_MODE=sync: the change of key "UNDERSTUDY_TEST_KEY" of configuration store env was made here and journaled as seq \d+, but JetStream did not acknowledge it within 300 ms$/);
  t.is(out.local, 'set');
  t.is(out.push, undefined, 'a queue call never fails for its entry');
  t.is(out.job, 42);
  t.regex(run.stderr, /job \S+ enqueued on queue .* the queue goes on/);
});

test.serial('with UNDERSTUDY_ON_TIMEOUT=degrade the agent falls back to async once and says so once', async (t) => {
  const pair = await makePair('degrade');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const run = await pair.runApp({
    env: { UNDERSTUDY_MODE: 'strong', UNDERSTUDY_SYNC_TIMEOUT_MS: '300', UNDERSTUDY_ON_TIMEOUT: 'degrade', UNDERSTUDY_EXIT_TIMEOUT_MS: '200' },
    code: DOWN_APP(pair),
  });
  t.is(run.code, 0, run.stderr);
  const out = JSON.parse(run.stdout) as Record<string, string | number>;
  t.is(out.sync, 'returned');
  t.true(Number(out.syncMs) >= 290);
  t.is(out.callback, 'ok');
  t.is(out.promise, 'ok');
  t.true(Number(out.laterMs) < 250, `later calls do not wait (${out.laterMs} ms)`);
  t.is(run.stderr.match(/falling back to async mode/g)?.length, 1);
});
