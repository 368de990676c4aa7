import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { hostStamp } from '../lib/host-clock';
import { parseRoots } from '../lib/roots';
import { DEFAULTS } from '../lib/settings';
import { Locator } from '../agent/locate';
import { Recorder } from '../agent/recorder';
import { Snapshotter } from '../agent/snapshot';
import { Journal } from '../agent/journal';
import { MemorySink } from './helpers/memory-sink';
import { staleOnStandby } from './helpers/stale';
import { tempDir } from './helpers/temp-dir';

// Unit tests of the one way objects are read into the journal, over the in-memory sink and a
// real temporary tree: the journal's own behaviour is the sink contract's (sink-contract.test.ts).

const tmp = (t: { teardown(fn: () => void): void }): string => tempDir(t, 'snap');

test('a file is journaled whole with its permission bits, stamped with when it was read', (t) => {
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'f'), 'content', { mode: 0o640 });
  fs.chmodSync(path.join(dir, 'f'), 0o640);
  const sink = new MemorySink();
  const [wall, order] = [Date.now(), hostStamp()];
  t.deepEqual(new Snapshotter(sink).snapshot('data', 'f', path.join(dir, 'f')), { kind: 'file', bytes: 7 });
  const [wallAfter, orderAfter] = [Date.now(), hostStamp()];
  const [c] = sink.changes;
  t.like(c, { root: 'data', path: 'f', op: { op: 'put', mode: 0o640 } });
  t.is(c?.data.toString(), 'content');
  t.true(c!.at! >= wall && c!.at! <= wallAfter, 'wall clock of the read');
  t.true(c!.order! >= order && c!.order! <= orderAfter, 'host order of the read');
});

test('without read times (the recorder) a snapshot still carries its host order, never a wall clock', (t) => {
  const dir = tmp(t);
  fs.writeFileSync(path.join(dir, 'f'), 'x');
  const sink = new MemorySink();
  new Snapshotter(sink, { readTime: false }).snapshot('data', 'f', path.join(dir, 'f'));
  t.is(sink.changes[0]?.at, undefined);
  t.is(typeof sink.changes[0]?.order, 'number');
});

test('a directory, a link (dangling too, kept verbatim) and nothing at all', (t) => {
  const dir = tmp(t);
  fs.mkdirSync(path.join(dir, 'd'), { mode: 0o750 });
  fs.chmodSync(path.join(dir, 'd'), 0o750);
  fs.symlinkSync('../nowhere', path.join(dir, 'l'));
  const sink = new MemorySink();
  const snap = new Snapshotter(sink);
  t.is(snap.snapshot('data', 'd', path.join(dir, 'd')).kind, 'dir');
  t.is(snap.snapshot('data', 'l', path.join(dir, 'l')).kind, 'symlink');
  t.is(snap.snapshot('data', 'none', path.join(dir, 'none')).kind, 'absent');
  t.is(snap.snapshot('data', 'none', path.join(dir, 'none'), true).kind, 'removed');
  t.deepEqual(sink.changes.map((c) => c.op), [{ op: 'mkdir', mode: 0o750 }, { op: 'symlink', target: '../nowhere' }, { op: 'rm' }]);
});

test('a file larger than wholeBytes is read in pieces, one chunk at a time, and journaled whole', (t) => {
  const dir = tmp(t);
  const bytes = Buffer.alloc(10_000);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 7) % 256;
  fs.writeFileSync(path.join(dir, 'big'), bytes);
  const sink = new MemorySink(3000);
  let reads = 0;
  sink.onRecord = (c) => {
    const pieces = c.pieces;
    t.not(pieces, undefined, 'handed over as pieces, not read whole first');
    if (pieces !== undefined) c.pieces = { size: pieces.size, read: (off, len) => (reads++, pieces.read(off, len)) };
  };
  t.deepEqual(new Snapshotter(sink, { wholeBytes: 4096 }).snapshot('data', 'big', path.join(dir, 'big')), { kind: 'file', bytes: 10_000 });
  t.is(reads, 4);
  t.true(sink.changes[0]?.data.equals(bytes));
  t.like(sink.changes[0], { first: 1, last: 4 });
});

test('a file that changes while it is read is read again; the read that held still is the last journaled', (t) => {
  const dir = tmp(t);
  const f = path.join(dir, 'growing');
  fs.writeFileSync(f, Buffer.alloc(5000, 1));
  const sink = new MemorySink(1000);
  let writes = 0;
  sink.onRecord = () => {
    // The first read sees the file grow under it; the second does not.
    if (writes++ === 0) fs.appendFileSync(f, 'more');
  };
  t.deepEqual(new Snapshotter(sink, { wholeBytes: 1024 }).snapshot('data', 'growing', f), { kind: 'file', bytes: 5004 });
  t.is(sink.changes.length, 2);
  t.is(sink.changes[1]?.data.length, 5004);
});

test('a file that changes during every read is journaled anyway at the last attempt', (t) => {
  const dir = tmp(t);
  const f = path.join(dir, 'busy');
  fs.writeFileSync(f, Buffer.alloc(3000, 2));
  const sink = new MemorySink(1000);
  sink.onRecord = () => fs.appendFileSync(f, 'x');
  new Snapshotter(sink, { wholeBytes: 1024 }).snapshot('data', 'busy', f);
  t.is(sink.changes.length, DEFAULTS.journal.snapshotAttempts);
});

test('a tree is journaled directories first, then what each holds; what vanishes meanwhile is left out', (t) => {
  const dir = tmp(t);
  fs.mkdirSync(path.join(dir, 't/sub'), { recursive: true });
  fs.writeFileSync(path.join(dir, 't/sub/a'), 'a');
  fs.writeFileSync(path.join(dir, 't/gone'), 'soon');
  fs.symlinkSync('sub/a', path.join(dir, 't/link'));
  const sink = new MemorySink();
  // Removed once its directory was read: a call of its own journals that.
  sink.onRecord = (c) => {
    if (c.path === 't') fs.rmSync(path.join(dir, 't/gone'));
  };
  new Snapshotter(sink).tree('data', 't', path.join(dir, 't'));
  const lines = sink.lines();
  t.deepEqual([...lines].sort(), ['mkdir t', 'mkdir t/sub', 'put t/sub/a', 'symlink t/link']);
  t.is(lines[0], 'mkdir t');
  t.true(lines.indexOf('mkdir t/sub') < lines.indexOf('put t/sub/a'));
});

test('a tree whose top vanished journals nothing and throws nothing', (t) => {
  const sink = new MemorySink();
  new Snapshotter(sink).tree('data', 'x', path.join(tmp(t), 'x'));
  t.deepEqual(sink.changes, []);
});

test('the recorder journals what a rename brought into a root through the snapshotter, as the result of the call: no read time', (t) => {
  const dir = tmp(t);
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(path.join(outside, 'in'), { recursive: true });
  fs.writeFileSync(path.join(outside, 'in/f'), 'moved in');
  fs.renameSync(outside, path.join(root, 'came'));
  const sink = new MemorySink();
  const r = new Recorder(sink, new Locator(parseRoots(`data=${root}`), []));
  r.rename(outside, path.join(root, 'came'));
  t.deepEqual(sink.lines(), ['mkdir came', 'mkdir came/in', 'put came/in/f']);
  t.deepEqual(sink.changes.map((c) => c.at), [undefined, undefined, undefined]);
  t.is(sink.changes[2]?.data.toString(), 'moved in');
  t.is(r.lastSeq, 3, 'the recorder knows the seq a wrapper must wait for');
});

test('a snapshot read in pieces is journaled even past the spool limit: the watcher takes it as journaled', (t) => {
  // A real Journal: the limit is the journal's. Dropping such a snapshot left the reconciler
  // remembering a version the standby never got, and no full pass mended it.
  const base = tempDir(t, 'snapshot-limit');
  const root = path.join(base, 'root');
  fs.mkdirSync(root);
  const bytes = DEFAULTS.journal.snapshotWholeBytes + 1024 * 1024;
  fs.writeFileSync(path.join(root, 'big'), Buffer.alloc(bytes, 7));
  const j = new Journal(path.join(base, 'spool'), 'limit', { maxBytes: 1024 * 1024 });
  j.open();
  t.teardown(() => j.close());
  t.like(new Snapshotter(j).snapshot('data', 'big', path.join(root, 'big')), { kind: 'file', bytes });
  t.is(j.dropped, 0);
  t.is(j.lastSeq, Math.ceil(bytes / DEFAULTS.chunkBytes), 'every chunk is in the spool');
  // A change from a call's arguments is still held to the limit, as always.
  j.record({ root: 'data', path: 'small', op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(900) });
  t.is(j.dropped, 1);
});

test('a read never shares its millisecond with an entry of the same object or a removal above it, which the standby would take as newer', (t) => {
  const dir = tmp(t);
  fs.mkdirSync(path.join(dir, 'd'));
  fs.writeFileSync(path.join(dir, 'd', 'f'), 'f');
  const sink = new MemorySink();
  const snap = new Snapshotter(sink);
  // Versions.stale skips a snapshot stamped at or before a change to its object or a removal
  // above it. Back to back, as a watcher journals them; ten times, so a tick crossed by luck proves nothing.
  for (let i = 0; i < 10; i++) {
    snap.snapshot('data', 'd', path.join(dir, 'd'));
    snap.snapshot('data', 'd', path.join(dir, 'd'));
    snap.removed('data', 'd');
    snap.snapshot('data', 'd/f', path.join(dir, 'd', 'f'));
  }
  t.is(sink.changes.length, 40);
  t.deepEqual(staleOnStandby(t, sink.changes), []);
});
