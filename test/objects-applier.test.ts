import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { serialize } from 'node:v8';
import { Appliers } from '../replayer/apply/registry';
import { NO_HISTORY, type AppliedPosition, type Data } from '../replayer/apply/applier';
import { loadConfig, loadPendingJobs } from '../replayer/replicas';
import { writeSync } from '../replayer/write';
import type { EntryHeader } from '../lib/entry';

const head = (s: number, p: string) => ({ j: 'app', e: 7, s, t: 1000 + s, r: '', p });
const set = (s: number, key: string[], v: unknown): [EntryHeader, Data] => [{ ...head(s, 'cfg'), op: 'config', key }, { buf: Buffer.from(JSON.stringify(v)) }];
const job = (s: number, id: string, ev: 'enqueued' | 'completed', payload?: unknown): [EntryHeader, Data] =>
  [{ ...head(s, 'q'), op: 'job', id, ev, ...(ev === 'enqueued' ? { captured: true } : {}) }, { buf: ev === 'enqueued' ? serialize(payload) : Buffer.alloc(0) }];
const none: Data = { buf: Buffer.alloc(0) };

/** The registry's appliers over a state directory and no roots: the config and queue appliers are the ones these entries reach. */
function open(dir: string, applied: AppliedPosition): Appliers {
  return Appliers.open({ roots: new Map(), stateDir: dir, write: writeSync, log: () => undefined, applied, ...NO_HISTORY });
}

function stateDir(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-objects-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('a killed replayer keeps, on restart, every change its positions already count as applied, and only those', async (t) => {
  const dir = stateDir(t);
  const entries = [set(1, ['a'], 1), job(2, '7.1', 'enqueued', { n: 1 }), job(3, '7.2', 'enqueued', { n: 2 }), job(4, '7.1', 'completed'), set(5, ['b', 'c'], 'x')];
  const first = open(dir, () => undefined);
  for (const [h, d] of entries) first.apply(h, d);
  // Killed before any commit: nothing was fsynced; the position store had reached s=4 (s=5 was being applied).
  const second = open(dir, () => ({ e: 7, s: 4 }));
  t.deepEqual(loadConfig(dir, 'cfg'), { a: 1 }, 'durable at once on restart, without s=5');
  t.deepEqual(loadPendingJobs(dir, 'q').map((j) => j.payload), [{ n: 2 }]);
  t.is(fs.statSync(path.join(dir, 'objects.log')).size, 0, 'the log was emptied once its changes were durable');
  // The stream delivers from s=5 again, and an old duplicate is passed over.
  second.apply(...entries[1]);
  second.apply(...entries[4]);
  await second.sync();
  t.deepEqual(loadConfig(dir, 'cfg'), { a: 1, b: { c: 'x' } });
  t.deepEqual(loadPendingJobs(dir, 'q').map((j) => j.id), ['7.2'], 'a re-delivered enqueue of a finished job does not bring it back');
  second.close();
});

test('a deletion removes the key; deleting the whole store empties it; unshifted jobs go first', async (t) => {
  const dir = stateDir(t);
  const a = open(dir, () => undefined);
  a.apply(...set(1, ['x', 'y'], 1));
  a.apply(...set(2, ['x', 'z'], 2));
  a.apply({ ...head(3, 'cfg'), op: 'config', key: ['x', 'y'], del: true }, none);
  await a.sync();
  t.deepEqual(loadConfig(dir, 'cfg'), { x: { z: 2 } });
  a.apply({ ...head(4, 'cfg'), op: 'config', key: [], del: true }, none);
  a.apply(...job(5, '7.1', 'enqueued', 'first'));
  const [h, d] = job(6, '7.2', 'enqueued', 'jumped');
  a.apply({ ...h, front: true } as EntryHeader, d);
  await a.sync();
  t.deepEqual(loadConfig(dir, 'cfg'), {});
  t.deepEqual(loadPendingJobs(dir, 'q').map((j) => j.payload), ['jumped', 'first']);
  a.close();
});

test('two processes feeding one queue name keep their jobs apart, even with the same ids', async (t) => {
  const dir = stateDir(t);
  const a = open(dir, () => undefined);
  const [ha, da] = job(1, '7.1', 'enqueued', 'from a');
  const [hb, db] = job(1, '7.1', 'enqueued', 'from b');
  a.apply({ ...ha, j: 'a' }, da);
  a.apply({ ...hb, j: 'b' }, db);
  a.apply({ ...job(2, '7.1', 'completed')[0], j: 'a' }, none);
  await a.sync();
  t.deepEqual(loadPendingJobs(dir, 'q').map((j) => [j.journal, j.id, j.payload]), [['b', '7.1', 'from b']]);
  a.close();
});
