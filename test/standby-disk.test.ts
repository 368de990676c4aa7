import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { openStateKv } from '../lib/nats';
import { readState } from '../lib/state-bucket';
import { CLI, makePair, runCli, type Pair, type RunResult } from './helpers/pair';
import { diffTrees } from './helpers/tree';

// Faults the standby's disk cannot be made to have here (no device mapper): strace makes one
// chosen syscall on one chosen file fail with EIO, without running it.
const HAS_STRACE = spawnSync('strace', ['-V']).status === 0;
const maybe = HAS_STRACE ? test.serial : test.serial.skip;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A fault: `syscall` on `file` fails with EIO the first time (per thread: the replayer is given one pool thread). */
interface Fault { file: string; syscall: 'fsync' | 'pwrite64' | 'fdatasync'; always?: boolean }

function straceArgs(fault: Fault, log: string): string[] {
  return ['-f', '-qq', '-y', '-o', log, '-P', fault.file, '-e', `trace=${fault.syscall}`, '-e', `inject=${fault.syscall}:error=EIO${fault.always === true ? '' : ':when=1'}`];
}

function replayArgs(pair: Pair, drain: boolean): string[] {
  return [CLI, 'replay', '--root', `data=${pair.standby}`, '--state', pair.state, '--nats', pair.server.url, ...(drain ? ['--drain'] : [])];
}

const childEnv = { ...process.env, UV_THREADPOOL_SIZE: '1' };

/** `understudy replay --drain` with `fault` injected. */
function drainWithFault(pair: Pair, fault: Fault, log: string): Promise<RunResult> {
  return collect(spawn('strace', [...straceArgs(fault, log), process.execPath, ...replayArgs(pair, true)], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** The replayer strace runs (strace does not pass a SIGTERM on to it; it also forks short-lived probes of its own). */
async function tracee(strace: ReturnType<typeof spawn>): Promise<number> {
  const cmdline = (pid: string): string => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      return '';
    }
  };
  for (;;) {
    const kids = fs.readdirSync(`/proc/${strace.pid}/task`).flatMap((tid) => fs.readFileSync(`/proc/${strace.pid}/task/${tid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean));
    // A probe is a fork of strace (its command line is strace's); the replayer has exec'd node.
    const replayer = kids.find((k) => cmdline(k).split('\0')[0] === process.execPath);
    if (replayer !== undefined) return Number(replayer);
    await sleep(20);
  }
}

/** Starts `understudy replay` (following) under strace with `fault`; `stop` sends it SIGTERM and collects what it said. */
async function followWithFault(pair: Pair, fault: Fault, log: string): Promise<{ stop: () => Promise<RunResult>; exited: () => boolean }> {
  const child = spawn('strace', [...straceArgs(fault, log), process.execPath, ...replayArgs(pair, false)], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const result = collect(child);
  let done = false;
  void result.then(() => (done = true));
  const pid = await tracee(child);
  return {
    stop: async () => {
      if (!done) process.kill(pid, 'SIGTERM');
      return result;
    },
    exited: () => done,
  };
}

function collect(child: ReturnType<typeof spawn>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** The first line of a position file under --state, or undefined when there is none. */
function positionFile(pair: Pair, file: 'committed.json' | 'positions.json'): { streamSeq: number; journals: Record<string, { s: number }> } | undefined {
  const p = path.join(pair.state, file);
  if (!fs.existsSync(p)) return undefined;
  const first = fs.readFileSync(p, 'utf8').split('\n')[0];
  return first === '' ? undefined : JSON.parse(first);
}

/** The applied position the replayer published for `name` (what strong mode and spool trimming go by). */
async function published(pair: Pair, name: string): Promise<number> {
  const nc = await connect({ servers: pair.server.url });
  try {
    const kv = await openStateKv(nc, 'UNDERSTUDY');
    return (await readState(kv, 'applied', name))?.s ?? 0;
  } finally {
    await nc.close();
  }
}

/** Waits until `cond` holds; fails the test with `what` after a minute (never a timing assertion). */
async function until(what: string, cond: () => Promise<boolean> | boolean): Promise<void> {
  for (const deadline = Date.now() + 60_000; !(await cond());) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const writeFiles = (pair: Pair, names: string[]) => pair.runApp({
  code: `const fs = require('fs'); for (const n of ${JSON.stringify(names)}) fs.writeFileSync(${JSON.stringify(pair.primary)} + '/' + n, 'content of ' + n);`,
});

maybe('a failed fsync on the standby is not committed nor reported; --drain says which file and why; the next drain applies it again', async (t) => {
  const pair = await makePair('fsync-eio');
  t.teardown(() => pair.close());
  t.is((await writeFiles(pair, ['a', 'b', 'f', 'c'])).code, 0);
  const failed = await drainWithFault(pair, { file: path.join(pair.standby, 'f'), syscall: 'fsync' }, path.join(pair.dir, 'strace.log'));
  t.is(failed.code, 1, failed.stderr);
  t.regex(failed.stderr, /^understudy replay: fsync of \S+\/f \(changed by entry app\.\d+\.3\) failed: EIO: i\/o error, fsync; nothing applied since the last good commit \(stream position \d+\) is reported applied\n$/);
  t.regex(fs.readFileSync(path.join(pair.dir, 'strace.log'), 'utf8'), /fsync\(\d+<[^>]*\/f>\) += -1 EIO .*INJECTED/);
  // Neither file under --state, nor the published position, covers the entry whose file failed.
  const committed = positionFile(pair, 'committed.json')?.journals.app?.s ?? 0;
  t.true(committed < 3, `committed.json claims ${committed}`);
  t.true((positionFile(pair, 'positions.json')?.journals.app?.s ?? 0) <= committed);
  t.true((await published(pair, 'app')) < 3);
  // status says so, in words, rather than showing lag alone.
  const st = await runCli(['status', '--nats', pair.server.url, '--max-lag', '100']);
  t.is(st.code, 1, st.stdout + st.stderr);
  t.regex(st.stdout, /journal app: STANDBY FAILING: its disk failed \(fsync of \S+\/f \(changed by entry app\.\d+\.3\) failed: EIO: i\/o error, fsync\); nothing past applied \d+ is on it for sure/);

  // The fault is gone: the restarted replayer resumes from the last good commit and writes it all again.
  const again = await runCli(replayArgs(pair, true).slice(1));
  t.is(again.code, 0, again.stderr);
  t.regex(again.stderr, new RegExp(`applied ${4 - committed} entries`));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(positionFile(pair, 'committed.json')?.journals.app?.s, 4);
  t.is(await published(pair, 'app'), 4);
  const healed = await runCli(['status', '--nats', pair.server.url, '--max-lag', '100']);
  t.is(healed.code, 0, healed.stdout + healed.stderr);
  t.notRegex(healed.stdout, /FAILING/);
});

// The usual save (write a temporary name, rename it over the real one) and a directory renamed
// after a file was made in it: an fsync by the path written would find nothing by commit time.
// The fault is on the name each has when the commit runs, so only an fsync of that inode meets it.
maybe('a file written and renamed before the commit is fsynced under its new name, and its failure is not committed', async (t) => {
  const pair = await makePair('fsync-renamed');
  t.teardown(() => pair.close());
  const app = `const fs = require('fs'); const d = ${JSON.stringify(pair.primary)};
    fs.writeFileSync(d + '/a', 'a'); fs.writeFileSync(d + '/f.tmp', 'saved'); fs.renameSync(d + '/f.tmp', d + '/f');`;
  t.is((await pair.runApp({ code: app })).code, 0);
  const failed = await drainWithFault(pair, { file: path.join(pair.standby, 'f'), syscall: 'fsync' }, path.join(pair.dir, 'strace.log'));
  t.is(failed.code, 1, failed.stderr);
  t.regex(failed.stderr, /^understudy replay: fsync of \S+\/f \(changed by entry app\.\d+\.2\) failed: EIO: i\/o error, fsync; nothing applied since the last good commit/);
  t.true((positionFile(pair, 'committed.json')?.journals.app?.s ?? 0) < 3);
  t.true((await published(pair, 'app')) < 3);
  const again = await runCli(replayArgs(pair, true).slice(1));
  t.is(again.code, 0, again.stderr);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(positionFile(pair, 'committed.json')?.journals.app?.s, 3);
});

maybe('a directory renamed after a file was made in it is fsynced under its new name, and so is the file', async (t) => {
  const pair = await makePair('fsync-dir-renamed');
  t.teardown(() => pair.close());
  const app = `const fs = require('fs'); const d = ${JSON.stringify(pair.primary)};
    fs.mkdirSync(d + '/d'); fs.writeFileSync(d + '/d/x', 'x'); fs.renameSync(d + '/d', d + '/e');`;
  t.is((await pair.runApp({ code: app })).code, 0);
  const dir = await drainWithFault(pair, { file: path.join(pair.standby, 'e'), syscall: 'fsync' }, path.join(pair.dir, 'strace-dir.log'));
  t.is(dir.code, 1, dir.stderr);
  t.regex(dir.stderr, /^understudy replay: fsync of \S+\/e \(changed by entry app\.\d+\.2\) failed: EIO/);
  const file = await drainWithFault(pair, { file: path.join(pair.standby, 'e', 'x'), syscall: 'fsync' }, path.join(pair.dir, 'strace-file.log'));
  t.is(file.code, 1, file.stderr);
  t.regex(file.stderr, /^understudy replay: fsync of \S+\/e\/x \(changed by entry app\.\d+\.2\) failed: EIO/);
  t.true((await published(pair, 'app')) < 3);
  const again = await runCli(replayArgs(pair, true).slice(1));
  t.is(again.code, 0, again.stderr);
  // Applied again, the rename finds e holding x, made by the entry after it: that is no difference from the primary.
  t.notRegex(file.stderr + again.stderr, /may differ/);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

maybe('a following replayer whose fsync failed applies again from the last good commit and fsyncs the file before it reports it', async (t) => {
  const pair = await makePair('fsync-follow');
  t.teardown(() => pair.close());
  const log = path.join(pair.dir, 'strace.log');
  const target = path.join(pair.standby, 'f');
  const replay = await followWithFault(pair, { file: target, syscall: 'fsync' }, log);
  t.teardown(() => void replay.stop());
  t.is((await writeFiles(pair, ['a', 'f', 'b'])).code, 0);
  await until('the published position to cover all three entries', async () => replay.exited() || (await published(pair, 'app')) === 3);
  const r = await replay.stop();
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, /fsync of \S+\/f \(changed by entry app\.\d+\.2\) failed: EIO: i\/o error, fsync; nothing applied since the last good commit \(stream position \d+\) is reported applied; applying it again from there/);
  t.regex(r.stderr, /applied and fsynced again; positions are recorded from stream position \d+ on/);
  // The file was fsynced successfully after the failure, before the position covering it was published.
  const calls = fs.readFileSync(log, 'utf8').split('\n').filter((l) => l.includes('fsync('));
  const failedAt = calls.findIndex((l) => /INJECTED/.test(l));
  t.true(failedAt >= 0, calls.join('\n'));
  t.true(calls.slice(failedAt + 1).some((l) => /\/f>\) += 0$/.test(l)), calls.join('\n'));
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(positionFile(pair, 'committed.json')?.journals.app?.s, 3);
});

maybe('a failed write on the standby: --drain stops naming the entry; a following replayer writes it again and goes on', async (t) => {
  const pair = await makePair('write-eio');
  t.teardown(() => pair.close());
  const target = path.join(pair.standby, 'f');
  const app = `const fs = require('fs'); const f = ${JSON.stringify(path.join(pair.primary, 'f'))};
    fs.writeFileSync(f, 'first\\n'); fs.appendFileSync(f, 'second\\n'); fs.appendFileSync(f, 'third\\n');`;
  t.is((await pair.runApp({ code: app })).code, 0);
  // The put goes through a temporary file; the appends write into f itself: the first of them fails.
  const failed = await drainWithFault(pair, { file: target, syscall: 'pwrite64' }, path.join(pair.dir, 'strace-drain.log'));
  t.is(failed.code, 1, failed.stderr);
  t.regex(failed.stderr, /^understudy replay: entry app\.\d+\.2 \(append data\/f, stream message \d+\) failed: EIO EIO: i\/o error, write; nothing applied since the last good commit \(stream position \d+\) is reported applied\n$/);
  t.true((positionFile(pair, 'committed.json')?.journals.app?.s ?? 0) < 2);
  t.true((await published(pair, 'app')) < 2);

  // The same fault under a following replayer: it does not stop, and the standby ends equal.
  const log = path.join(pair.dir, 'strace-follow.log');
  const replay = await followWithFault(pair, { file: target, syscall: 'pwrite64' }, log);
  t.teardown(() => void replay.stop());
  await until('the published position to cover all three entries, or the replayer to stop', async () => replay.exited() || (await published(pair, 'app')) === 3);
  t.false(replay.exited(), 'the replayer stopped');
  const r = await replay.stop();
  t.is(r.code, 0, r.stderr);
  t.regex(fs.readFileSync(log, 'utf8'), /pwrite64\(\d+<[^>]*\/f>.*INJECTED/);
  t.regex(r.stderr, /entry app\.\d+\.2 \(append data\/f, stream message \d+\) failed: EIO .*; applying it again from there/);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(fs.readFileSync(target, 'utf8'), 'first\nsecond\nthird\n');
});

maybe('committed.json that cannot be made durable: --drain exits 1 with one line naming it, and the next drain records everything', async (t) => {
  const pair = await makePair('commit-eio');
  t.teardown(() => pair.close());
  t.is((await writeFiles(pair, ['a', 'b'])).code, 0);
  const committedFile = path.join(pair.state, 'committed.json');
  fs.mkdirSync(pair.state, { recursive: true });
  fs.writeFileSync(committedFile, '');
  const failed = await drainWithFault(pair, { file: committedFile, syscall: 'fdatasync', always: true }, path.join(pair.dir, 'strace.log'));
  t.is(failed.code, 1, failed.stderr);
  t.regex(failed.stderr, /understudy replay: EIO: i\/o error, fdatasync in \S+\/committed\.json\n$/);
  t.notRegex(failed.stderr, /^\s+at /m);
  t.true((await published(pair, 'app')) < 2);
  const again = await runCli(replayArgs(pair, true).slice(1));
  t.is(again.code, 0, again.stderr);
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(positionFile(pair, 'committed.json')?.journals.app?.s, 2);
});
