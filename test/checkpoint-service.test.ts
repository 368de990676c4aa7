import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { followReplayer, makePair, PRELOAD, REPO, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';
import { readNumber, startApp, until } from './helpers/agent-apps';

/**
 * The "tried as a new user would", end to end: a service of three processes under the
 * agent (a parent and two forked children) passes a token round through IPC; whoever holds it
 * writes its counter and appends to its log, the parent inside a transaction. At every instant
 * of the primary c <= b <= a <= c + 1, and each log holds 1..its counter. A standby follows with
 * checkpoints kept; what it restores, and what a promotion at a checkpoint leaves, must keep the
 * invariant, whatever instant each journal had reached when it stopped.
 */
const SERVICE = `
const fs = require('fs');
const { fork } = require('child_process');
const { transaction } = require(${JSON.stringify(REPO)});
const dir = process.env.DATA;
const role = process.argv[2] ?? 'a';
const write = (n) => { fs.writeFileSync(dir + '/' + role, String(n)); fs.appendFileSync(dir + '/log-' + role, n + '\\n'); };
if (role !== 'a') {
  process.on('message', (n) => { write(n); process.send(n); });
  process.on('disconnect', () => process.exit(0));
} else {
  const b = fork(__filename, ['b']);
  const c = fork(__filename, ['c']);
  fs.writeFileSync(dir + '/child.pid', String(b.pid));
  let n = 0;
  const turn = async () => {
    if (fs.existsSync(dir + '/../stop')) { b.disconnect(); c.disconnect(); return; }
    n++;
    await transaction(async () => write(n));
    b.send(n);
  };
  b.on('message', (m) => c.send(m));
  c.on('message', () => setTimeout(() => void turn(), 2));
  void turn();
}
`;

/** Checks the service's invariant on a tree; returns what breaks it. */
function broken(dir: string): string[] {
  const n = (r: string) => readNumber(path.join(dir, r));
  const log = (r: string) => (fs.existsSync(path.join(dir, `log-${r}`)) ? fs.readFileSync(path.join(dir, `log-${r}`), 'utf8').split('\n').filter(Boolean).map(Number) : []);
  const [a, b, c] = ['a', 'b', 'c'].map(n);
  const out: string[] = [];
  if (!(c <= b && b <= a && a <= c + 1)) out.push(`counters a=${a} b=${b} c=${c}`);
  for (const r of ['a', 'b', 'c']) {
    const l = log(r);
    if (l.length !== n(r) || l.some((v, i) => v !== i + 1)) out.push(`log-${r} holds ${l.length} lines (${l.slice(-3).join(',')}) for counter ${n(r)}`);
  }
  return out;
}

/** A standby following until the returned function (or the test's end) stops it, once. */
function followUntilStopped(pair: Pair, t: { teardown(fn: () => unknown): void }): () => Promise<void> {
  const stop = followReplayer(pair);
  let stopped: Promise<void> | undefined;
  const once = (): Promise<void> => (stopped ??= stop());
  t.teardown(once);
  return once;
}

/** The service's turns so far; a counter read in the middle of its rewrite reads 0, and is read again. */
function turnsNow(pair: Pair): number {
  for (;;) {
    const n = readNumber(path.join(pair.primary, 'c'));
    if (n > 0) return n;
  }
}

async function listed(pair: Pair): Promise<{ name: string; state: string }[]> {
  const r = await runCli(['checkpoints', '--state', pair.state, '--json']);
  return r.code === 0 ? (JSON.parse(r.stdout) as { checkpoints: { name: string; state: string }[] }).checkpoints : [];
}

test.serial('a three-process service: checkpoints reached on the standby restore to trees where its invariant holds, and a promotion at the latest one does too', async (t) => {
  // Three processes taking turns, two checkpoints, two restores and a promotion: 13 s alone, over 100 s beside a full run on two cores.
  t.timeout(240_000);
  const pair = await makePair('cp-service');
  t.teardown(() => pair.close());
  const stopFollowing = followUntilStopped(pair, t);
  const app = startApp(pair, SERVICE, t);
  await until('the service turning', () => readNumber(path.join(pair.primary, 'c')) > 10);
  const cp = await runCli(['checkpoint', 'nightly', '--nats', pair.server.url]);
  t.is(cp.code, 0, cp.stderr);
  t.regex(cp.stdout, /checkpoint nightly taken: 3 journals/);
  await until('nightly reached on the standby', async () => (await listed(pair)).some((c) => c.name === 'nightly' && c.state === 'reached'));
  const atNightly = turnsNow(pair);
  await until('more turns', () => readNumber(path.join(pair.primary, 'c')) > atNightly + 10);
  const later = await runCli(['checkpoint', 'later', '--nats', pair.server.url]);
  t.is(later.code, 0, later.stderr);
  await until('later reached on the standby', async () => (await listed(pair)).some((c) => c.name === 'later' && c.state === 'reached'));
  // The primary dies mid-turn: each journal's last instant in the stream is its own.
  const atLater = turnsNow(pair);
  await until('more turns after it', () => readNumber(path.join(pair.primary, 'c')) > atLater + 10);
  app.kill('SIGKILL');
  await stopFollowing();

  for (const name of ['nightly', 'later']) {
    const to = path.join(pair.dir, `restored-${name}`);
    const r = await runCli(['restore', '--checkpoint', name, '--state', pair.state, '--root', `data=${pair.standby}`, '--to', to]);
    t.is(r.code, 0, r.stderr);
    t.deepEqual(broken(path.join(to, 'data')), [], `restore of ${name}`);
    t.true(readNumber(path.join(to, 'data', 'c')) > 0, `${name} holds turns`);
  }
  t.true(readNumber(path.join(pair.dir, 'restored-later', 'data', 'a')) > readNumber(path.join(pair.dir, 'restored-nightly', 'data', 'a')), 'later is later');

  const p = await runCli(['promote', '--at-checkpoint', 'latest', '--state', pair.state, '--root', `data=${pair.standby}`, '--nats', pair.server.url]);
  t.is(p.code, 0, p.stderr + p.stdout);
  t.regex(p.stderr, /rolled back to checkpoint later: \d+ later change\(s\) set aside/);
  t.deepEqual(broken(pair.standby), [], 'the promoted standby');
  t.is(readNumber(path.join(pair.standby, 'a')), readNumber(path.join(pair.dir, 'restored-later', 'data', 'a')));
});

test.serial('transactions of a real application: none applied in part when the primary is SIGKILLed inside one; status says so and promote sets it aside', async (t) => {
  const pair = await makePair('tx-service');
  t.teardown(() => pair.close());
  const stopFollowing = followUntilStopped(pair, t);
  // Each transaction writes ten files of its own directory; the fifth of the fourth waits to be killed.
  const app = startApp(pair, `
const fs = require('fs');
const { transaction } = require(${JSON.stringify(REPO)});
const dir = process.env.DATA;
// Kept alive while it waits inside the fourth: a pending promise alone would let it exit (and an orderly exit ends the transaction).
setInterval(() => undefined, 1000);
(async () => {
  for (let k = 0; ; k++) {
    await transaction(async () => {
      fs.mkdirSync(dir + '/tx' + k);
      for (let i = 0; i < 10; i++) {
        await fs.promises.writeFile(dir + '/tx' + k + '/f' + i, k + ':' + i);
        if (k === 3 && i === 4) { fs.writeFileSync(dir + '/inside', ''); await new Promise(() => {}); }
      }
    });
    fs.writeFileSync(dir + '/done', String(k));
  }
})();
`, t);
  await until('the fourth transaction open', () => fs.existsSync(path.join(pair.primary, 'inside')));
  await until('its entries shipped', async () => readNumber(path.join(pair.primary, 'done')) === 2 && (await runCli(['status', '--nats', pair.server.url])).stdout.includes('inside transaction'));
  app.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 1500));
  await stopFollowing();
  t.is(fs.readdirSync(path.join(pair.primary, 'tx3')).length, 5, 'the primary holds part of it');
  for (let k = 0; k < 3; k++) t.is(fs.readdirSync(path.join(pair.standby, `tx${k}`)).length, 10, `tx${k} whole`);
  t.false(fs.existsSync(path.join(pair.standby, 'tx3')), 'none of the unfinished one');
  // Once its agent's heartbeat is gone, status says the transaction may never end.
  let st = '';
  for (let i = 0; i < 150 && !/IT MAY NEVER END/.test(st); i++) {
    await new Promise((r) => setTimeout(r, 200));
    st = (await runCli(['status', '--nats', pair.server.url])).stdout;
  }
  t.regex(st, /journal app is inside transaction \S+ since .*: \d+ entries staged, none applied until it ends; IT MAY NEVER END/);
  const p = await runCli(['promote', '--state', pair.state, '--root', `data=${pair.standby}`, '--nats', pair.server.url, '--json']);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stdout, /set_aside/);
  t.false(fs.existsSync(path.join(pair.standby, 'tx3')), 'promote applied none of it');
});

test.serial('a process SIGKILLed inside a transaction and started again: the standby applies what the dead one left (it is on the primary\'s disk), goes on with the new one, and reaches the next checkpoint', async (t) => {
  const pair = await makePair('tx-restart');
  t.teardown(() => pair.close());
  const stopFollowing = followReplayer(pair);
  t.teardown(stopFollowing);
  const file = path.join(pair.dir, 'svc.js');
  fs.writeFileSync(file, `
const fs = require('fs');
const { transaction } = require(${JSON.stringify(REPO)});
const dir = process.env.DATA;
setInterval(() => undefined, 1000);
if (process.argv[2] === 'first') {
  void transaction(async () => { fs.writeFileSync(dir + '/in-tx', 'written inside'); fs.writeFileSync(dir + '/inside', ''); await new Promise(() => {}); });
} else {
  fs.writeFileSync(dir + '/after-restart', 'the next process');
  fs.writeFileSync(dir + '/ready', '');
}
`);
  const run = (arg: string): ReturnType<typeof spawn> => {
    const child = spawn(process.execPath, ['--require', PRELOAD, file, arg], { env: pair.env({ DATA: pair.primary, UNDERSTUDY_NAME: 'svc' }), stdio: 'ignore' });
    t.teardown(() => void child.kill('SIGKILL'));
    return child;
  };
  const first = run('first');
  await until('inside its transaction', () => fs.existsSync(path.join(pair.primary, 'inside')));
  await until('its entries in the stream', async () => /inside transaction/.test((await runCli(['status', '--nats', pair.server.url])).stdout));
  first.kill('SIGKILL');
  await new Promise((r) => first.once('close', r));
  run('second');
  await until('the next process writing', () => fs.existsSync(path.join(pair.primary, 'ready')));
  const cp = await runCli(['checkpoint', 'after', '--nats', pair.server.url]);
  t.is(cp.code, 0, cp.stderr);
  await until('after reached on the standby', async () => (await listed(pair)).some((c) => c.name === 'after' && c.state === 'reached'));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(fs.readFileSync(path.join(pair.standby, 'in-tx'), 'utf8'), 'written inside');
  t.notRegex((await runCli(['status', '--nats', pair.server.url])).stdout, /inside transaction/);
});

test.serial('two transactions open at once in one process, the primary killed with one of them open: promote applies the one that ended and the calls outside, and sets aside only the open one', async (t) => {
  const pair = await makePair('tx-two');
  t.teardown(() => pair.close());
  const stopFollowing = followUntilStopped(pair, t);
  const app = startApp(pair, `
const fs = require('fs');
const { transaction } = require(${JSON.stringify(REPO)});
const dir = process.env.DATA;
setInterval(() => undefined, 1000);
(async () => {
  let opened;
  const opening = new Promise((r) => (opened = r));
  void transaction(async () => { fs.writeFileSync(dir + '/t2-a', '2'); opened(); await new Promise(() => {}); });
  await opening;
  await transaction(async () => { fs.writeFileSync(dir + '/t1-a', '1'); await fs.promises.writeFile(dir + '/t1-b', '1'); });
  fs.writeFileSync(dir + '/outside', 'o');
  fs.writeFileSync(dir + '/ready', '');
})();
`, t);
  await until('both begun, one ended', () => fs.existsSync(path.join(pair.primary, 'ready')));
  await until('its entries in the stream', async () => /inside transaction/.test((await runCli(['status', '--nats', pair.server.url])).stdout));
  app.kill('SIGKILL');
  await stopFollowing();
  t.deepEqual(fs.readdirSync(pair.standby), [], 'nothing applied while t2 may still end');
  const p = await runCli(['promote', '--state', pair.state, '--root', `data=${pair.standby}`, '--nats', pair.server.url]);
  t.is(p.code, 0, p.stderr);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['outside', 'ready', 't1-a', 't1-b']);
  t.regex(p.stderr, /never ended on the primary: its 2 entries are set aside; the \d+ staged behind it that belong to no open transaction .* are applied/);
});
