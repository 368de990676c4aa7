import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PositionStore } from '../replayer/state';

/** A fresh state directory, removed when the test ends. */
function stateDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A store that applied `n` entries of journal "app" and committed after `committedAt` of them. */
function applied(dir: string, n: number, committedAt: number): void {
  const store = new PositionStore(dir);
  for (let s = 1; s <= n; s++) {
    store.record('app', { e: 1, s, t: s }, s);
    if (s === committedAt) store.sync();
  }
  // Not close(): that commits; a killed replayer does not.
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
