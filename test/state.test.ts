import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PositionStore } from '../replayer/state';
import { Versions } from '../replayer/order/versions';
import type { EntryHeader } from '../lib/entry';

/** A fresh state directory, removed when the test ends. */
function stateDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Records entries `from`..`to` of journal "app" in `store`, committing after `committedAt` (not at the end: a killed replayer does not commit). */
function record(store: PositionStore, from: number, to: number, committedAt?: number): void {
  for (let s = from; s <= to; s++) {
    store.record('app', { e: 1, s, t: s }, s);
    if (s === committedAt) store.sync();
  }
}

/** A store that applied `n` entries of journal "app" and committed after `committedAt` of them. */
function applied(dir: string, n: number, committedAt: number): void {
  record(new PositionStore(dir), 1, n, committedAt);
}

test('a replayer killed between commits resumes from its last applied entry (same boot)', (t) => {
  const dir = stateDir(t);
  applied(dir, 10, 4);
  const store = new PositionStore(dir);
  t.false(store.restartedFromCommit);
  t.is(store.positions.journals.app.s, 10);
  t.is(store.positions.streamSeq, 10);
  store.close();
});

test('after the machine restarted, the replayer resumes from the last commit, not from a position the disk may not back', (t) => {
  const dir = stateDir(t);
  applied(dir, 10, 4);
  // What a power loss can leave: the per-entry file written back, from a boot that is over.
  const file = path.join(dir, 'positions.json');
  const latest = JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]) as { boot: string };
  fs.writeFileSync(file, JSON.stringify({ ...latest, boot: 'an-earlier-boot' }) + '\n');
  const store = new PositionStore(dir);
  t.true(store.restartedFromCommit);
  t.is(store.positions.journals.app.s, 4);
  t.is(store.positions.streamSeq, 4);
  // Entries 5 to 10 may have reached the disk before the power went: they are applied again, knowingly.
  t.true(store.appliedBefore('app', { e: 1, s: 10 }));
  t.false(store.appliedBefore('app', { e: 1, s: 11 }));
  t.false(store.appliedBefore('other', { e: 1, s: 1 }));
  store.close();
  // And from then on this boot's file is the one trusted again.
  const again = new PositionStore(dir);
  t.false(again.restartedFromCommit);
  t.is(again.positions.journals.app.s, 4);
  again.close();
});

test('an unreadable per-entry file falls back to the last commit; with no commit it is an error naming the file', (t) => {
  const dir = stateDir(t);
  applied(dir, 6, 3);
  fs.writeFileSync(path.join(dir, 'positions.json'), '\0\0\0\0garbage');
  const store = new PositionStore(dir);
  t.true(store.restartedFromCommit);
  t.is(store.positions.journals.app.s, 3);
  store.close();
  const bare = stateDir(t);
  fs.writeFileSync(path.join(bare, 'positions.json'), '{"streamSeq": "x"}\n');
  t.throws(() => new PositionStore(bare), { message: /positions\.json is not a position file/ });
});

test('a rollback forgets what was recorded since the last commit, in memory and for a restart', (t) => {
  const dir = stateDir(t);
  const store = new PositionStore(dir);
  record(store, 1, 10, 4);
  store.rollback();
  t.is(store.positions.journals.app.s, 4);
  t.is(store.streamSeq, 4);
  store.close();
  // Same boot: positions.json is trusted on restart, so it must not claim more than the commit.
  const again = new PositionStore(dir);
  t.false(again.restartedFromCommit);
  t.is(again.positions.journals.app.s, 4);
  // What was applied before the rollback is known to be applied again, also after a restart, until passed.
  t.true(again.appliedBefore('app', { e: 1, s: 10 }));
  t.false(again.appliedBefore('app', { e: 1, s: 11 }));
  record(again, 5, 9);
  t.true(again.appliedBefore('app', { e: 1, s: 10 }));
  record(again, 10, 10);
  t.false(again.appliedBefore('app', { e: 1, s: 10 }));
  t.is(again.positions.again, undefined);
  again.close();
});

test('a second rollback inside the window of a first keeps the wider window', (t) => {
  const dir = stateDir(t);
  const store = new PositionStore(dir);
  record(store, 1, 10, 4);
  store.rollback(); // 5-10 applied before: applied again from 5
  record(store, 5, 6, 6); // the commit holds the window too
  record(store, 7, 7);
  store.rollback(); // back to 6, with 7 applied since, and 8-10 still from the first time
  t.is(store.positions.journals.app.s, 6);
  t.true(store.appliedBefore('app', { e: 1, s: 10 }));
  t.false(store.appliedBefore('app', { e: 1, s: 11 }));
  store.close();
});

test('a replayer filtered to one journal keeps its stream position apart from that of all journals', (t) => {
  const dir = stateDir(t);
  const all = new PositionStore(dir);
  all.record('one', { e: 1, s: 1, t: 1 }, 3);
  all.sync();
  all.close();
  const one = new PositionStore(dir, undefined, 'one');
  t.is(one.streamSeq, 3);
  one.record('one', { e: 1, s: 2, t: 2 }, 9);
  one.sync();
  t.is(one.streamSeq, 9);
  one.close();
  // Messages 4..8 of other journals were not read: a replayer of all resumes after 3.
  const later = new PositionStore(dir);
  t.is(later.streamSeq, 3);
  t.is(later.positions.journals.one.s, 2);
  later.record('two', { e: 1, s: 1, t: 3 }, 10);
  t.is(later.positions.filtered, undefined);
  later.close();
});

test('version marks noted since the last commit are forgotten by a rollback: a snapshot applied again is not stale against itself', (t) => {
  const dir = stateDir(t);
  const versions = new Versions(dir, 0);
  const snapshot = (p: string, b: number): EntryHeader => ({ j: 'app', e: 1, s: b, t: b, r: 'data', p, b, op: 'put', mode: 0o644 });
  versions.note(snapshot('kept', 5));
  versions.sync();
  versions.note(snapshot('f', 10));
  t.true(versions.stale('data', 'f', 10));
  versions.rollback();
  t.false(versions.stale('data', 'f', 10));
  t.true(versions.stale('data', 'kept', 5));
  versions.close();
});

test('a journal\'s own removal does not make its snapshot of the same millisecond stale; another journal\'s does, and the marks survive a reopen', (t) => {
  const dir = stateDir(t);
  const versions = new Versions(dir, 0);
  // A watcher journaling a replaced directory: the old one's removal, then the new one, read in the same millisecond.
  versions.note({ j: 'watch', e: 1, s: 1, t: 100, r: 'data', p: 'd', b: 100, op: 'rm' });
  t.false(versions.stale('data', 'd', 100, 'watch'), 'the new directory');
  t.false(versions.stale('data', 'd/x', 100, 'watch'), 'what the new directory holds');
  t.true(versions.stale('data', 'd/x', 100, 'other'), 'another journal\'s snapshot read no later than the removal');
  t.true(versions.stale('data', 'd/x', 99, 'other'), 'another journal\'s read before it');
  versions.sync();
  versions.close();
  const again = new Versions(dir, 0);
  t.false(again.stale('data', 'd/x', 100, 'watch'));
  t.true(again.stale('data', 'd/x', 100, 'other'));
  again.close();
});

test('positions.json and committed.json each hold one document, a line, as it grows, shrinks and is reopened', (t) => {
  const dir = stateDir(t);
  const oneDocument = (file: string): void => {
    const text = fs.readFileSync(path.join(dir, file), 'utf8');
    t.is(text.indexOf('\n'), text.length - 1, `${file}: ${JSON.stringify(text)}`);
    JSON.parse(text);
  };
  const store = new PositionStore(dir);
  store.record('app', { e: 1, s: 1, t: 1 }, 1);
  store.sync();
  // A transaction being applied makes the document longer; its end (record) shorter again.
  store.applying('app', { e: 1, s: 2 }, { e: 1, s: 2000 });
  oneDocument('positions.json');
  store.sync();
  store.record('app', { e: 1, s: 2, t: 2 }, 2);
  oneDocument('positions.json');
  store.sync();
  oneDocument('committed.json');
  store.applying('app', { e: 1, s: 3 }, { e: 1, s: 3000 });
  store.sync();
  store.close();
  // Another store does not know how long the files are: its first writes are shorter.
  const again = new PositionStore(dir);
  again.record('app', { e: 1, s: 3, t: 3 }, 3);
  oneDocument('positions.json');
  again.sync();
  oneDocument('committed.json');
  t.is(again.positions.journals.app.s, 3);
  again.close();
});
