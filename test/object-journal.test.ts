import test from 'ava';
import * as v8 from 'node:v8';
import { OBJECT_ROOT } from '../lib/entry';
import { parseRoots } from '../lib/roots';
import { DEFAULTS } from '../lib/settings';
import { Locator } from '../agent/locate';
import { DELETED, ObjectJournal } from '../agent/objects';
import { Recorder } from '../agent/recorder';
import { MemorySink } from './helpers/memory-sink';
import { tempDir } from './helpers/temp-dir';

// Unit tests of the configuration and queue recorder over the in-memory sink; the libraries'
// wrappers and the standby's side are tested end to end in objects.test.ts.

function setUp(t: { teardown(fn: () => void): void }): { sink: MemorySink; r: Recorder; objects: ObjectJournal } {
  const dir = tempDir(t, 'objects');
  const sink = new MemorySink();
  const r = new Recorder(sink, new Locator(parseRoots(`data=${dir}`), []));
  return { sink, r, objects: new ObjectJournal(r, 1_700_000_000) };
}

test('a configuration key set is journaled as its JSON, under the store, and the recorder knows its seq', (t) => {
  const { sink, r, objects } = setUp(t);
  objects.config('app', ['db', 'port'], 5432);
  t.like(sink.changes[0], { root: OBJECT_ROOT, path: 'app', op: { op: 'config', key: ['db', 'port'] } });
  t.is(sink.changes[0]?.data.toString(), '5432');
  t.is(r.lastSeq, 1);
});

test('a deleted key, and a value with no JSON form, are journaled as removals without data', (t) => {
  const { sink, objects } = setUp(t);
  objects.config('app', ['a'], DELETED);
  objects.config('app', ['b'], undefined);
  t.deepEqual(sink.changes.map((c) => [c.op, c.data.length]), [[{ op: 'config', key: ['a'], del: true }, 0], [{ op: 'config', key: ['b'], del: true }, 0]]);
});

test('a change that cannot be journaled (a bad store name) is not thrown into the application', (t) => {
  const { sink, r, objects } = setUp(t);
  t.notThrows(() => objects.config('bad/name', ['k'], 1));
  t.deepEqual(sink.changes, []);
  t.is(r.lastSeq, 0);
});

test('an enqueued job carries its payload as structured-clone bytes, its front flag and its label cut short', (t) => {
  const { sink, objects } = setUp(t);
  const id = objects.newJobId();
  objects.enqueued('mail', id, { to: 'a@b' }, { front: true, label: 'x'.repeat(500) });
  const c = sink.changes[0];
  t.like(c, { path: 'mail', op: { op: 'job', id, ev: 'enqueued', captured: true, front: true } });
  t.deepEqual(v8.deserialize(c!.data), { to: 'a@b' });
  t.is(c?.op.op === 'job' ? c.op.label?.length : -1, DEFAULTS.journal.jobLabelChars);
});

test('a payload that cannot be cloned is journaled as not captured; later events of the job follow it', (t) => {
  const { sink, objects } = setUp(t);
  const id = objects.newJobId();
  objects.enqueued('work', id, { run: () => 1 });
  objects.job('work', id, 'started');
  objects.job('work', id, 'completed');
  t.deepEqual(sink.changes.map((c) => c.op), [
    { op: 'job', id, ev: 'enqueued', captured: false },
    { op: 'job', id, ev: 'started' },
    { op: 'job', id, ev: 'completed' },
  ]);
  t.is(sink.changes[0]?.data.length, 0);
});

test('job ids are unique within the journal: its epoch, then a count', (t) => {
  const { objects } = setUp(t);
  t.deepEqual([objects.newJobId(), objects.newJobId()], ['1700000000.1', '1700000000.2']);
});

test("the journal's own fs calls while it records are not taken for the application's", (t) => {
  const { sink, r, objects } = setUp(t);
  const depths: number[] = [];
  sink.onRecord = () => depths.push(r.depth);
  objects.config('app', ['k'], 'v');
  objects.job('q', '1.1', 'failed');
  t.deepEqual(depths, [1, 1]);
  t.is(r.depth, 0);
});
