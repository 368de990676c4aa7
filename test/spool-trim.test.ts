import test from 'ava';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startNatsServer } from './helpers/nats-server';
import { makePair, PRELOAD, REPO, runCli, type Pair } from './helpers/pair';
import { diffTrees } from './helpers/tree';
import { Replayer } from '../replayer/replayer';
import { parseRoots } from '../lib/roots';
import { listSegments, readJson, spoolFiles, type AckedState } from '../lib/spool';
import { tempFileOf } from '../lib/durable-file';

/**
 * The spool against the position the next process resumes from (acked.json): a trim must never
 * pass it, and a spool that begins later than it anyway must not stop shipping for good.
 * Small segments (UNDERSTUDY_SPOOL_SEGMENT_BYTES) give every few entries a segment of their own.
 */

const SMALL_SEGMENTS = { UNDERSTUDY_SPOOL_SEGMENT_BYTES: '2048' };
const API = JSON.stringify(path.join(REPO, 'dist', 'index.js'));

/** Fixture source: writes `n` files of 1 KiB named `prefix<i>` under the primary root. */
function writes(pair: Pair, prefix: string, n: number): string {
  return `const fs = require('fs'); const R = ${JSON.stringify(pair.primary)};
    for (let i = 0; i < ${n}; i++) fs.writeFileSync(R + '/${prefix}' + i, Buffer.alloc(1024, i));`;
}

/** A replayer applying as the agent ships (not a drain), so the agent's spool is trimmed as it goes. */
function liveReplayer(pair: Pair): { stop: () => Promise<void>; logged: () => string } {
  const abort = new AbortController();
  const lines: string[] = [];
  const done = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`),
    stateDir: pair.state, drain: false, log: (l) => lines.push(l), commitMs: 20,
  }).run(abort.signal);
  return { stop: async () => { abort.abort(); await done.catch(() => undefined); }, logged: () => lines.slice(-20).join('\n') };
}

const journalDir = (pair: Pair) => path.join(pair.spool, 'app');
const oldestSeg = (pair: Pair) => listSegments(journalDir(pair))[0]?.first ?? 1;
const savedAcked = (pair: Pair) => readJson<AckedState>(spoolFiles(journalDir(pair)).acked)?.seq ?? 0;

test.serial('a process killed while its acked position cannot be saved: the spool was not trimmed past it, and the next process ships everything', async (t) => {
  const pair = await makePair('trim-race');
  t.teardown(() => pair.close());
  const replayer = liveReplayer(pair);
  t.teardown(() => replayer.stop());
  // Every save of acked.json fails (strace fails the rename of its temporary file): the
  // extreme of "saved up to a second late". The fixture waits until the standby applied its 40
  // entries and, after that, one more: the worker, which handles the standby's positions one at
  // a time, has by then decided every trim the first 40 allowed.
  const script = path.join(pair.dir, 'first.js');
  fs.writeFileSync(script, `const { journalPosition } = require(${API});
    const until = (seq, then) => { const p = journalPosition(); if (p.applied >= seq) then(); else setTimeout(() => until(seq, then), 20); };
    process.stdout.write('pid ' + process.pid + '\\n');
    process.stdin.once('data', () => {
      ${writes(pair, 'f', 40)}
      until(40, () => { fs.writeFileSync(R + '/marker', 'm'); until(41, () => process.stdout.write('applied\\n')); });
    });`);
  const child = spawn(process.execPath, ['--require', PRELOAD, script], { env: pair.env(SMALL_SEGMENTS), stdio: ['pipe', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  /** Resolves once the fixture printed what `re` matches; fails if its shipper says it stopped. */
  const printed = (re: RegExp) => new Promise<RegExpExecArray>((resolve, reject) => {
    const look = () => {
      const m = re.exec(out);
      if (m !== null) resolve(m);
      if (/stopped/.test(err)) reject(new Error(`the first process's shipping stopped: ${err}`));
    };
    child.stdout.on('data', look);
    child.stderr.on('data', look);
    child.on('exit', () => reject(new Error(`the first process ended early: ${err}`)));
    look();
  });
  const pid = Number((await printed(/pid (\d+)\n/))[1]);
  // strace matches a rename by its first path: the temporary file the fixture's process writes acked.json through.
  const tmp = tempFileOf(spoolFiles(journalDir(pair)).acked, pid);
  const strace = spawn('strace', ['-f', '-o', '/dev/null', '-p', String(pid), '-P', tmp, '-e', 'trace=rename', '-e', 'inject=rename:error=EIO'], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => void strace.kill('SIGKILL'));
  await new Promise<void>((resolve, reject) => {
    let said = '';
    strace.stderr.on('data', (d: Buffer) => {
      said += d.toString();
      if (said.includes('attached')) resolve();
    });
    strace.on('exit', () => reject(new Error(`strace did not attach: ${said}`)));
  });
  child.stdin.write('go\n');
  await printed(/applied\n/);
  t.true(oldestSeg(pair) <= savedAcked(pair) + 1, `the spool still holds seq ${savedAcked(pair) + 1}, where the next process resumes (oldest segment ${oldestSeg(pair)})`);
  t.true(listSegments(journalDir(pair)).length > 10, 'the entries span many segments');
  t.regex(err, /cannot save its shipped position/);
  const closed = new Promise((resolve) => child.on('close', resolve));
  child.kill('SIGKILL');
  await closed;
  await replayer.stop();
  const second = await pair.runApp({ code: writes(pair, 'g', 3), env: SMALL_SEGMENTS });
  t.is(second.code, 0);
  t.is(second.stderr, '', 'nothing to say: nothing was lost');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a process SIGKILLed right after a trim while it writes: the spool still holds where the next one resumes', async (t) => {
  const pair = await makePair('trim-kill');
  t.teardown(() => pair.close());
  const replayer = liveReplayer(pair);
  t.teardown(() => replayer.stop());
  // A steady writer: the standby applies (and the spool is trimmed) while acked.json is saved
  // up to a second after the acknowledgement; the test looks after every trim. At 200 files a
  // second: at 800 (one 2 KiB segment file each) shipping fell behind on this 2-core VM under a
  // full run, trims came a few a minute, and the next process left a thousand entries to ship.
  const script = path.join(pair.dir, 'steady.js');
  fs.writeFileSync(script, `const fs = require('fs'); const R = ${JSON.stringify(pair.primary)}; let i = 0;
    const t = setInterval(() => { for (let k = 0; k < 4; k++, i++) fs.writeFileSync(R + '/f' + i, Buffer.alloc(1024, i)); }, 20);`);
  const child = spawn(process.execPath, ['--require', PRELOAD, script], { env: pair.env(SMALL_SEGMENTS), stdio: 'ignore' });
  t.teardown(() => void child.kill('SIGKILL'));
  const closed = new Promise((resolve) => child.on('close', resolve));
  let trims = 0;
  let oldest = 1;
  let broken: string | undefined;
  // Bounded: a standby that stops applying (or a spool that stops being trimmed) fails here by name, not by ava's timeout.
  for (const until = Date.now() + 60_000; trims < 10 && broken === undefined;) {
    if (Date.now() > until) throw new Error(`only ${trims} trims in 60 s: the standby stopped applying or the spool stopped being trimmed (oldest segment ${oldestSeg(pair)}, acked ${savedAcked(pair)}); the replayer said:\n${replayer.logged()}`);
    await new Promise((r) => setTimeout(r, 2));
    // Listed before acked.json is read: the saved position only grows, so a spool that begins
    // after it + 1 then began after it at the listing too.
    const now = oldestSeg(pair);
    const resume = savedAcked(pair) + 1;
    if (now > oldest) trims++;
    oldest = now;
    if (now > resume) broken = `the spool begins at ${now}, the next process resumes at ${resume}`;
  }
  child.kill('SIGKILL');
  await closed;
  await replayer.stop();
  t.is(broken, undefined, `${trims} trims looked at`);
  // A file written just before the kill may not have reached the spool (SIGKILL between the
  // write and its entry): the next process writes every file again, so the end state is known.
  const next = await pair.runApp({
    env: SMALL_SEGMENTS,
    code: `const fs = require('fs'); const R = ${JSON.stringify(pair.primary)};
      for (const f of fs.readdirSync(R)) fs.writeFileSync(R + '/' + f, fs.readFileSync(R + '/' + f));`,
  });
  t.is(next.code, 0);
  t.is(next.stderr, '');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('a spool trimmed past the acked position an earlier process saved: the next process goes on from its oldest segment', async (t) => {
  const pair = await makePair('trim-resume');
  t.teardown(() => pair.close());
  t.is((await pair.runApp({ code: writes(pair, 'f', 40), env: SMALL_SEGMENTS })).code, 0);
  await pair.drain();
  // A process with the journal's name follows the standby's applied position and trims.
  const replayer = liveReplayer(pair);
  t.teardown(() => replayer.stop());
  const trimmer = await pair.runApp({
    env: SMALL_SEGMENTS,
    code: `const fs = require('fs'); const dir = ${JSON.stringify(journalDir(pair))};
      const t = setInterval(() => { if (!fs.existsSync(dir + '/' + '1'.padStart(16, '0') + '.seg')) { clearInterval(t); } }, 20);`,
  });
  t.is(trimmer.code, 0);
  await replayer.stop();
  t.true(oldestSeg(pair) > 10, `trimmed (oldest segment ${oldestSeg(pair)})`);
  // What a kill right after a trim leaves when the acked position on disk is older (an earlier
  // agent saved it up to a second late): the spool begins after where the next process resumes.
  const acked = readJson<AckedState>(spoolFiles(journalDir(pair)).acked)!;
  fs.writeFileSync(spoolFiles(journalDir(pair)).acked, JSON.stringify({ ...acked, seq: 5 }));
  const next = await pair.runApp({ code: writes(pair, 'g', 3), env: SMALL_SEGMENTS });
  t.is(next.code, 0);
  t.is(next.stderr, '', 'the standby had applied what the spool lost: nothing to say');
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('entries a spool lost before they were shipped: shipping goes on, it is said once, and status says the standby differs', async (t) => {
  const pair = await makePair('spool-lost');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const first = await pair.runApp({ code: writes(pair, 'f', 30), env: { ...SMALL_SEGMENTS, UNDERSTUDY_EXIT_TIMEOUT_MS: '200' } });
  t.is(first.code, 0);
  // Two segments go missing from a spool nothing was shipped from.
  const segs = listSegments(journalDir(pair));
  for (const s of segs.slice(0, 2)) fs.rmSync(s.file);
  const gone = segs[2].first - 1;
  const server = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => server.stop());
  const second = await pair.runApp({ code: writes(pair, 'g', 3), env: SMALL_SEGMENTS });
  t.is(second.code, 0);
  const said = second.stderr.split('\n').filter((l) => l.includes('gone from the agent'));
  t.is(said.length, 1, second.stderr);
  t.regex(said[0], new RegExp(`entries 1\\.\\.${gone} were gone from the agent's spool \\(it begins at ${gone + 1}\\)`));
  await pair.drain();
  const missing = fs.readdirSync(pair.primary).filter((f) => !fs.existsSync(path.join(pair.standby, f)));
  t.true(missing.length > 0, 'the standby lacks what was lost');
  const status = await runCli(['status', '--nats', server.url]);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, new RegExp(`journal "app": standby differs: entries 1\\.\\.${gone} were gone from the agent's spool`));
  t.is((await runCli(['status', '--nats', server.url, '--max-lag', '1000'])).code, 1, 'monitoring sees it');
  const baseline = await runCli(['baseline', '--root', `data=${pair.primary}`, '--nats', server.url], { UNDERSTUDY_SPOOL_DIR: pair.spool });
  t.is(baseline.code, 0, baseline.stderr);
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  const after = await runCli(['status', '--nats', server.url]);
  t.notRegex(after.stdout, /standby differs/, 'a baseline after the loss mends it');
});
