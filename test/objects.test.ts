import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { makePair, PRELOAD, REPO, runCli, type Pair } from './helpers/pair';
import { publish } from './helpers/publish';
import { pendingJobs, readConfigReplica } from '../index';
import type { EntryHeader } from '../lib/entry';

// Integration tests of configuration and queue replication: a real app under the agent, a real
// nats-server, a real replayer. Apps find the libraries through NODE_PATH (they live in a temp dir).
const API = JSON.stringify(path.join(REPO, 'dist', 'index.js'));
const LIBS = { NODE_PATH: path.join(REPO, 'node_modules') };

async function run(pair: Pair, code: string): Promise<{ stdout: string; stderr: string }> {
  const r = await pair.runApp({ code, env: LIBS });
  if (r.code !== 0) throw new Error(`app exited ${r.code}: ${r.stderr}`);
  return r;
}

test.serial('the wrapped libraries return, throw and look the same with and without the agent', async (t) => {
  const pair = await makePair('objtransp');
  t.teardown(() => pair.close());
  const file = path.join(REPO, 'test', 'fixtures', 'objects-transparency.js');
  const plain = await pair.runApp({ file, env: LIBS, withAgent: false });
  const agent = await pair.runApp({ file, env: LIBS });
  t.is(plain.code, 0, plain.stderr);
  t.is(agent.code, 0, agent.stderr);
  t.true(plain.stdout.length > 500, 'the fixture printed its findings');
  t.is(agent.stdout, plain.stdout);
  t.is(agent.stderr, plain.stderr);
  await pair.drain();
  // And they were journaled: each queue, named after its line in the fixture, saw its jobs finish.
  const counts = (name: string) => {
    const q = JSON.parse(fs.readFileSync(path.join(pair.state, 'queues', `${name}.json`), 'utf8')) as { pending: unknown[]; completed: number; failed: number };
    return [q.pending.length, q.completed, q.failed];
  };
  t.deepEqual(counts('objects-transparency.js:54'), [0, 2, 1]);
  t.deepEqual(counts('objects-transparency.js:63'), [0, 1, 1]);
  t.deepEqual(counts('objects-transparency.js:65'), [0, 1, 1]);
});

test.serial('process.env set, reassign and delete reach the standby replica, keyed by variable', async (t) => {
  const pair = await makePair('env');
  t.teardown(() => pair.close());
  const r = await run(pair, `
    process.env.FEATURE_X = 'on';
    process.env.PORT = 8080;            // coerced to "8080", as without the agent
    process.env.TEMP_FLAG = 'a';
    process.env.TEMP_FLAG = 'b';
    delete process.env.TEMP_FLAG;
    delete process.env.NEVER_SET;        // no change, nothing to journal
    Object.defineProperty(process.env, 'DEFINED', { value: 'yes', enumerable: true, configurable: true, writable: true });
    console.log(JSON.stringify({ port: process.env.PORT, type: typeof process.env.PORT, temp: process.env.TEMP_FLAG }));
  `);
  t.deepEqual(JSON.parse(r.stdout), { port: '8080', type: 'string' }, 'the application sees exactly what it would without the agent');
  t.is(r.stderr, '');
  await pair.drain();
  t.deepEqual(readConfigReplica('env', pair.state), { FEATURE_X: 'on', PORT: '8080', DEFINED: 'yes' });
});

test.serial('file, config and job entries share one journal sequence, in the order they happened', async (t) => {
  const pair = await makePair('order');
  t.teardown(() => pair.close());
  await run(pair, `
    const fs = require('fs'); const fastq = require('fastq');
    fs.writeFileSync(${JSON.stringify(pair.primary)} + '/a.txt', '1');
    process.env.MODE = 'blue';
    const q = require(${API}).nameQueue(fastq((t, cb) => cb(null), 1), 'jobs');
    q.push({ n: 1 }, () => {
      fs.writeFileSync(${JSON.stringify(pair.primary)} + '/b.txt', '2');
    });
  `);
  const out = await runCli(['inspect', '--json'], { UNDERSTUDY_NATS_URL: pair.server.url, UNDERSTUDY_ROOTS: '' });
  t.is(out.code, 0, out.stderr);
  const entries = out.stdout.trim().split('\n').map((l) => JSON.parse(l) as EntryHeader);
  t.deepEqual(entries.map((e) => (e.op === 'job' ? `job ${e.ev}` : `${e.op} ${e.p}`)),
    ['put a.txt', 'config env', 'job enqueued', 'job completed', 'put b.txt']);
  t.deepEqual(entries.map((e) => e.s), [1, 2, 3, 4, 5], 'one sequence, no gaps');
  t.true(entries.filter((e) => e.op !== 'put').every((e) => e.r === ''), 'configuration and jobs use the reserved root, never a file root');
  const text = await runCli(['inspect'], { UNDERSTUDY_NATS_URL: pair.server.url, UNDERSTUDY_ROOTS: '' });
  t.regex(text.stdout, /^#\d+ app \d+\.2 \S+ config env MODE \[6 bytes\]$/m);
  t.regex(text.stdout, /^#\d+ app \d+\.3 \S+ job jobs \d+\.1 enqueued \[\d+ bytes\]$/m);
});

test.serial('nconf set, clear, merge and reset reach the standby as the values nconf resolves', async (t) => {
  const pair = await makePair('nconf');
  t.teardown(() => pair.close());
  const r = await run(pair, `
    const nconf = require('nconf');
    nconf.use('memory');
    nconf.set('features:beta', true);
    nconf.set('db', { host: 'h1', port: 5432 });
    nconf.set('db:port', 6543);
    nconf.set('gone', 1);
    nconf.clear('gone');
    nconf.merge('limits', { rps: 10 });
    nconf.merge('limits', { burst: 20 });
    nconf.merge({ top: 'level' });
    console.log(JSON.stringify(nconf.get()));
  `);
  const primary = JSON.parse(r.stdout) as Record<string, unknown>;
  t.deepEqual(primary, { features: { beta: true }, db: { host: 'h1', port: 6543 }, limits: { rps: 10, burst: 20 }, top: 'level' });
  await pair.drain();
  t.deepEqual(readConfigReplica('nconf', pair.state), primary);
  // reset empties the store on the standby too
  await run(pair, `const nconf = require('nconf'); nconf.use('memory'); nconf.set('a', 1); nconf.reset(); nconf.set('after', 'reset');`);
  await pair.drain();
  t.deepEqual(readConfigReplica('nconf', pair.state), { after: 'reset' });
});

test.serial('convict set and load reach the standby at key level', async (t) => {
  const pair = await makePair('convict');
  t.teardown(() => pair.close());
  const r = await run(pair, `
    const convict = require('convict');
    const c = convict({ port: { format: 'port', default: 80 }, db: { host: { format: String, default: 'localhost' }, pool: { format: 'nat', default: 2 } } });
    c.set('port', 8081);
    c.load({ db: { host: 'db1', pool: 8 } });
    console.log(JSON.stringify(c.getProperties()));
  `);
  await pair.drain();
  t.deepEqual(readConfigReplica('convict', pair.state), JSON.parse(r.stdout));
  t.deepEqual(readConfigReplica('convict', pair.state), { port: 8081, db: { host: 'db1', pool: 8 } });
  const file = path.join(pair.dir, 'prod.json');
  fs.writeFileSync(file, JSON.stringify({ port: 9090, db: { pool: 16 } }));
  await run(pair, `
    const convict = require('convict');
    const c = convict({ port: { format: 'port', default: 80 }, db: { host: { format: String, default: 'localhost' }, pool: { format: 'nat', default: 2 } } });
    c.loadFile(${JSON.stringify(file)});
  `);
  await pair.drain();
  t.deepEqual(readConfigReplica('convict', pair.state), { port: 9090, db: { host: 'localhost', pool: 16 } }, 'loadFile: the whole store as convict resolves it');
});

/** Runs `code` under the agent until it prints "ready", then kills it with SIGKILL. */
function runUntilReadyThenKill(pair: Pair, code: string): Promise<string> {
  const file = path.join(pair.dir, `killed-${Math.random().toString(36).slice(2)}.js`);
  fs.writeFileSync(file, code);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', PRELOAD, file], { env: pair.env(LIBS), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (c, signal) => (signal === 'SIGKILL' ? resolve(err) : reject(new Error(`app ended ${c} ${signal} before it was killed: ${err}`))));
  });
}

test.serial('fastq: pending jobs on the standby are exactly those enqueued and not finished when the primary was killed', async (t) => {
  const pair = await makePair('fastq');
  t.teardown(() => pair.close());
  // Jobs 0-4 finish (3 fails), job 5 hangs, jobs 6-9 wait behind it; job 10 went in front by unshift.
  // The promise queue finishes 100 and hangs on 101.
  const stderr = await runUntilReadyThenKill(pair, `
    const fastq = require('fastq'); const { nameQueue, flush } = require(${API});
    const q = nameQueue(fastq((task, cb) => {
      if (task.n === 3) return setImmediate(cb, new Error('job 3 fails'));
      if (task.n < 5 || task.n === 10) return setImmediate(cb, null, task.n);
    }, 1), 'emails');
    const finished = [];
    for (let n = 0; n < 10; n++) q.push({ n, to: 'u' + n + '@example.com' }, (err) => finished.push(n));
    q.unshift({ n: 10, urgent: true });
    const p = nameQueue(fastq.promise(async (x) => { if (x === 101) await new Promise(() => {}); return x; }, 1), 'reports');
    p.push(100).then(() => p.push(101));
    setTimeout(() => { flush(5000); console.log('ready', finished.join()); }, 200);
  `);
  t.is(stderr, '');
  await pair.drain();
  const emails = pendingJobs('emails', pair.state);
  // fastq started job 0 at once (the queue was idle), so the unshifted job 10 ran before 1: it finished.
  t.deepEqual(emails.map((j) => (j.payload as { n: number }).n), [5, 6, 7, 8, 9]);
  t.true(emails.every((j) => j.captured && j.queue === 'emails' && j.enqueuedAt instanceof Date));
  t.deepEqual(emails[0].payload, { n: 5, to: 'u5@example.com' });
  t.deepEqual(pendingJobs('reports', pair.state).map((j) => j.payload), [101]);
  const q = JSON.parse(fs.readFileSync(path.join(pair.state, 'queues', 'emails.json'), 'utf8')) as { completed: number; failed: number };
  t.deepEqual([q.completed, q.failed], [5, 1], '0,1,2,4,10 completed, 3 failed');
  const cli = await runCli(['queue', 'pending', 'emails', '--state', pair.state]);
  t.is(cli.code, 0, cli.stderr);
  t.regex(cli.stdout, /^emails: 5 pending \(5 completed, 1 failed\)$/m);
  t.regex(cli.stdout, /\{ n: 9, to: 'u9@example\.com' \}/);
});

test.serial('a queue is named after the file and line that created it unless nameQueue names it', async (t) => {
  const pair = await makePair('qname');
  t.teardown(() => pair.close());
  const file = path.join(pair.dir, 'worker-app.js');
  fs.writeFileSync(file, `const fastq = require('fastq');\n\nconst q = fastq((t, cb) => {}, 1);\nq.push('x');\n`);
  const r = await pair.runApp({ file, env: LIBS });
  t.is(r.code, 0, r.stderr);
  await pair.drain();
  t.deepEqual(pendingJobs('worker-app.js:3', pair.state).map((j) => j.payload), ['x']);
});

test.serial('an unclonable payload is journaled as not captured, with one warning, and the app runs on', async (t) => {
  const pair = await makePair('clone');
  t.teardown(() => pair.close());
  const r = await run(pair, `
    const fastq = require('fastq'); const { nameQueue } = require(${API});
    const q = nameQueue(fastq((task, cb) => {}, 1), 'odd');
    q.push({ fn: () => 1 });
    q.push({ sock: process.stdout });
    q.push({ fine: true });
    console.log('ran on');
  `);
  t.is(r.stdout.trim(), 'ran on');
  t.is(r.stderr.match(/cannot be structured-cloned/g)?.length, 1, r.stderr);
  t.regex(r.stderr, /queue "odd".*"not captured"/);
  await pair.drain();
  const jobs = pendingJobs('odd', pair.state);
  t.deepEqual(jobs.map((j) => [j.captured, j.payload]), [[false, undefined], [false, undefined], [true, { fine: true }]]);
  const cli = await runCli(['queue', 'pending', '--state', pair.state]);
  t.regex(cli.stdout, /\(payload not captured\)/);
});

test.serial('config show prints the standby replica; unknown stores are empty', async (t) => {
  const pair = await makePair('cfgcli');
  t.teardown(() => pair.close());
  await run(pair, `process.env.FLAG = 'green'; const n = require('nconf'); n.use('memory'); n.set('a:b', 2);`);
  await pair.drain();
  const all = await runCli(['config', 'show', '--state', pair.state]);
  t.is(all.code, 0, all.stderr);
  t.regex(all.stdout, /^\[env\]\nFLAG = "green"\n\[nconf\]\na\.b = 2$/m);
  const one = await runCli(['config', 'show', 'nconf', '--json', '--state', pair.state]);
  t.deepEqual(JSON.parse(one.stdout), { a: { b: 2 } });
  const bad = await runCli(['config', 'show', '../etc', '--state', pair.state]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /configuration store name "\.\.\/etc" must be letters/);
  t.deepEqual(readConfigReplica('convict', pair.state), {});
});

const objectHead = (s: number, p: string) => ({ j: 'evil', e: 1, s, t: Date.now(), r: '', p });

test.serial('hostile config and job entries are refused and quarantined, and nothing lands outside the state dirs', async (t) => {
  const pair = await makePair('hostile');
  t.teardown(() => pair.close());
  // Entries that do not decode but name their place pass it in skip mode, their journal in doubt;
  // those that decode and are refused when applied pass theirs too: the journal goes on after them.
  await publish(pair.server.url, [
    { header: { ...objectHead(1, '../../escape'), op: 'config', key: ['a'] }, data: Buffer.from('1'), id: 'undecodable-1' },
    { header: { ...objectHead(2, 'ok'), op: 'config', key: ['__proto__', 'polluted'] }, data: Buffer.from('true') },
    { header: { ...objectHead(3, 'ok'), r: 'data', op: 'config', key: ['a'] }, data: Buffer.from('1'), id: 'undecodable-2' },
    { header: { ...objectHead(4, 'ok'), op: 'config', key: ['a'] }, data: Buffer.from('{not json') },
    { header: { ...objectHead(5, 'q'), op: 'job', id: '../x', ev: 'enqueued', captured: false }, id: 'undecodable-3' },
    { header: { ...objectHead(6, 'q'), op: 'job', id: '1.1', ev: 'completed' }, data: Buffer.from('x'), id: 'undecodable-4' },
    { header: { ...objectHead(7, 'ok'), op: 'config', key: ['good'] }, data: Buffer.from('"value"') },
  ]);
  const logs: string[] = [];
  const s = await pair.drain(undefined, { onBadEntry: 'skip', log: (l) => logs.push(l) });
  t.is(s.skipped, 6, logs.join('\n'));
  t.is(s.applied, 1, 'the good entry after them');
  t.is(s.inDoubt, 2, 'in doubt: journal evil (the four that did not decode) and store ok (the two refused)');
  t.deepEqual(readConfigReplica('ok', pair.state), { good: 'value' });
  t.is(({} as Record<string, unknown>).polluted, undefined);
  t.deepEqual(fs.readdirSync(path.join(pair.state, 'config')), ['ok.json']);
  t.deepEqual(fs.readdirSync(path.join(pair.state, 'queues')), []);
  t.deepEqual(fs.readdirSync(pair.standby), [], 'nothing written into the root');
  t.false(fs.existsSync(path.join(pair.dir, 'escape.json')));
});

test.serial('killed at any moment, without a flush: after the next start ships its spool, the standby has the jobs not done and the last flag', async (t) => {
  const pair = await makePair('anytime');
  t.teardown(() => pair.close());
  // Truth kept by the app outside the root (not journaled): what it enqueued, what its worker finished, the flag it set.
  const truth = (name: string) => path.join(pair.dir, `truth-${name}`);
  const file = path.join(pair.dir, 'anytime.js');
  fs.writeFileSync(file, `
    const fs = require('fs'); const fastq = require('fastq');
    const q = fastq((n, cb) => setTimeout(() => { fs.appendFileSync(${JSON.stringify(truth('done'))}, n + '\\n'); cb(null); }, 1), 1); // slower than the producer: a backlog builds
    let n = 0;
    setInterval(() => {
      for (let k = 0; k < 5; k++, n++) {
        fs.appendFileSync(${JSON.stringify(truth('enq'))}, n + '\\n');
        q.push(n);
        process.env.COUNTER = String(n);
        fs.appendFileSync(${JSON.stringify(truth('flag'))}, n + '\\n'); // one write(2): a kill cannot tear it
        if (n % 10 === 0) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/last-ten.txt', String(n));
      }
      if (n === 20) console.log('ready');
    }, 2);
  `);
  const child = spawn(process.execPath, ['--require', PRELOAD, file], { env: pair.env(LIBS), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const ready = await new Promise<boolean>((resolve) => {
    child.stdout.on('data', () => resolve(true));
    child.on('close', () => resolve(false));
  });
  if (!ready) {
    t.fail(`the app ended before it was ready: ${stderr}`);
    return;
  }
  await new Promise((r) => setTimeout(r, 200 + Math.floor(Math.random() * 600)));
  child.kill('SIGKILL');
  await new Promise((r) => child.on('close', r));
  // The next process with the journal's name ships what the killed one had spooled.
  const next = await pair.runApp({ code: '', env: LIBS });
  t.is(next.code, 0, next.stderr);
  await pair.drain();
  const lines = (name: string) => fs.readFileSync(truth(name), 'utf8').split('\n').filter(Boolean).map(Number);
  const enq = lines('enq');
  const done = new Set(lines('done'));
  const notDone = enq.filter((n) => !done.has(n));
  const pending = pendingJobs('anytime.js:3', pair.state).map((j) => j.payload as number);
  t.true(enq.length > 20 && notDone.length > 0, `killed mid-work (${enq.length} enqueued, ${done.size} done)`);
  // A kill between a step and its journal entry (or the truth file's line) can only leave one job at either end.
  const extra = pending.filter((n) => done.has(n));
  const missing = notDone.filter((n) => !pending.includes(n));
  t.true(extra.length === 0 || (extra.length === 1 && extra[0] === Math.max(...done)), `finished but still pending: ${extra.join()}`);
  t.true(missing.length === 0 || (missing.length === 1 && missing[0] === enq.at(-1)), `not done but not pending: ${missing.join()}`);
  t.deepEqual(pending.filter((n) => !extra.includes(n)), notDone.filter((n) => !missing.includes(n)), 'the rest is exactly the jobs not done, in order');
  const flag = Number((readConfigReplica('env', pair.state) as { COUNTER: string }).COUNTER);
  t.true([0, 1].includes(flag - (lines('flag').at(-1) ?? -1)), `standby COUNTER ${flag}, last in the truth file ${lines('flag').at(-1)}`);
  t.true(fs.existsSync(path.join(pair.standby, 'last-ten.txt')));
});

test.serial('a 2 MiB job payload and a 1 MiB configuration value travel in chunks and arrive whole', async (t) => {
  const pair = await makePair('bigobj');
  t.teardown(() => pair.close());
  await run(pair, `
    const fastq = require('fastq'); const { nameQueue } = require(${API});
    const big = Buffer.alloc(2 * 1024 * 1024); for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    nameQueue(fastq((t, cb) => {}, 1), 'big').push({ image: big, name: 'huge.raw' });
    process.env.LONG_VALUE = 'x'.repeat(1024 * 1024);
  `);
  const s = await pair.drain();
  t.true(s.applied > 4, `chunks applied one by one (${s.applied} entries)`);
  const [job] = pendingJobs('big', pair.state);
  const payload = job.payload as { image: Uint8Array; name: string };
  t.is(payload.name, 'huge.raw');
  t.is(payload.image.length, 2 * 1024 * 1024);
  t.true(payload.image.every((b, i) => b === ((i * 31) & 0xff)));
  t.is((readConfigReplica('env', pair.state) as { LONG_VALUE: string }).LONG_VALUE.length, 1024 * 1024);
  t.deepEqual(fs.readdirSync(path.join(pair.state, 'staging')), [], 'no staged chunk left behind');
});

test.serial('fastq kill and killAndDrain: the jobs they throw away leave the pending list; the running one stays until it ends', async (t) => {
  const pair = await makePair('fqkill');
  t.teardown(() => pair.close());
  await run(pair, `
    const fastq = require('fastq'); const { nameQueue } = require(${API});
    const hang = nameQueue(fastq((t, cb) => {}, 1), 'killed');
    for (const n of [1, 2, 2, 3]) hang.push(n);      // 1 runs (and never ends), 2 2 3 wait
    hang.kill();
    const p = nameQueue(fastq.promise(async (t) => new Promise(() => {}), 1), 'drained');
    p.push({ a: 1 }); p.push({ a: 2 });
    p.killAndDrain();
    const ok = nameQueue(fastq((t, cb) => setImmediate(cb, null), 1), 'after');
    ok.push('x'); ok.push('y'); ok.kill();          // x runs and completes after the kill; y is dropped
  `);
  await pair.drain();
  t.deepEqual(pendingJobs('killed', pair.state).map((j) => j.payload), [1]);
  t.deepEqual(pendingJobs('drained', pair.state).map((j) => j.payload), [{ a: 1 }]);
  t.deepEqual(pendingJobs('after', pair.state).map((j) => j.payload), []);
  const counts = (name: string) => {
    const q = JSON.parse(fs.readFileSync(path.join(pair.state, 'queues', `${name}.json`), 'utf8')) as { completed: number; failed: number };
    return [q.completed, q.failed];
  };
  t.deepEqual(counts('killed'), [0, 3]);
  t.deepEqual(counts('after'), [1, 1]);
});
