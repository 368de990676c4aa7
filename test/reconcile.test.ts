import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Reconciler } from '../agent/reconcile';
import { Snapshotter } from '../agent/snapshot';
import { Watcher } from '../agent/watcher';
import { parseRoots } from '../lib/roots';
import { MemorySink } from './helpers/memory-sink';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A real tree, the in-memory sink, and a reconciler with no watcher at all: every change is one no event announced. */
function setUp(t: { teardown(fn: () => void): void }, snapshotter = (sink: MemorySink) => new Snapshotter(sink)) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-reconcile-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const tree = path.join(dir, 'tree');
  fs.mkdirSync(path.join(tree, 'keep/deep'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'keep/deep/a'), 'a');
  fs.writeFileSync(path.join(tree, 'old'), 'old');
  const sink = new MemorySink();
  const seen: string[] = [];
  sink.onRecord = (c) => seen.push(`${c.op.op} ${c.path}`);
  const rec = new Reconciler(parseRoots(`data=${tree}`), snapshotter(sink), () => false,
    { settleMs: 50, fullPassEveryMs: 300, objectsPerSecond: 100_000, pollMs: 100 });
  t.teardown(() => rec.close());
  return { tree, rec, seen };
}


/** A watcher as inside an application (UNDERSTUDY_WATCH=1: told of what the agent journals), on a fresh tree, started. */
async function inAppWatcher(t: { teardown(fn: () => void): void }, fill: (dir: string) => void = () => undefined): Promise<{ dir: string; sink: MemorySink; watcher: Watcher }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-reconcile-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fill(dir);
  const sink = new MemorySink();
  const watcher = new Watcher(parseRoots(`data=${dir}`), sink, {
    persistent: false, excluded: () => false, stateFile: path.join(dir, '..', `${path.basename(dir)}.state`),
    pace: { settleMs: 50, fullPassEveryMs: 60_000 },
  });
  t.teardown(() => watcher.close());
  await watcher.start();
  return { dir, sink, watcher };
}

test('the first look journals nothing that was there before it (the baseline has it)', async (t) => {
  const { rec, seen } = setUp(t);
  await rec.learn(() => Date.now() + 1000);
  t.deepEqual(seen, []);
});

test('a change no event announced is mended by the next full pass, and the pass says so', async (t) => {
  const { tree, rec, seen } = setUp(t);
  await rec.learn(() => Date.now() + 1000);
  fs.mkdirSync(path.join(tree, 'new/inner'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'new/inner/x'), 'x');
  fs.rmSync(path.join(tree, 'old'));
  fs.writeFileSync(path.join(tree, 'keep/deep/a'), 'changed');
  for (let i = 0; i < 100 && (rec.lastPass === undefined || rec.lastPass.mended === 0); i++) await sleep(50);
  t.truthy(rec.lastPass, 'a full pass ended');
  t.deepEqual([...seen].sort(), ['mkdir new', 'mkdir new/inner', 'put keep/deep/a', 'put new/inner/x', 'rm old']);
  t.is(rec.lastPass!.mended, 5);
});

test('an event on a directory journals a subtree renamed into it whole, however fast it was filled', async (t) => {
  const { tree, rec, seen } = setUp(t);
  await rec.learn(() => Date.now() + 1000);
  fs.mkdirSync(path.join(tree, 'keep/b/c'), { recursive: true });
  fs.writeFileSync(path.join(tree, 'keep/b/c/x.txt'), 'one');
  fs.renameSync(path.join(tree, 'keep/b'), path.join(tree, 'keep/moved'));
  fs.symlinkSync('moved/c/x.txt', path.join(tree, 'keep/link'));
  rec.touch(path.join(tree, 'keep/moved'));
  for (let i = 0; i < 40 && seen.length < 4; i++) await sleep(25);
  t.deepEqual([...seen].sort(), ['mkdir keep/moved', 'mkdir keep/moved/c', 'put keep/moved/c/x.txt', 'symlink keep/link']);
});

test('what a full pass mended stays counted after later passes that mended nothing', async (t) => {
  const { tree, rec, seen } = setUp(t);
  await rec.learn(() => Date.now() + 1000);
  fs.writeFileSync(path.join(tree, 'keep/deep/a'), 'changed');
  for (let i = 0; i < 100 && (rec.lastPass === undefined || rec.lastPass.mended === 0); i++) await sleep(50);
  const mending = rec.lastPass!.startedAt;
  for (let i = 0; i < 100 && rec.lastPass!.startedAt === mending; i++) await sleep(50);
  t.not(rec.lastPass!.startedAt, mending, 'a later pass ended');
  t.is(rec.lastPass!.mended, 0, 'the later pass found nothing');
  t.deepEqual(seen, ['put keep/deep/a']);
  t.is(rec.mendedTotal, 1);
});

test('a directory removed and made again between the listing and the read is journaled removed first, then whole', async (t) => {
  const deep = { abs: '', raced: false };
  // `rm -rf deep && mkdir deep` from a shell, landing just after the reconciler looked (CI once
  // saw this: the new directory was journaled as a mkdir, and the standby kept the old one's files).
  const race = (rel: string): void => {
    if (rel !== 'keep/deep' || deep.raced || deep.abs === '') return;
    deep.raced = true;
    fs.mkdirSync(deep.abs);
    fs.writeFileSync(path.join(deep.abs, 'b'), 'b');
  };
  const { tree, rec, seen } = setUp(t, (sink) => new (class extends Snapshotter {
    override snapshot(root: string, rel: string, abs: string, removeWhenAbsent?: boolean) {
      race(rel);
      return super.snapshot(root, rel, abs, removeWhenAbsent);
    }
    override removed(root: string, rel: string): void {
      race(rel);
      super.removed(root, rel);
    }
  })(sink));
  await rec.learn(() => Date.now() + 1000);
  deep.abs = path.join(tree, 'keep/deep');
  fs.rmSync(deep.abs, { recursive: true });
  rec.touch(deep.abs);
  for (let i = 0; i < 40 && seen.length < 3; i++) await sleep(25);
  t.true(deep.raced, 'the directory was made again in the middle of the reconciler');
  t.deepEqual(seen, ['rm keep/deep', 'mkdir keep/deep', 'put keep/deep/b']);
});

test('a directory replaced by another is journaled removed before the new one, so the standby keeps nothing of the old', async (t) => {
  const { tree, rec, seen } = setUp(t);
  await rec.learn(() => Date.now() + 1000);
  // Ten replacements, each another inode moved over the old one (the standby's side of the same
  // millisecond is replayer/order/versions: a journal's own marks never make its snapshots stale).
  for (let i = 0; i < 10; i++) {
    fs.mkdirSync(path.join(tree, 'keep/next'));
    fs.writeFileSync(path.join(tree, 'keep/next/b'), `b${i}`);
    fs.rmSync(path.join(tree, 'keep/deep'), { recursive: true });
    fs.renameSync(path.join(tree, 'keep/next'), path.join(tree, 'keep/deep'));
    const from = seen.length;
    rec.touch(path.join(tree, 'keep/deep'));
    for (let j = 0; j < 40 && seen.length < from + 3; j++) await sleep(25);
    t.deepEqual(seen.slice(from), ['rm keep/deep', 'mkdir keep/deep', 'put keep/deep/b']);
  }
});

test('UNDERSTUDY_WATCH=1: a directory the agent renames after another process replaced it is journaled replaced at its new name, so the standby keeps nothing of the old one', async (t) => {
  const { dir, sink, watcher } = await inAppWatcher(t, (d) => {
    fs.mkdirSync(path.join(d, 'keep/deep'), { recursive: true });
    fs.writeFileSync(path.join(d, 'keep/deep/a'), 'a');
  });
  // The first look journals the tree made just before it (as changed since the watch began): not what is looked at here.
  const from = sink.changes.length;
  // A child process replaces keep/deep (the standby's still holds a), and at once, before the
  // watcher looked, the application renames it; the standby moves its keep/deep, a and all.
  fs.mkdirSync(path.join(dir, 'keep/next'));
  fs.writeFileSync(path.join(dir, 'keep/next/b'), 'b');
  fs.rmSync(path.join(dir, 'keep/deep'), { recursive: true });
  fs.renameSync(path.join(dir, 'keep/next'), path.join(dir, 'keep/deep'));
  fs.renameSync(path.join(dir, 'keep/deep'), path.join(dir, 'keep/moved'));
  watcher.journaled('data', 'keep/deep', { op: 'rename', toRoot: 'data', to: 'keep/moved' });
  for (let i = 0; i < 80 && !sink.lines().includes('put keep/moved/b'); i++) await sleep(25);
  await sleep(300);
  t.deepEqual(sink.lines().slice(from), ['rm keep/moved', 'mkdir keep/moved', 'put keep/moved/b']);
});

test('a directory replaced by a link to another directory is journaled as the link, and nothing is journaled through it', async (t) => {
  const { tree, rec, seen } = setUp(t);
  await rec.learn(() => Date.now() + 1000);
  // An event on keep/deep while it was a directory, then `rm -rf keep/deep && ln -s .. keep/deep`
  // before the reconciler looked (a stress run: the standby refused "mkdir a/t/a", a/t being a link, and stopped).
  fs.rmSync(path.join(tree, 'keep/deep'), { recursive: true });
  fs.mkdirSync(path.join(tree, 'keep/deep'));
  rec.touch(path.join(tree, 'keep/deep'));
  fs.rmdirSync(path.join(tree, 'keep/deep'));
  fs.symlinkSync('..', path.join(tree, 'keep/deep'));
  for (let i = 0; i < 40 && seen.length < 2; i++) await sleep(25);
  await sleep(200);
  t.deepEqual(seen, ['rm keep/deep', 'symlink keep/deep']);
});

test('UNDERSTUDY_WATCH=1: a file another process rewrote just before the agent appended to it is journaled whole; one it did not is not journaled again', async (t) => {
  const { dir, sink, watcher } = await inAppWatcher(t);
  const append = (name: string, text: string): void => {
    const at = fs.statSync(path.join(dir, name)).size;
    fs.appendFileSync(path.join(dir, name), text);
    watcher.journaled('data', name, { op: 'append', at });
  };
  // Journaled whole by the application, then appended to by it alone.
  fs.writeFileSync(path.join(dir, 'own'), 'own');
  watcher.journaled('data', 'own', { op: 'put', mode: 0o644 });
  append('own', '+1');
  append('own', '+2');
  // Written by a shell (`head -c … > f`, not journaled yet), then at once appended to by the application:
  // the standby has only the append, at an offset past what it has of the file.
  fs.writeFileSync(path.join(dir, 'shared'), 'written by a shell');
  append('shared', '+app');
  for (let i = 0; i < 80 && !sink.lines().includes('put shared'); i++) await sleep(25);
  await sleep(300);
  t.deepEqual(sink.lines(), ['put shared']);
  t.is(sink.changes[0]!.data.toString(), 'written by a shell+app');
});

test('UNDERSTUDY_WATCH=1: what the agent journaled in a directory another process made moves with it when the agent renames it', async (t) => {
  const { dir, sink, watcher } = await inAppWatcher(t);
  // A shell makes `made`; before the watcher looks, the application writes made/y (the standby
  // makes `made` for it), the shell replaces `made`, and the application renames it to `moved`.
  // The standby's `moved` holds y; the primary's does not (stress run, app mode seed 359).
  fs.mkdirSync(path.join(dir, 'made'));
  fs.writeFileSync(path.join(dir, 'made/y'), 'by the application');
  watcher.journaled('data', 'made/y', { op: 'put', mode: 0o644 });
  fs.rmSync(path.join(dir, 'made'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'made'));
  fs.writeFileSync(path.join(dir, 'made/w'), 'by the shell');
  fs.renameSync(path.join(dir, 'made'), path.join(dir, 'moved'));
  watcher.journaled('data', 'made', { op: 'rename', toRoot: 'data', to: 'moved' });
  for (let i = 0; i < 80 && !sink.lines().includes('rm moved/y'); i++) await sleep(25);
  await sleep(300);
  // w and y are independent of each other: w, written a moment before, may wait out its settle under load.
  const lines = sink.lines();
  t.is(lines[0], 'mkdir moved', lines.join(', '));
  t.deepEqual(lines.slice(1).sort(), ['put moved/w', 'rm moved/y']);
});

test('UNDERSTUDY_WATCH=1: a directory another process made, the agent wrote into, and the other process removed is journaled removed', async (t) => {
  const { dir, sink, watcher } = await inAppWatcher(t);
  // The standby makes made/deep for the agent's put; the primary's is gone before the watcher looked (stress run, app mode seed 413).
  fs.mkdirSync(path.join(dir, 'made/deep'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'made/deep/x'), 'by the application');
  watcher.journaled('data', 'made/deep/x', { op: 'put', mode: 0o644 });
  fs.rmSync(path.join(dir, 'made'), { recursive: true });
  for (let i = 0; i < 80 && !sink.lines().includes('rm made'); i++) await sleep(25);
  await sleep(300);
  t.deepEqual(sink.lines(), ['rm made']);
});

test('a directory chmodded between the look and the read, and back, is journaled again: it is known by the mode journaled', async (t) => {
  const dir = { abs: '', raced: false };
  const { tree, rec, seen } = setUp(t, (sink) => new (class extends Snapshotter {
    override snapshot(root: string, rel: string, abs: string, removeWhenAbsent?: boolean) {
      // `chmod 700 keep/deep` just after the reconciler's signature, before its read.
      if (rel === 'keep/deep' && dir.abs !== '' && !dir.raced) {
        dir.raced = true;
        fs.chmodSync(dir.abs, 0o700);
      }
      return super.snapshot(root, rel, abs, removeWhenAbsent);
    }
  })(sink));
  await rec.learn(() => Date.now() + 1000);
  dir.abs = path.join(tree, 'keep/deep');
  fs.chmodSync(dir.abs, 0o750);
  rec.touch(dir.abs);
  for (let i = 0; i < 40 && seen.length < 1; i++) await sleep(25);
  t.true(dir.raced);
  // Back to the mode the reconciler saw before its read: the standby has 700 from the read.
  fs.chmodSync(dir.abs, 0o750);
  rec.touch(dir.abs);
  for (let i = 0; i < 40 && seen.length < 2; i++) await sleep(25);
  await sleep(100);
  t.deepEqual(seen, ['mkdir keep/deep', 'mkdir keep/deep']);
});

test('UNDERSTUDY_WATCH=1: a file the agent made by appending to it, removed by another process before the watcher looked, is journaled removed', async (t) => {
  const { dir, sink, watcher } = await inAppWatcher(t);
  // appendFileSync on a missing file: the journal has the append at 0, the standby the file (stress run, app mode seed 600: an extra own2).
  fs.appendFileSync(path.join(dir, 'own2'), 'app 1\n');
  watcher.journaled('data', 'own2', { op: 'append', at: 0 });
  fs.rmSync(path.join(dir, 'own2'));
  for (let i = 0; i < 80 && !sink.lines().includes('rm own2'); i++) await sleep(25);
  await sleep(300);
  t.deepEqual(sink.lines(), ['rm own2']);
});
