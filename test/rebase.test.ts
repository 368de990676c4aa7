import test from 'ava';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { KV } from '@nats-io/kv';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import { parseRoots } from '../lib/roots';
import { readState, writeState, type AgentHeartbeat, type RebaseRecord, type VerifyReport } from '../lib/state-bucket';
import type { StateStore } from '../lib/transport/journal-transport';
import { MemoryTransport } from '../lib/transport/memory';
import { childEnv, spawnRunner, withoutPreloads, type ChildRunner } from '../agent/ship/rebase-child';
import { RebaseService } from '../agent/ship/rebase-service';
import { Replayer } from '../replayer/replayer';
import { makePair, PRELOAD, type Pair, type RunResult } from './helpers/pair';
import { freePort } from './helpers/nats-server';
import { diffTrees } from './helpers/tree';

/**
 * The primary's side of a lost standby's recovery, end to end: agents under a running
 * application take a `rebase.<standby>` request (one of them), run baseline and verify --repair
 * as child processes, and leave the standby equal to the primary; a rebase whose children fail
 * ends `failed` with the reason while the application goes on.
 */

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** An application under the agent that appends to its own log every 20 ms until `stop` exists. */
function startApp(pair: Pair, root: string, stop: string, env: Record<string, string> = {}): Promise<RunResult> {
  // The agent through NODE_OPTIONS, as a deployment loads it: the rebase's children inherit it unless it is taken out.
  return pair.runApp({
    withAgent: false,
    env: { NODE_OPTIONS: `--require ${PRELOAD}`, ...env },
    code: `const fs = require('fs'); const log = ${JSON.stringify(root)} + '/log-' + process.pid; let i = 0;
      fs.writeFileSync(${JSON.stringify(root)} + '/started-' + process.pid, 'up');
      const t = setInterval(() => {
        fs.appendFileSync(log, (i++) + '\\n');
        if (fs.existsSync(${JSON.stringify(stop)})) { clearInterval(t); console.log('wrote ' + i); }
      }, 20);`,
  });
}

/** A following replayer of standby `standby` into `dir`, until the test ends. */
function follow(t: { teardown(fn: () => unknown): void }, pair: Pair, standby: string, dir: string): void {
  const ac = new AbortController();
  const running = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${dir}`), standby,
    stateDir: path.join(pair.dir, `state-${standby}`), drain: false, log: () => undefined,
  }).run(ac.signal);
  t.teardown(async () => {
    ac.abort();
    await running;
  });
}

async function state(t: { teardown(fn: () => unknown): void }, pair: Pair): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  return { nc, kv: await openStateKv(nc, 'UNDERSTUDY') };
}

/** Every version of `rebase.<standby>` written, until it ends (done or failed) or `ms` pass. */
async function followRequest(kv: KV, standby: string, ms: number): Promise<RebaseRecord[]> {
  const seen: RebaseRecord[] = [];
  const deadline = Date.now() + ms;
  const w = await kv.watch({ key: `rebase.${standby}` });
  const timer = setTimeout(() => w.stop(), ms);
  try {
    for await (const e of w) {
      if (e.operation !== 'PUT') continue;
      const r = JSON.parse(e.string()) as RebaseRecord;
      seen.push(r);
      if (r.state === 'done' || r.state === 'failed' || Date.now() > deadline) break;
    }
  } finally {
    clearTimeout(timer);
    w.stop();
  }
  return seen;
}

async function until(what: string, ok: () => boolean, ms = 20_000): Promise<void> {
  for (const deadline = Date.now() + ms; !ok(); await sleep(50)) if (Date.now() > deadline) throw new Error(`never: ${what}`);
}

test.serial('a lost standby\'s request: one of two agents takes it, runs baseline and verify --repair, and the standby equals the primary', async (t) => {
  const pair = await makePair('rebase');
  t.teardown(() => pair.close());
  // What was there before any agent: never journaled, so the standby lacks all of it.
  for (let i = 0; i < 40; i++) {
    fs.mkdirSync(path.join(pair.primary, `d${i % 4}`), { recursive: true });
    fs.writeFileSync(path.join(pair.primary, `d${i % 4}`, `f${i}`), `before the agent ${i}\n`.repeat(i));
  }
  fs.writeFileSync(path.join(pair.primary, 'kept'), 'the standby will lose this');
  fs.writeFileSync(path.join(pair.primary, 'altered'), 'the standby will change this');
  follow(t, pair, 'east', pair.standby);
  const stop = path.join(pair.dir, 'stop');
  const apps = [startApp(pair, pair.primary, stop), startApp(pair, pair.primary, stop)];
  const { kv } = await state(t, pair);
  // Both agents run and the standby follows them (it has their first files).
  await until('both applications are replicated', () => fs.readdirSync(pair.standby).filter((n) => n.startsWith('started-')).length === 2);
  t.true(fs.existsSync(path.join(pair.primary, 'd3', 'f39')) && !fs.existsSync(path.join(pair.standby, 'd3')), 'the standby lacks what was never journaled');
  // The standby's tree is damaged behind its back too.
  fs.writeFileSync(path.join(pair.standby, 'kept'), 'x');
  fs.rmSync(path.join(pair.standby, 'kept'));
  fs.writeFileSync(path.join(pair.standby, 'altered'), 'changed on the standby');
  fs.writeFileSync(path.join(pair.standby, 'extra'), 'only on the standby');
  fs.mkdirSync(path.join(pair.standby, 'extra-dir', 'inner'), { recursive: true });

  const watching = followRequest(kv, 'east', 120_000);
  await writeState(kv, 'rebase', 'east', { standby: 'east', state: 'requested', requested: Date.now() });
  const versions = await watching;
  const last = versions.at(-1)!;
  t.is(last.state, 'done', JSON.stringify(versions, null, 1));
  const takers = new Set(versions.filter((v) => v.state !== 'requested').map((v) => v.by));
  t.is(takers.size, 1, `one agent ran it: ${[...takers].join(', ')}`);
  t.regex(last.by ?? '', /^app(-\d+)?@\S+ \(pid \d+\)$/);
  t.deepEqual(versions.map((v) => v.step).filter((s) => s !== undefined && s !== 'starting'), ['baseline', 'verify', 'done']);
  t.true(typeof last.started === 'number' && typeof last.finished === 'number' && last.finished >= last.started);
  // The baseline put back what the standby lacked or lost; verify found what a baseline cannot remove.
  t.true((last.differences ?? 0) >= 2, `differences: ${last.differences}`);
  // The extra directory's removal takes what is below it: repaired counts objects sent.
  t.true((last.repaired ?? 0) >= 2 && (last.repaired ?? 0) <= (last.differences ?? 0), `repaired: ${last.repaired}`);
  t.like(await readState(kv, 'baseline', 'rebase-east'), { state: 'done' });
  t.like(await readState(kv, 'verify', 'rebase-east'), { equal: true, standby: 'east', repaired: last.repaired });

  fs.writeFileSync(stop, '');
  const ended = await Promise.all(apps);
  for (const a of ended) t.is(a.code, 0, a.stderr);
  const said = ended.map((a) => a.stderr).filter((s) => s.includes('rebases lost standby "east"'));
  t.is(said.length, 1, ended.map((a) => a.stderr).join('\n---\n'));
  t.regex(said[0], /the rebase of standby "east" is done: baseline "rebase-east" journaled, and verify found \d+ difference\(s\) and repaired \d+/);
  await until('the standby has the applications\' last lines', () => diffTrees(pair.primary, pair.standby).length === 0, 30_000).catch(() => undefined);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.false(fs.existsSync(path.join(pair.standby, 'extra')));
  t.false(fs.existsSync(path.join(pair.standby, 'extra-dir')));
  t.is(fs.readFileSync(path.join(pair.standby, 'altered'), 'utf8'), 'the standby will change this');
});

test.serial('a rebase whose verify fails (the standby\'s replayer is not running) ends failed with the reason; the application goes on writing', async (t) => {
  const pair = await makePair('rebase-fail');
  t.teardown(() => pair.close());
  const stop = path.join(pair.dir, 'stop');
  const app = startApp(pair, pair.primary, stop);
  const { kv } = await state(t, pair);
  await until('the application runs', () => fs.readdirSync(pair.primary).some((n) => n.startsWith('log-')));
  const watching = followRequest(kv, 'west', 60_000);
  await writeState(kv, 'rebase', 'west', { standby: 'west', state: 'requested', requested: Date.now() });
  const last = (await watching).at(-1)!;
  t.is(last.state, 'failed', JSON.stringify(last));
  t.is(last.step, 'verify');
  t.regex(last.error ?? '', /^verify --repair exited with 1: understudy verify: no replayer answered on understudy\.understudy\.verify\.west/);
  t.true(typeof last.finished === 'number');
  t.is(last.differences, undefined, 'nothing was compared');
  t.like(await readState(kv, 'baseline', 'rebase-west'), { state: 'done' });
  // The application is still there and still writing.
  const log = fs.readdirSync(pair.primary).find((n) => n.startsWith('log-'))!;
  const before = fs.statSync(path.join(pair.primary, log)).size;
  await until('the application writes on', () => fs.statSync(path.join(pair.primary, log)).size > before);
  fs.writeFileSync(stop, '');
  const ended = await app;
  t.is(ended.code, 0, ended.stderr);
  t.regex(ended.stdout, /wrote \d+/);
  t.regex(ended.stderr, /the rebase of standby "west" failed: verify --repair exited with 1/);
});

/** A runner standing in for the children: it records what it was asked, and verify leaves its report as the real one does. */
function recordingRunner(store: StateStore, calls: string[][], verify: Partial<VerifyReport> = {}): ChildRunner {
  return async (args) => {
    calls.push(args);
    if (args[0] === 'verify') {
      const name = args[args.indexOf('--name') + 1];
      await store.write('verify', name, { time: Date.now(), roots: ['data'], equal: true, differences: 1, repaired: 1, unsettled: 0, ...verify });
    }
    return { code: args[0] === 'verify' && verify.equal === false ? 1 : 0, stderr: '' };
  };
}

const PACE = { childTimeoutMs: 60_000, checkEveryMs: 50, takeOverAfterMs: 1000, rewatchMs: 50 };

async function ended(store: StateStore, name: string): Promise<RebaseRecord> {
  for (;;) {
    const r = await store.read('rebase', name);
    if (r !== undefined && (r.state === 'done' || r.state === 'failed')) return r;
    await sleep(20);
  }
}

function beat(name: string, pid: number, time: number): AgentHeartbeat {
  return { name, epoch: 1, mode: 'async', pid, host: os.hostname(), appended: 0, acked: { epoch: 1, seq: 0 }, time, dropped: 0 };
}

test.serial('of two services on one bucket, exactly one takes a request; it runs baseline then verify --repair --standby over its roots', async (t) => {
  const transport = new MemoryTransport();
  const store = await transport.openState();
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  const calls: string[][][] = [[], []];
  const services = calls.map((c, i) => new RebaseService({ journal: `app-${i}`, roots: ['data=/srv/data', 'conf=/srv/conf'], run: recordingRunner(store, c), pace: PACE, signal: ac.signal }));
  for (const s of services) s.start(store);
  await store.write('rebase', 'east.app', { standby: 'east.app', state: 'requested', requested: 1 });
  const r = await ended(store, 'east.app');
  t.like(r, { state: 'done', step: 'done', differences: 1, repaired: 1, requested: 1 });
  t.deepEqual(calls.map((c) => c.length).sort(), [0, 2]);
  const ran = calls.find((c) => c.length > 0)!;
  t.is(r.by, services[calls.indexOf(ran)].by);
  t.deepEqual(ran, [
    ['baseline', '--root', 'data=/srv/data', '--root', 'conf=/srv/conf', '--name', 'rebase-east_app'],
    ['verify', '--root', 'data=/srv/data', '--root', 'conf=/srv/conf', '--repair', '--standby', 'east.app', '--name', 'rebase-east_app'],
  ]);
  // verify exits 1 when the standby still differs after its repair: failed, with its numbers.
  ac.abort();
  const ac2 = new AbortController();
  t.teardown(() => ac2.abort());
  new RebaseService({ journal: 'other', roots: ['data=/srv/data'], run: recordingRunner(store, [], { equal: false, differences: 4, repaired: 3 }), pace: PACE, signal: ac2.signal }).start(store);
  await store.write('rebase', 'west', { standby: 'west', state: 'requested', requested: 2 });
  t.like(await ended(store, 'west'), { state: 'failed', differences: 4, repaired: 3, error: 'verify --repair exited with 1: the standby still differs after the repair (4 difference(s), 3 repaired)' });
  t.deepEqual(calls.map((c) => c.length).sort(), [0, 2], 'the stopped services took nothing more');
});

test.serial('a running rebase whose agent died is taken over; one whose agent beats is left alone until its heartbeat goes stale', async (t) => {
  const store = await new MemoryTransport().openState();
  const ac = new AbortController();
  t.teardown(() => ac.abort());
  const dead = spawnSync(process.execPath, ['-e', '']).pid;
  await store.write('agent', 'gone', beat('gone', dead, Date.now()));
  await store.write('agent', 'busy', beat('busy', process.pid, Date.now()));
  const byGone = `gone@${os.hostname()} (pid ${dead})`;
  const byBusy = `busy@${os.hostname()} (pid ${process.pid})`;
  await store.write('rebase', 'east', { standby: 'east', state: 'running', requested: 1, by: byGone, started: Date.now(), step: 'baseline' });
  await store.write('rebase', 'north', { standby: 'north', state: 'running', requested: 2, by: byBusy, started: Date.now(), step: 'baseline' });
  const calls: string[][] = [];
  const service = new RebaseService({ journal: 'app', roots: ['data=/srv/data'], run: recordingRunner(store, calls), pace: PACE, signal: ac.signal });
  service.start(store);
  t.like(await ended(store, 'east'), { state: 'done', by: service.by, requested: 1 });
  await sleep(10 * PACE.checkEveryMs);
  t.like(await store.read('rebase', 'north'), { state: 'running', by: byBusy }, 'its agent beats: it is still at work');
  await store.write('agent', 'busy', beat('busy', process.pid, Date.now() - 2 * PACE.takeOverAfterMs));
  t.like(await ended(store, 'north'), { state: 'done', by: service.by });
  t.is(calls.length, 4);
});

test('a child that outlives its time is stopped and says so; the children get no preload and the agent\'s NATS settings', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-rebase-child-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'data'));
  fs.writeFileSync(path.join(dir, 'data', 'f'), 'to journal');
  const env = childEnv({ ...process.env, UNDERSTUDY_ROOTS: `data=${path.join(dir, 'data')}`, UNDERSTUDY_SPOOL_DIR: path.join(dir, 'spool'), NODE_OPTIONS: `--require ${PRELOAD}`, UNDERSTUDY_NAME: 'app' },
    { url: `nats://127.0.0.1:${await freePort()}`, replicas: 1 }, 'UNDERSTUDY');
  // Without UNDERSTUDY_DISABLE (which would make a preload that slipped through inert) to see that none did.
  delete env.UNDERSTUDY_DISABLE;
  // Nothing listens there: the baseline journals, then waits for ever for JetStream to take it.
  const out = await spawnRunner(env)(['baseline', '--root', `data=${path.join(dir, 'data')}`], { timeoutMs: 2000, signal: new AbortController().signal });
  t.is(out.failure, 'did not end within 2 s', JSON.stringify(out));
  t.is(out.code, null);
  t.deepEqual(fs.readdirSync(path.join(dir, 'spool')).filter((n) => !n.startsWith('.')), ['baseline'], 'the agent was not loaded into the child: no journal but the baseline\'s');
  const stopped = new AbortController();
  const running = spawnRunner(env)(['baseline', '--root', `data=${path.join(dir, 'data')}`, '--name', 'second'], { timeoutMs: 60_000, signal: stopped.signal });
  stopped.abort('the request was written over');
  t.like(await running, { failure: 'the request was written over', code: null });
});

const PRELOADS: [string | undefined, string | undefined][] = [
  [undefined, undefined],
  ['--require understudy/agent', ''],
  ['--max-old-space-size=512 --require understudy/agent --enable-source-maps', '--max-old-space-size=512 --enable-source-maps'],
  ['-r /opt/apm/preload.js --import=understudy/agent --trace-warnings', '--trace-warnings'],
  ['--require "/path with space/agent.js" --inspect=0', '--inspect=0'],
  ['--experimental-loader ./l.mjs --loader=./m.mjs --title "my app"', '--title "my app"'],
];

test('NODE_OPTIONS loses every preload and keeps the rest', (t) => {
  for (const [given, kept] of PRELOADS) t.is(withoutPreloads(given), kept, String(given));
  const env = childEnv({ NODE_OPTIONS: '--require understudy/agent', UNDERSTUDY_NAME: 'app', UNDERSTUDY_NATS_TOKEN: 'stale', UNDERSTUDY_WATCH: '1', KEEP: 'me' },
    { url: 'nats://10.0.0.1:4222', replicas: 3, user: 'agent', pass: 'secret' }, 'S');
  t.deepEqual(env, {
    KEEP: 'me', UNDERSTUDY_DISABLE: '1', UNDERSTUDY_STREAM: 'S', UNDERSTUDY_NATS_URL: 'nats://10.0.0.1:4222', UNDERSTUDY_STREAM_REPLICAS: '3',
    UNDERSTUDY_NATS_USER: 'agent', UNDERSTUDY_NATS_PASS: 'secret',
  });
});
