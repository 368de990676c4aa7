import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, makePair, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const writeFiles = (pair: Pair, names: string[], journal = 'app') => pair.runApp({
  env: { UNDERSTUDY_NAME: journal },
  code: `const fs = require('fs'); for (const n of ${JSON.stringify(names)}) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/' + n, 'content of ' + n);`,
});

const replay = (pair: Pair, extra: string[], env: Record<string, string> = {}) =>
  runCli(['replay', '--root', `data=${pair.standby}`, '--nats', pair.server.url, ...extra], env);

test.serial('a second replayer on one --state refuses, naming the live one, and leaves its files alone; a dead one\'s lock is taken over', async (t) => {
  const pair = await makePair('lock');
  t.teardown(() => pair.close());
  t.is((await writeFiles(pair, ['a'])).code, 0);
  const first = spawn(process.execPath, [CLI, 'replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--nats', pair.server.url], { stdio: ['ignore', 'ignore', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => first.on('exit', (c) => resolve(c)));
  t.teardown(() => first.kill('SIGKILL'));
  for (const deadline = Date.now() + 60_000; !fs.existsSync(path.join(pair.standby, 'a'));) {
    if (Date.now() > deadline) throw new Error('the first replayer applied nothing');
    await sleep(50);
  }
  // What the live replayer may have in flight: a temporary file beside the object it replaces.
  const inFlight = path.join(pair.standby, '.understudy-0f0e0d0c-0b0a-4909-8807-060504030201.tmp');
  fs.writeFileSync(inFlight, 'half');
  const second = await replay(pair, ['--state', pair.state, '--drain']);
  t.is(second.code, 2, second.stderr);
  t.regex(second.stderr, new RegExp(`^understudy replay: --state \\S+ is in use by understudy replay \\(pid ${first.pid} on [^,]+, since [^)]+\\); one process per state directory: stop it, or give this one its own --state\\n$`));
  t.true(fs.existsSync(inFlight));
  fs.rmSync(inFlight);

  first.kill('SIGTERM');
  t.is(await exited, 0);
  t.false(fs.existsSync(path.join(pair.state, 'lock')));

  // A replayer that was killed leaves its lock; the next one takes it over (a pid that is gone,
  // or a pid now used by another process, told apart by its start time).
  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => dead.on('exit', resolve));
  for (const holder of [{ pid: dead.pid }, { pid: process.pid, start: '1' }]) {
    fs.writeFileSync(path.join(pair.state, 'lock'), JSON.stringify({ ...holder, host: os.hostname(), command: 'replay', since: '2026-01-01T00:00:00.000Z' }) + '\n');
    t.is((await writeFiles(pair, [`after-${holder.pid}`])).code, 0);
    const next = await replay(pair, ['--state', pair.state, '--drain']);
    t.is(next.code, 0, next.stderr);
    t.false(fs.existsSync(path.join(pair.state, 'lock')));
  }
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a root inside --state is refused, and so is --state inside a root', async (t) => {
  const pair = await makePair('inside');
  t.teardown(() => pair.close());
  const tree = path.join(pair.state, 'tree');
  const r = await runCli(['replay', '--root', `data=${tree}`, '--state', pair.state, '--nats', pair.server.url, '--drain']);
  t.is(r.code, 2, r.stderr);
  t.is(r.stderr, `understudy replay: root "data" (${tree}) lies inside --state ${pair.state}; the standby's tree and the replayer's state must be apart\n`);
  t.false(fs.existsSync(tree));
  const same = await runCli(['replay', '--root', `data=${pair.state}`, '--state', pair.state, '--nats', pair.server.url, '--drain']);
  t.is(same.code, 2, same.stderr);
  const below = await replay(pair, ['--state', path.join(pair.standby, 'state'), '--drain']);
  t.is(below.code, 2, below.stderr);
  t.regex(below.stderr, /^understudy replay: --state \S+ lies inside root "data" \(\S+\); the replayer's state must never be replicated over\n$/);
});

test.serial('replay and promote need --state: no state directory is made up under the home directory', async (t) => {
  const pair = await makePair('nostate');
  t.teardown(() => pair.close());
  const home = path.join(pair.dir, 'home');
  fs.mkdirSync(home);
  const env = { HOME: home, UNDERSTUDY_STATE_DIR: '' };
  for (const cmd of ['replay', 'promote']) {
    const r = await runCli([cmd, '--root', `data=${pair.standby}`, '--nats', pair.server.url, ...(cmd === 'replay' ? ['--drain'] : [])], env);
    t.is(r.code, 2, r.stderr);
    t.is(r.stderr, `understudy ${cmd}: ${cmd} needs --state DIR (or UNDERSTUDY_STATE_DIR): where this standby keeps its positions\n`);
  }
  t.deepEqual(fs.readdirSync(home), []);
  // The variable is enough.
  const ok = await replay(pair, ['--drain'], { HOME: home, UNDERSTUDY_STATE_DIR: pair.state });
  t.is(ok.code, 0, ok.stderr);
});

test.serial('a replayer filtered to one journal moves no other journal\'s position: a later replayer of all applies the others', async (t) => {
  const pair = await makePair('filter');
  t.teardown(() => pair.close());
  // Journal "two" writes between two writes of "one": a filtered reader of "one" reads past its messages.
  t.is((await writeFiles(pair, ['one-a'], 'one')).code, 0);
  t.is((await writeFiles(pair, ['two-a', 'two-b'], 'two')).code, 0);
  t.is((await writeFiles(pair, ['one-b'], 'one')).code, 0);
  const filtered = await pair.drain('one');
  t.is(filtered.applied, 2);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['one-a', 'one-b']);
  const all = await pair.drain();
  t.is(all.applied, 2);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  // And the filtered one goes on from its own position.
  t.is((await writeFiles(pair, ['one-c'], 'one')).code, 0);
  t.is((await pair.drain('one')).applied, 1);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('replay does not take UNDERSTUDY_NAME from the environment as a filter, and says so', async (t) => {
  const pair = await makePair('envname');
  t.teardown(() => pair.close());
  t.is((await writeFiles(pair, ['one-a'], 'one')).code, 0);
  t.is((await writeFiles(pair, ['two-a'], 'two')).code, 0);
  // A shared environment file gave the standby the agent's journal name.
  const r = await replay(pair, ['--state', pair.state, '--drain'], { UNDERSTUDY_NAME: 'one' });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /UNDERSTUDY_NAME=one in the environment is not a filter here: every journal is applied \(--name applies one\)/);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});
