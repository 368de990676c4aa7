import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { connect } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import { readState } from '../lib/state-bucket';
import type { Fence } from '../replayer/fence';
import type { PromotionStatus } from '../replayer/status/promotion';
import { CLI, PRELOAD, makePair, runCli, type Pair, type RunResult } from './helpers/pair';
import { startNatsServer } from './helpers/nats-server';
import { diffTrees, readTree } from './helpers/tree';

/** One standby: its tree, its --state and its name. */
interface Standby { name: string; dir: string; state: string }

/** A following `understudy replay` process, its log as it grows, and how it ended. */
interface Follower { log: () => string; ended: Promise<RunResult>; stop: () => Promise<RunResult> }

const standbyOf = (pair: Pair, name: string): Standby => {
  const s = { name, dir: path.join(pair.dir, `standby-${name}`), state: path.join(pair.dir, `state-${name}`) };
  fs.mkdirSync(s.dir, { recursive: true });
  return s;
};

const args = (s: Standby) => ['--root', `data=${s.dir}`, '--state', s.state, '--standby', s.name];
const cli = (pair: Pair, argv: string[]) => runCli(argv, { UNDERSTUDY_NATS_URL: pair.server.url });

/** Starts `understudy replay` following as standby `s`, stopped when the test ends. */
function follow(t: ExecutionContext, pair: Pair, s: Standby): Follower {
  const child = spawn(process.execPath, [CLI, 'replay', ...args(s)], { env: { ...process.env, UNDERSTUDY_NATS_URL: pair.server.url }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const ended = new Promise<RunResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  const stop = (): Promise<RunResult> => (child.kill('SIGTERM'), ended);
  t.teardown(async () => void (await stop()));
  return { log: () => stderr, ended, stop };
}

/** The primary application under the agent: writes `count` files (f<from>…), one every few ms, then stays until killed. */
function writer(pair: Pair, from: number, count: number, tag: string): { child: ChildProcess; wrote: (n: number) => Promise<void> } {
  const script = path.join(pair.dir, `writer-${tag}.js`);
  fs.writeFileSync(script, `const fs = require('fs');
let i = ${from};
const t = setInterval(() => {
  fs.writeFileSync(${JSON.stringify(pair.primary)} + '/f' + i, '${tag} ' + i);
  process.stdout.write(i + '\\n');
  if (++i === ${from + count}) clearInterval(t);
}, 3);
setInterval(() => {}, 1000);`);
  const child = spawn(process.execPath, ['--require', PRELOAD, script], { env: pair.env(), stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const wrote = (n: number) => until(() => out.split('\n').filter(Boolean).length >= n, `the writer to write ${n} files`);
  return { child, wrote };
}

/** Writes `names` (each file's content is its name and `tag`) under the agent, to completion. */
async function writeFiles(t: ExecutionContext, pair: Pair, names: string[], tag: string, lingerMs = 0): Promise<RunResult> {
  const r = await pair.runApp({ env: { UNDERSTUDY_EXIT_TIMEOUT_MS: '3000' }, code: `const fs = require('fs'); for (const n of ${JSON.stringify(names)}) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/' + n, n + ' ${tag}'); setTimeout(() => {}, ${lingerMs});` });
  t.is(r.code, 0, r.stderr);
  return r;
}

/** Waits for `ok`; after a minute it fails naming what it waited for (teardowns run, nothing is left running). */
async function until(ok: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (const giveUp = Date.now() + 60_000; !(await ok());) {
    if (Date.now() > giveUp) throw new Error(`still waiting for ${what} after a minute`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** How `f` ended, or after a minute an error naming what it waited for, with its log. */
async function endOf(f: Follower, what: string): Promise<RunResult> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still waiting for ${what} after a minute; its log:\n${f.log()}`)), 60_000)));
  try {
    return await Promise.race([f.ended, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a command printed as JSON; an error with all it printed when it is not JSON. */
function printedJson<T>(r: RunResult): T {
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
  }
}

/** Waits until the stream holds more than `seq`: what was written reached it. */
async function streamPast(jsm: JetStreamManager, seq: number): Promise<void> {
  await until(async () => (await jsm.streams.info('UNDERSTUDY')).state.last_seq > seq, `the stream to take entries past ${seq}`);
}

/** Waits until standby `name` has committed everything the stream holds. */
async function caughtUp(kv: KV, jsm: JetStreamManager, name: string): Promise<void> {
  await until(async () => ((await readState(kv, 'standby', name))?.streamSeq ?? -1) >= (await jsm.streams.info('UNDERSTUDY')).state.last_seq, `standby ${name} to commit the whole stream`);
}

async function bucket(t: ExecutionContext, pair: Pair): Promise<{ kv: KV; jsm: JetStreamManager }> {
  const nc = await connect({ servers: pair.server.url });
  t.teardown(() => nc.close());
  return { kv: await openStateKv(nc, 'UNDERSTUDY'), jsm: await jetstreamManager(nc) };
}

/** A pair whose primary is followed by two standbys, a and b, each a `replay` process. */
async function twoStandbys(t: ExecutionContext, label: string) {
  const pair = await makePair(label);
  t.teardown(() => pair.close());
  const { kv, jsm } = await bucket(t, pair);
  const [a, b] = [standbyOf(pair, 'a'), standbyOf(pair, 'b')];
  return { pair, kv, jsm, a, b, fa: follow(t, pair, a), fb: follow(t, pair, b) };
}

/** Stops follower `f` (standby `name`) once it has committed the whole stream. */
async function stopCaughtUp(t: ExecutionContext, kv: KV, jsm: JetStreamManager, f: Follower, name: string): Promise<void> {
  await caughtUp(kv, jsm, name);
  t.is((await f.stop()).code, 0);
}

/** The old primary writes `file` again under the agent: standby `s`, following as `f`, stops at it (entry `seq`) and never applies it. */
async function refusedBy(t: ExecutionContext, pair: Pair, jsm: JetStreamManager, f: Follower, s: Standby, file: string, seq: number): Promise<void> {
  const before = (await jsm.streams.info('UNDERSTUDY')).state.last_seq;
  await writeFiles(t, pair, [file], 'split brain');
  await streamPast(jsm, before);
  const ended = await endOf(f, `${s.name} to stop at the old primary's first entry past the fence`);
  t.is(ended.code, 1, ended.stderr);
  t.regex(ended.stderr, new RegExp(`split brain: journal app was fenced at .*; entry app\\.\\d+\\.${seq} came from the old primary afterwards`));
  t.false(fs.existsSync(path.join(s.dir, file)));
}

const fenceOf = (s: Standby): Fence => (JSON.parse(fs.readFileSync(path.join(s.state, 'fence.json'), 'utf8')) as Record<string, Fence>).app;
const label = (f: { e: number; s: number }) => `${f.e}.${f.s}`;

test.serial('promote on one standby fences the old primary for every standby; status says which became the primary', async (t) => {
  const { pair, kv, jsm, a, b, fa, fb } = await twoStandbys(t, 'failover');
  const app = writer(pair, 0, 100_000, 'first');
  t.teardown(() => app.child.kill('SIGKILL'));
  await app.wrote(150);
  // Mid-writing: what it spooled and did not ship yet is in doubt, and comes back with it later.
  app.child.kill('SIGKILL');
  await new Promise((resolve) => app.child.once('close', resolve));
  await stopCaughtUp(t, kv, jsm, fa, 'a');

  const p = await cli(pair, ['promote', '--json', ...args(a)]);
  t.is(p.code, 0, p.stderr);
  const report = printedJson<{ standby: string; journals: { fence: Fence }[] }>(p);
  t.is(report.standby, 'a');
  const fence = fenceOf(a);
  t.like(fence, { standby: 'a' });
  t.deepEqual(await readState(kv, 'fence', 'app'), fence);
  const atPromotion = readTree(a.dir);
  // One entry per file written: a holds exactly what the stream had of the killed primary.
  t.true(fence.s > 0);
  t.is(atPromotion.size, fence.s);

  // b learns of it from the state bucket while following, and says so once, with where it stands.
  await until(() => /THE PRIMARY WAS FENCED/.test(fb.log()), 'b to say the primary was fenced');
  await caughtUp(kv, jsm, 'b');
  t.regex(fb.log(), new RegExp(`THE PRIMARY WAS FENCED: standby a \\(on \\S+\\) was promoted to primary at ${fence.at.replace(/\./g, '\\.')}: journal app fenced at ${label(fence)}\\. ` +
    `This standby \\(b\\) follows a fenced primary: it applies the old primary's entries up to each fence and refuses every later one \\(split brain, quarantined\\)\\. ` +
    `Here: app at ${label(fence)} \\(at the fence\\)\\. Point this standby at the new primary`));
  t.is(fb.log().match(/THE PRIMARY WAS FENCED/g)?.length, 1);
  t.deepEqual(fenceOf(b), fence);

  // The old primary comes back under the agent, same journal, and writes more: both refuse it.
  // It lingers long enough to read the fence (its agent says so once).
  const before = (await jsm.streams.info('UNDERSTUDY')).state.last_seq;
  const late = await writeFiles(t, pair, ['late-1', 'late-2'], 'split brain', 1500);
  await streamPast(jsm, before);
  t.regex(late.stderr, new RegExp(`journal "app" was fenced at ${label(fence)} by the promotion of standby a \\(on \\S+\\)`));
  const bEnded = await endOf(fb, 'b to stop at the old primary\'s first entry past the fence');
  t.is(bEnded.code, 1, bEnded.stderr);
  t.regex(bEnded.stderr, new RegExp(`split brain: journal app was fenced at ${label(fence)} by the promotion of standby a \\(on \\S+\\) at \\S+; entry app\\.\\d+\\.\\d+ came from the old primary afterwards; quarantined in`));
  const aAgain = await cli(pair, ['replay', '--drain', ...args(a)]);
  t.is(aAgain.code, 1);
  t.regex(aAgain.stderr, /split brain: journal app was fenced at .* came from the old primary afterwards/);
  // Both stopped at the fence: b's tree is a's at the promotion, file by file, and neither has the late files.
  t.deepEqual(diffTrees(a.dir, b.dir), []);
  t.deepEqual([...readTree(a.dir)], [...atPromotion]);
  t.false(fs.existsSync(path.join(b.dir, 'late-1')));

  const status = await cli(pair, ['status']);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, new RegExp(`^standby a was promoted to primary at ${fence.at.replace(/\./g, '\\.')} on \\S+ \\(fenced app at ${label(fence)}\\); the old primary's later entries are refused by every standby$`, 'm'));
  t.regex(status.stdout, new RegExp(`^standby b follows the fenced primary and stopped at the fence \\(app ${label(fence)}\\): point it at the new primary$`, 'm'));
  const json = printedJson<{ promotion: PromotionStatus }>(await cli(pair, ['status', '--json']));
  t.deepEqual(json.promotion, {
    promoted: [{ standby: 'a', host: fence.by, at: fence.at, journals: [{ journal: 'app', fence: label(fence) }] }],
    standbys: [{ standby: 'b', host: fence.by, stands: 'at the fence', journals: [{ journal: 'app', applied: label(fence), fence: label(fence), stands: 'at the fence' }] }],
  });
  // At the fence is no difference: only lag could make --max-lag fail, and it is given room.
  t.is((await cli(pair, ['status', '--max-lag', '1000000'])).code, 0);
});

test.serial('a standby behind the fence when it learns of it applies up to the fence and no further', async (t) => {
  const { pair, kv, jsm, a, b, fa, fb } = await twoStandbys(t, 'behind');
  await writeFiles(t, pair, ['one', 'two'], 'first');
  await stopCaughtUp(t, kv, jsm, fb, 'b');
  await writeFiles(t, pair, ['three', 'four', 'five'], 'second');
  await stopCaughtUp(t, kv, jsm, fa, 'a');
  t.is((await cli(pair, ['promote', ...args(a)])).code, 0);
  const fence = fenceOf(a);
  // The old primary writes on before b starts again: the stream holds entries past the fence for b to meet.
  const before = (await jsm.streams.info('UNDERSTUDY')).state.last_seq;
  await writeFiles(t, pair, ['six', 'two'], 'split brain');
  await streamPast(jsm, before);

  const again = follow(t, pair, b);
  const ended = await endOf(again, 'b to stop at the old primary\'s first entry past the fence');
  t.is(ended.code, 1, ended.stderr);
  t.regex(ended.stderr, new RegExp(`THE PRIMARY WAS FENCED: standby a \\(on \\S+\\) was promoted .*Here: app at \\d+\\.2 \\(behind the fence: it goes on applying up to it\\)`));
  t.regex(ended.stderr, new RegExp(`split brain: journal app was fenced at ${label(fence)} .*; entry app\\.\\d+\\.${fence.s + 1} came from the old primary afterwards`));
  // Up to the fence (three, four, five) and not past it (six, and two as the old primary rewrote it).
  t.deepEqual(diffTrees(a.dir, b.dir), []);
  t.is(fs.readFileSync(path.join(b.dir, 'five'), 'utf8'), 'five second');
  t.is(fs.readFileSync(path.join(b.dir, 'two'), 'utf8'), 'two first');
  t.false(fs.existsSync(path.join(b.dir, 'six')));
  t.like(await readState(kv, 'standby', 'b'), { journals: { app: { e: fence.e, s: fence.s } } });
});

test.serial('a standby ahead of the fence says it holds changes the new primary lacks, keeps them, and status says so', async (t) => {
  const { pair, kv, jsm, a, b, fa, fb } = await twoStandbys(t, 'ahead');
  await writeFiles(t, pair, ['one', 'two'], 'first');
  await stopCaughtUp(t, kv, jsm, fa, 'a');
  // Async mode: the primary goes on; b applies what a never read.
  await writeFiles(t, pair, ['three', 'four', 'five'], 'second');
  await caughtUp(kv, jsm, 'b');
  // And the stream no longer has it for a (as for a standby marked lost and trimmed past, or a
  // server that lost its unflushed tail): what a can get at promotion ends before what b applied.
  const last = (await jsm.streams.info('UNDERSTUDY')).state.last_seq;
  await jsm.streams.purge('UNDERSTUDY', { seq: last + 1 });

  const p = await cli(pair, ['promote', ...args(a)]);
  t.is(p.code, 0, p.stderr);
  t.regex(p.stdout, /IN DOUBT: 3 entries/);
  const fence = fenceOf(a);
  t.is(fence.s, 2);
  const bAt = (await readState(kv, 'standby', 'b'))!.journals.app;
  t.is(bAt.s, 5);
  await until(() => /HOLDS CHANGES/.test(fb.log()), 'b to say it holds changes the new primary lacks');
  t.regex(fb.log(), /Here: app at \d+\.5 \(AHEAD of the fence\)/);
  t.regex(fb.log(), new RegExp(`THIS STANDBY HOLDS CHANGES THE NEW PRIMARY DOES NOT HAVE: journal app was applied here up to ${label(bAt)}, 3 entries past the fence at ${label(fence)}\\. They are kept, not rolled back`));
  // Not rolled back: b still equals the old primary, a lacks the three.
  t.deepEqual(diffTrees(pair.primary, b.dir), []);
  t.false(fs.existsSync(path.join(a.dir, 'five')));

  const status = await cli(pair, ['status']);
  t.regex(status.stdout, new RegExp(`^standby b HOLDS CHANGES THE NEW PRIMARY LACKS: app applied to ${label(bAt)}, 3 entries past the fence at ${label(fence)}; they were not rolled back`, 'm'));
  const json = printedJson<{ promotion: PromotionStatus }>(await cli(pair, ['status', '--json']));
  t.like(json.promotion.standbys[0], { standby: 'b', stands: 'ahead', journals: [{ journal: 'app', applied: label(bAt), fence: label(fence), stands: 'ahead', past: 3 }] });
  // A difference, not lag: --max-lag fails however much lag it allows.
  const monitored = await cli(pair, ['status', '--max-lag', '1000000']);
  t.is(monitored.code, 1, monitored.stdout);
  // Ahead or not, what the old primary sends after the promotion is refused here too.
  await refusedBy(t, pair, jsm, fb, b, 'six', 6);
});

test.serial('a standby that followed through a restart of NATS still hears of a promotion, and refuses past it', async (t) => {
  const { pair, kv, jsm, a, b, fa, fb } = await twoStandbys(t, 'outage');
  await writeFiles(t, pair, ['one', 'two'], 'first');
  await stopCaughtUp(t, kv, jsm, fa, 'a');
  await caughtUp(kv, jsm, 'b');
  await pair.server.stop();
  const again = await startNatsServer({ storeDir: pair.server.storeDir, port: pair.server.port });
  t.teardown(() => again.stop());
  t.is((await cli(pair, ['promote', ...args(a)])).code, 0);
  const fence = fenceOf(a);
  await until(() => /THE PRIMARY WAS FENCED/.test(fb.log()), 'b to say the primary was fenced');
  t.regex(fb.log(), new RegExp(`THE PRIMARY WAS FENCED: standby a \\(on \\S+\\) was promoted to primary at \\S+: journal app fenced at ${label(fence)}\\.`));
  // The test's own connection may still be reconnecting: a new one.
  await refusedBy(t, pair, (await bucket(t, pair)).jsm, fb, b, 'three', 3);
});
