import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, followReplayer, makePair, REPO, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';

const WORKLOAD = path.join(REPO, 'test', 'fixtures', 'shell-workload.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `understudy watch` on the pair's primary and resolves once its first scan is done. */
async function startWatch(pair: Pair, extraEnv: Record<string, string> = {}): Promise<{ child: ChildProcessWithoutNullStreams; stderr: () => string }> {
  const child = spawn(process.execPath, [CLI, 'watch', '--root', `data=${pair.primary}`, '--nats', pair.server.url, '--verbose'], {
    env: { ...process.env, UNDERSTUDY_SPOOL_DIR: pair.spool, ...extraEnv }, stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  for (let i = 0; !stderr.includes('watching'); i++) {
    if (i > 400 || child.exitCode !== null) throw new Error(`watch did not start: ${stderr}`);
    await sleep(25);
  }
  // What it said and what it journaled, for the message of a failing comparison.
  return { child, stderr: () => `${stderr}\njournaled:\n${stdout}` };
}

/** Drains until the standby equals the primary or `ms` passed; returns what still differs. */
async function settle(pair: Pair, ms: number): Promise<string[]> {
  const end = Date.now() + ms;
  let diff: string[] = [];
  while (Date.now() < end) {
    await sleep(300);
    await pair.drain();
    diff = diffTrees(pair.primary, pair.standby);
    if (diff.length === 0) return diff;
  }
  return diff;
}

function busyCores(): () => void {
  const spinners = Array.from({ length: os.availableParallelism() }, () =>
    spawn(process.execPath, ['-e', 'const end = Date.now() + 60000; while (Date.now() < end);'], { stdio: 'ignore' }));
  return () => spinners.forEach((s) => s.kill('SIGKILL'));
}

/** Runs the shell workload with `args` under a watched root (both cores busy if asked) and expects the standby to end equal. */
async function shellWorkload(t: ExecutionContext, args: string[], busy: boolean): Promise<void> {
  const pair = await makePair('watch-fidelity');
  t.teardown(() => pair.close());
  const w = await startWatch(pair);
  t.teardown(() => w.child.kill('SIGKILL'));
  const stop = busy ? busyCores() : () => undefined;
  t.teardown(stop);
  const script = spawnSync(process.execPath, [WORKLOAD, ...args]).stdout.toString();
  const sh = spawnSync('sh', ['-c', script], { cwd: pair.primary, encoding: 'utf8' });
  t.is(sh.status, 0, sh.stderr);
  stop();
  // Within one full pass (30 s) and a margin: events are a hint, and under a full run's load on two
  // cores a removal was once seen only by the full pass (seed 8, extras left under d/e for > 15 s).
  t.deepEqual(await settle(pair, 45_000), [], w.stderr());
}

const SEEDS = [1, 2, 3, 5, 8, 13, 21, 34];
for (const seed of SEEDS) {
  test.serial(`a seeded shell workload under a watched root (seed ${seed}${seed % 4 === 1 ? ', both cores busy' : ''}) ends on the standby`, async (t) => {
    await shellWorkload(t, [String(seed), '60'], seed % 4 === 1);
  });
}

// Races at one name, found by stress runs: a directory replaced by another had the standby drop
// the new one as stale (same millisecond as the removal), a directory replaced by `ln -s ..` was
// listed through the link and the standby stopped on an entry below it.
const RACE_SEEDS = [1, 6];
for (const seed of RACE_SEEDS) {
  test.serial(`a seeded shell workload of races at one name (seed ${seed}${seed % 2 === 1 ? ', both cores busy' : ''}) ends on the standby`, async (t) => {
    await shellWorkload(t, [String(seed), '30', 'races'], seed % 2 === 1);
  });
}

test.serial('past the inotify watch limit, the directories refused are polled, that is said once, and their changes arrive', async (t) => {
  if (spawnSync('strace', ['-V']).error !== undefined) return t.fail('strace is not installed (apt-get install strace)');
  const pair = await makePair('watch-limit');
  t.teardown(() => pair.close());
  for (let i = 0; i < 40; i++) fs.mkdirSync(path.join(pair.primary, `d${i}`, 'sub'), { recursive: true });
  const base = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(base.code, 0, base.stderr);
  // The kernel's limit, made for this one process: every inotify_add_watch after the 15th fails with ENOSPC.
  const child = spawn('strace', ['-f', '-qq', '-o', '/dev/null', '-e', 'trace=inotify_add_watch', '-e', 'inject=inotify_add_watch:error=ENOSPC:when=15+',
    process.execPath, CLI, 'watch', '--root', `data=${pair.primary}`, '--nats', pair.server.url], {
    env: { ...process.env, UNDERSTUDY_SPOOL_DIR: pair.spool }, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  // strace killed alone would leave its tracee running: the whole group goes.
  t.teardown(() => process.kill(-child.pid!, 'SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  for (let i = 0; !stderr.includes('watching'); i++) {
    if (i > 600) throw new Error(`watch did not start: ${stderr}`);
    await sleep(25);
  }
  for (let i = 0; i < 40; i++) fs.writeFileSync(path.join(pair.primary, `d${i}`, 'sub', 'f'), `file ${i}`);
  t.deepEqual(await settle(pair, 20_000), []);
  t.is(stderr.match(/the kernel will not watch/g)?.length, 1, stderr);
  t.regex(stderr, /fs\.inotify\.max_user_watches reached\); it and every other directory refused are polled every 1 s instead/);
});

test.serial('changes made while the watcher takes its first look at the tree are not lost', async (t) => {
  const pair = await makePair('watch-first-scan');
  t.teardown(() => pair.close());
  // A tree big enough that the first look takes a while, and a baseline of it.
  for (let i = 0; i < 300; i++) {
    fs.mkdirSync(path.join(pair.primary, `t${i % 30}`, `u${i}`), { recursive: true });
    fs.writeFileSync(path.join(pair.primary, `t${i % 30}`, `u${i}`, 'f'), `f${i}`);
  }
  const base = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(base.code, 0, base.stderr);
  const script = spawnSync(process.execPath, [WORKLOAD, '77', '80']).stdout.toString();
  // The script starts with the watcher, not after it.
  const sh = spawn('sh', ['-c', script], { cwd: pair.primary, stdio: 'ignore' });
  const shDone = new Promise((r) => sh.on('close', r));
  const w = await startWatch(pair);
  t.teardown(() => w.child.kill('SIGKILL'));
  await shDone;
  // The first look at 300 directories with the workload running, beside another test file on two
  // cores, once took longer than 15 s in a full run: within one full pass (30 s) and a margin.
  t.deepEqual(await settle(pair, 45_000), [], w.stderr());
});

test.serial('changes made after the baseline and before the watcher began are journaled; removals it cannot know of are said, by status too, until verify mends them', async (t) => {
  const pair = await makePair('watch-late-start');
  t.teardown(() => pair.close());
  for (let i = 0; i < 30; i++) {
    fs.mkdirSync(path.join(pair.primary, `t${i % 5}`, `u${i}`), { recursive: true });
    fs.writeFileSync(path.join(pair.primary, `t${i % 5}`, `u${i}`, 'f'), `f${i}`);
  }
  const base = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(base.code, 0, base.stderr);
  await pair.drain();
  // The whole workload runs before the watcher: a service restarted late, or a slow start under
  // load (a full CI run once let most of a script finish first). A renamed directory keeps its
  // children's times; so does one the baseline had, moved away.
  const script = spawnSync(process.execPath, [WORKLOAD, '77', '80']).stdout.toString();
  t.is(spawnSync('sh', ['-c', script], { cwd: pair.primary }).status, 0);
  fs.renameSync(path.join(pair.primary, 't1'), path.join(pair.primary, 'moved-t1'));
  fs.rmSync(path.join(pair.primary, 't2', 'u2'), { recursive: true });
  const w = await startWatch(pair);
  t.teardown(() => w.child.kill('SIGKILL'));
  t.regex(w.stderr(), /the first look journals what changed under data since its baseline "baseline" began/);
  t.regex(w.stderr(), /with no saved state, \d+ director(y|ies) changed after .* what was removed from them before this watch began is not known to it/);
  // What was made, changed or moved in is there; what was removed or moved away before it began is not known, and stays.
  const left = await settle(pair, 10_000);
  t.deepEqual(left.filter((d) => !d.startsWith('extra on standby: ')), [], left.join('\n'));
  t.true(left.includes('extra on standby: t2/u2') && left.includes('extra on standby: t1'), left.join('\n'));
  // status says so in words, not as lag, until a verify mends it.
  const said = async (): Promise<string> => (await runCli(['status', '--nats', pair.server.url])).stdout;
  let st = '';
  for (let i = 0; i < 100 && !/NOT SURE THE STANDBY IS EQUAL/.test(st); i++) {
    await sleep(200);
    st = await said();
  }
  t.regex(st, /watch "watch": .*NOT SURE THE STANDBY IS EQUAL: with no saved state, .*run "understudy verify --repair"/);
  t.teardown(followReplayer(pair));
  const v = await runCli(['verify', '--repair', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(v.code, 0, v.stdout + v.stderr);
  t.regex(v.stdout, /extra +data\/t2\/u2 +\(repaired\)/);
  t.regex(v.stdout, /equal after repairing/);
  for (let i = 0; i < 100 && diffTrees(pair.primary, pair.standby).length > 0; i++) await sleep(100);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.notRegex(await said(), /NOT SURE THE STANDBY IS EQUAL/);
});

test.serial('changes made while no watcher ran are journaled when it starts again', async (t) => {
  const pair = await makePair('watch-restart');
  t.teardown(() => pair.close());
  fs.mkdirSync(path.join(pair.primary, 'keep/deep'), { recursive: true });
  fs.writeFileSync(path.join(pair.primary, 'keep/deep/a'), 'a');
  fs.mkdirSync(path.join(pair.primary, 'doomed/inner'), { recursive: true });
  fs.writeFileSync(path.join(pair.primary, 'doomed/inner/b'), 'b');
  const base = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', pair.server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(base.code, 0, base.stderr);
  const first = await startWatch(pair);
  first.child.kill('SIGTERM');
  await new Promise((r) => first.child.on('close', r));
  // Nobody watches now.
  fs.writeFileSync(path.join(pair.primary, 'keep/deep/a'), 'changed while down');
  fs.rmSync(path.join(pair.primary, 'doomed'), { recursive: true });
  fs.mkdirSync(path.join(pair.primary, 'new'));
  fs.writeFileSync(path.join(pair.primary, 'new/c'), 'c');
  const again = await startWatch(pair);
  t.teardown(() => again.child.kill('SIGKILL'));
  t.deepEqual(await settle(pair, 10_000), [], again.stderr());
});
