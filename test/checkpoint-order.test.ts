import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CheckpointCut, EntryHeader } from '../lib/entry';
import { parseRoots } from '../lib/roots';
import type { CheckpointKeeper, CheckpointMark } from '../replayer/checkpoints/keeper';
import { Replayer } from '../replayer/replayer';
import { makePair, type Pair } from './helpers/pair';
import { publish, type Crafted } from './helpers/publish';

/** The standby's order for checkpoints on a real nats-server, a real Replayer and real disk, with crafted entries. */

const put = (j: string, s: number, p: string, content: string): Crafted => ({ header: { j, e: 1, s, t: Date.now(), r: 'data', p, op: 'put', mode: 0o644 } as EntryHeader, data: Buffer.from(content) });
const cp = (j: string, s: number, cut: CheckpointCut[]): Crafted => ({ header: { j, e: 1, s, t: 1_700_000_000_000, r: '', p: 'nightly', op: 'checkpoint', name: 'nightly', id: 'k1', cut } as EntryHeader });

/** A keeper that records what it is told, reading the standby's tree and its committed positions at `reached`. */
function recordingKeeper(pair: Pair) {
  const calls: string[] = [];
  let atReached: { tree: Record<string, string>; committed: Record<string, { e: number; s: number; t: number }> } | undefined;
  const keeper: CheckpointKeeper = {
    reached: (mark: CheckpointMark) => {
      calls.push(`reached ${mark.name}`);
      const tree = Object.fromEntries(fs.readdirSync(pair.standby).sort().map((f) => [f, fs.readFileSync(path.join(pair.standby, f), 'utf8')]));
      const committed = (JSON.parse(fs.readFileSync(path.join(pair.state, 'committed.json'), 'utf8').split('\n')[0]) as { journals: Record<string, { e: number; s: number; t: number }> }).journals;
      atReached = { tree, committed };
    },
    pending: (mark, waitingFor) => calls.push(`pending ${mark.name}: ${waitingFor.join(',')}`),
    failed: (mark, why) => calls.push(`failed ${mark.name}: ${why}`),
  };
  return { keeper, calls, reachedView: () => atReached };
}

function follow(pair: Pair, keeper: CheckpointKeeper, logs: string[]): () => Promise<void> {
  const ac = new AbortController();
  const running = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`),
    stateDir: pair.state, drain: false, log: (l) => logs.push(l), checkpoints: keeper,
  }).run(ac.signal);
  return async () => {
    ac.abort();
    await running;
  };
}

async function until(what: string, ok: () => boolean, logs: string[], ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`never: ${what}; the replayer logged:\n${logs.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const applied = (pair: Pair, j: string): number => {
  try {
    return (JSON.parse(fs.readFileSync(path.join(pair.state, 'positions.json'), 'utf8').split('\n')[0]) as { journals: Record<string, { s: number }> }).journals[j]?.s ?? 0;
  } catch {
    return 0;
  }
};

const cut: CheckpointCut[] = [{ j: 'a', e: 1, s: 2 }, { j: 'b', e: 1, s: 3 }, { j: 'c', e: 1, s: 2 }];

test('a checkpoint across 3 journals arriving at different times is reached with the tree exactly at the cut, durably committed, then the journals go on', async (t) => {
  const pair = await makePair('cp-reached');
  t.teardown(() => pair.close());
  const { keeper, calls, reachedView } = recordingKeeper(pair);
  const logs: string[] = [];
  const stop = follow(pair, keeper, logs);
  t.teardown(stop);
  // Journal a comes first, with what it did after the checkpoint; it must wait at its cut.
  await publish(pair.server.url, [put('a', 1, 'a.txt', 'a before'), cp('a', 2, cut), put('a', 3, 'a.txt', 'a after'), put('a', 4, 'a-later.txt', 'a later')]);
  await until('journal a at its cut', () => applied(pair, 'a') === 2 && calls.length > 0, logs);
  t.deepEqual(calls, ['pending nightly: b,c']);
  // Journal c next, then b last (its cut entry after two changes of its own).
  await publish(pair.server.url, [put('c', 1, 'c.txt', 'c before'), cp('c', 2, cut), put('c', 3, 'c.txt', 'c after')]);
  await until('journal c at its cut', () => applied(pair, 'c') === 2 && calls.length > 1, logs);
  t.is(applied(pair, 'a'), 2, 'a is still held at its cut');
  await publish(pair.server.url, [put('b', 1, 'b.txt', 'b before'), put('b', 2, 'b2.txt', 'b two'), cp('b', 3, cut), put('b', 4, 'b.txt', 'b after')]);
  await until('everything applied', () => applied(pair, 'a') === 4 && applied(pair, 'b') === 4 && applied(pair, 'c') === 3, logs);
  t.deepEqual(calls, ['pending nightly: b,c', 'pending nightly: b', 'reached nightly']);
  const view = reachedView();
  t.deepEqual(view?.tree, { 'a.txt': 'a before', 'b.txt': 'b before', 'b2.txt': 'b two', 'c.txt': 'c before' }, 'the tree at reached is exactly the cut');
  t.deepEqual(view?.committed, { a: { e: 1, s: 2, t: view!.committed.a.t }, b: { e: 1, s: 3, t: view!.committed.b.t }, c: { e: 1, s: 2, t: view!.committed.c.t } }, 'the positions at the cut were committed before reached');
  t.is(fs.readFileSync(path.join(pair.standby, 'a.txt'), 'utf8'), 'a after');
  t.is(fs.readFileSync(path.join(pair.standby, 'a-later.txt'), 'utf8'), 'a later');
  t.true(logs.some((l) => l === 'checkpoint nightly (k1) reached: a.1.2, b.1.3, c.1.2'), logs.join('\n'));
});

test('a checkpoint a journal passes without its entry fails, says why, and what was held is applied', async (t) => {
  const pair = await makePair('cp-failed');
  t.teardown(() => pair.close());
  const { keeper, calls } = recordingKeeper(pair);
  const logs: string[] = [];
  const stop = follow(pair, keeper, logs);
  t.teardown(stop);
  const two: CheckpointCut[] = [{ j: 'a', e: 1, s: 2 }, { j: 'b', e: 1, s: 2 }];
  await publish(pair.server.url, [put('a', 1, 'a.txt', 'a before'), cp('a', 2, two), put('a', 3, 'a.txt', 'a after')]);
  await until('journal a at its cut', () => calls.length > 0, logs);
  t.is(fs.readFileSync(path.join(pair.standby, 'a.txt'), 'utf8'), 'a before');
  // Journal b's entry at its cut is a change, not the checkpoint's entry.
  await publish(pair.server.url, [put('b', 1, 'b.txt', 'b one'), put('b', 2, 'b.txt', 'b two')]);
  await until('a released', () => applied(pair, 'a') === 3 && applied(pair, 'b') === 2, logs);
  t.deepEqual(calls, ['pending nightly: b', 'failed nightly: journal b passed its cut b.1.2 with 1.2 (put), not this checkpoint\'s entry']);
  t.is(fs.readFileSync(path.join(pair.standby, 'a.txt'), 'utf8'), 'a after');
  t.true(logs.some((l) => l.startsWith('checkpoint nightly (k1) cannot be reached on this standby: journal b passed its cut')), logs.join('\n'));
});

test('a replayer restarted while a journal is held at a checkpoint holds it again and reaches the checkpoint when the rest arrive', async (t) => {
  const pair = await makePair('cp-restart');
  t.teardown(() => pair.close());
  const first = recordingKeeper(pair);
  const logs: string[] = [];
  const two: CheckpointCut[] = [{ j: 'a', e: 1, s: 2 }, { j: 'b', e: 1, s: 1 }];
  await publish(pair.server.url, [put('a', 1, 'a.txt', 'a before'), cp('a', 2, two), put('a', 3, 'a.txt', 'a after')]);
  await pair.drain(undefined, { checkpoints: first.keeper, log: (l) => logs.push(l), checkpointWaitMs: 60_000 }).catch(() => undefined);
  // A drain ends the wait: the stream ended before b came. A follower stopped while held keeps the hold instead:
  t.deepEqual(first.calls, ['pending nightly: b', 'failed nightly: the stream ended before journal b reached its checkpoint entry']);
  const pair2 = await makePair('cp-restart2');
  t.teardown(() => pair2.close());
  const second = recordingKeeper(pair2);
  await publish(pair2.server.url, [put('a', 1, 'a.txt', 'a before'), cp('a', 2, two), put('a', 3, 'a.txt', 'a after')]);
  const stop1 = follow(pair2, second.keeper, logs);
  await until('a held', () => applied(pair2, 'a') === 2 && second.calls.length > 0, logs);
  await stop1();
  const held = JSON.parse(fs.readFileSync(path.join(pair2.state, 'positions.json'), 'utf8').split('\n')[0]) as { holds?: Record<string, { mark: { id: string } }> };
  t.is(held.holds?.a?.mark.id, 'k1', 'the hold is recorded with the position at the cut');
  const stop2 = follow(pair2, second.keeper, logs);
  t.teardown(stop2);
  await new Promise((r) => setTimeout(r, 500));
  t.is(fs.readFileSync(path.join(pair2.standby, 'a.txt'), 'utf8'), 'a before', 'still held after the restart');
  await publish(pair2.server.url, [cp('b', 1, two)]);
  await until('reached and released', () => applied(pair2, 'a') === 3, logs);
  t.deepEqual(second.calls.filter((c) => !c.startsWith('pending')), ['reached nightly']);
  t.deepEqual(second.reachedView()?.tree, { 'a.txt': 'a before' });
  t.is(fs.readFileSync(path.join(pair2.standby, 'a.txt'), 'utf8'), 'a after');
});

test('a checkpoint whose other journal never comes fails after the wait, naming it; a replayer of one journal says once it cannot reach one of several', async (t) => {
  const pair = await makePair('cp-wait');
  t.teardown(() => pair.close());
  const { keeper, calls } = recordingKeeper(pair);
  const logs: string[] = [];
  const two: CheckpointCut[] = [{ j: 'a', e: 1, s: 2 }, { j: 'b', e: 1, s: 1 }];
  const twoMore: CheckpointCut[] = [{ j: 'a', e: 1, s: 4 }, { j: 'b', e: 1, s: 2 }];
  await publish(pair.server.url, [put('a', 1, 'a.txt', 'a before'), cp('a', 2, two), put('a', 3, 'a.txt', 'a after'), { header: { ...cp('a', 4, twoMore).header, id: 'k2' } as EntryHeader }]);
  const ac = new AbortController();
  const running = new Replayer({
    nats: { url: pair.server.url, replicas: 1 }, stream: 'UNDERSTUDY', roots: parseRoots(`data=${pair.standby}`),
    stateDir: pair.state, drain: false, log: (l) => logs.push(l), checkpoints: keeper, checkpointWaitMs: 1000,
  }).run(ac.signal);
  t.teardown(async () => {
    ac.abort();
    await running;
  });
  await until('the first checkpoint failed', () => applied(pair, 'a') >= 3, logs);
  t.is(calls[0], 'pending nightly: b');
  t.is(calls[1], 'failed nightly: journal b did not reach its checkpoint entry within 1 s of journal a\'s');
  t.is(fs.readFileSync(path.join(pair.standby, 'a.txt'), 'utf8'), 'a after');
  ac.abort();
  await running;

  // The same stream through a replayer of journal a only (--name): neither can be reached, said once.
  const one = recordingKeeper(pair);
  const oneLogs: string[] = [];
  fs.rmSync(pair.state, { recursive: true, force: true });
  await pair.drain('a', { checkpoints: one.keeper, log: (l) => oneLogs.push(l) });
  t.deepEqual(one.calls, [
    'failed nightly: this replayer applies journal a only (--name): a checkpoint of 2 journals cannot be reached by it',
    'failed nightly: this replayer applies journal a only (--name): a checkpoint of 2 journals cannot be reached by it',
  ]);
  t.is(oneLogs.filter((l) => l.includes('(--name)')).length, 1, oneLogs.join('\n'));
  t.is(applied(pair, 'a'), 4);
});
