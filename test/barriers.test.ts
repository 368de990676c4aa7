import test from 'ava';
import type { CheckpointCut, EntryHeader } from '../lib/entry';
import { ApplyError } from '../lib/errors';
import type { CheckpointMark } from '../replayer/checkpoints/keeper';
import type { Step } from '../replayer/order/barriers';
import { makeOrder } from '../replayer/order/order';
import type { Applied } from '../replayer/order/sequencer';

/** The order of checkpoints and transactions alone (sequencer + barriers), with crafted entries and no I/O. */

interface E { h: EntryHeader; data: { length: number } }
const label = (e: E): string => `${e.h.j}${e.h.s}`;
const put = (j: string, s: number, size = 1): E => ({ h: { j, e: 1, s, t: s, r: 'data', p: `f${s}`, op: 'put', mode: 0o644 }, data: { length: size } });
const cp = (j: string, s: number, cut: CheckpointCut[], id = 'k1', name = 'nightly'): E => ({ h: { j, e: 1, s, t: 1000, r: '', p: name, op: 'checkpoint', name, id, cut }, data: { length: 0 } });
const tx = (j: string, s: number, ev: 'begin' | 'end', id = 't1'): E => ({ h: { j, e: 1, s, t: s, r: '', p: 'tx', op: 'tx', id, ev }, data: { length: 0 } });
const inTx = (j: string, s: number, id = 't1'): E => ({ ...put(j, s), h: { ...put(j, s).h, x: id } });

/** A standby of crafted journals: what was applied in order, what the keeper heard, where each journal stood when a checkpoint was reached. */
function standby(o: { start?: Record<string, Applied>; maxHeld?: { entries: number; bytes: number }; maxStaged?: { entries: number; bytes: number }; only?: string; promoting?: boolean } = {}) {
  const pos = new Map<string, Applied>(Object.entries(o.start ?? {}));
  const applied: string[] = [];
  const said: string[] = [];
  const atReach: Record<string, number>[] = [];
  const duplicates: string[] = [];
  const order = makeOrder<E>((j) => pos.get(j), { maxHeld: o.maxHeld ?? { entries: 100, bytes: 10_000 }, maxStaged: o.maxStaged ?? { entries: 100, bytes: 10_000 }, waitMs: 30_000, only: o.only, promoting: o.promoting });
  const { sequencer, barriers } = order;
  const run = (steps: Step<E>[], now: number): void => {
    for (const step of steps) {
      const entries = step.kind === 'apply' ? [step.entry] : step.entries;
      applied.push(step.kind === 'apply' ? label(step.entry) : `[${entries.map(label).join(' ')}]`);
      const last = entries[entries.length - 1].h;
      pos.set(last.j, { e: last.e, s: last.s });
    }
    for (const ev of barriers.drainEvents()) {
      if (ev.kind === 'pending') said.push(`pending ${ev.mark.name}: ${ev.waitingFor.join(',')}`);
      if (ev.kind === 'failed') said.push(`failed ${ev.mark.name}: ${ev.why}`);
      if (ev.kind === 'cut-short') said.push(`cut short ${ev.journal} ${ev.ids.join(',')}: ${ev.entries} at ${ev.at}`);
      if (ev.kind === 'never-ended') said.push(`never ended ${ev.journal} ${ev.open.join(',')}: ${ev.applied} applied, ${ev.aside} aside`);
      if (ev.kind === 'complete') {
        // The replayer commits here, then tells the keeper, then releases.
        atReach.push(Object.fromEntries(ev.mark.cut.map((c) => [c.j, pos.get(c.j)?.s ?? 0])));
        said.push(`reached ${ev.mark.name}`);
        run(barriers.resolve(ev.mark.id, now), now);
      }
    }
  };
  const offer = (e: E, now = 0): void => {
    const d = sequencer.offer(e);
    if (d.kind === 'duplicate') duplicates.push(label(e));
    if (d.kind !== 'next') return;
    run(barriers.take(e, now), now);
    sequencer.applied(e, (next) => run(barriers.take(next, now), now));
  };
  return { pos, applied, said, atReach, duplicates, order, offer, run, barriers, sequencer };
}

const cut3: CheckpointCut[] = [{ j: 'a', e: 1, s: 2 }, { j: 'b', e: 1, s: 3 }, { j: 'c', e: 1, s: 1 }];
const journals = { a: [put('a', 1), cp('a', 2, cut3), put('a', 3)], b: [put('b', 1), put('b', 2), cp('b', 3, cut3), put('b', 4)], c: [cp('c', 1, cut3), put('c', 2)] };

function permutations<T>(xs: T[]): T[][] {
  return xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}

for (const perm of permutations(['a', 'b', 'c'] as const)) {
  test(`barriers: a checkpoint of 3 journals arriving ${perm.join(' then ')} is reached once, exactly at the cut, and nothing after a cut is applied before`, (t) => {
    const s = standby();
    // Each journal in turn sends all it has: the first ones wait at their cut for the last.
    for (const j of perm) for (const e of journals[j]) s.offer(e);
    t.deepEqual(s.atReach, [{ a: 2, b: 3, c: 1 }]);
    t.is(s.said.filter((x) => x.startsWith('reached')).length, 1);
    t.is(s.said.filter((x) => x.startsWith('failed')).length, 0);
    const reachedAt = s.applied.length - 3; // the three entries after the cuts come last
    t.deepEqual(s.applied.slice(reachedAt).sort(), ['a3', 'b4', 'c2']);
    t.deepEqual(Object.fromEntries(s.pos), { a: { e: 1, s: 3 }, b: { e: 1, s: 4 }, c: { e: 1, s: 2 } });
    t.false(s.barriers.holding);
  });
}

test('barriers: the cut entries arriving interleaved with each other, one entry at a time, reach it once', (t) => {
  const s = standby();
  for (const e of [put('a', 1), put('b', 1), cp('a', 2, cut3), put('a', 3), cp('c', 1, cut3), put('b', 2), put('c', 2), cp('b', 3, cut3), put('b', 4)]) s.offer(e);
  t.deepEqual(s.atReach, [{ a: 2, b: 3, c: 1 }]);
  t.deepEqual(s.said, ['pending nightly: b,c', 'pending nightly: b', 'reached nightly']);
  t.deepEqual(s.applied, ['a1', 'b1', 'a2', 'c1', 'b2', 'b3', 'a3', 'c2', 'b4']);
});

test('barriers: duplicates of a checkpoint entry and of held entries are neither applied twice nor reach twice', (t) => {
  const s = standby();
  for (const e of [put('a', 1), cp('a', 2, cut3), put('a', 3), cp('a', 2, cut3), put('a', 3), cp('c', 1, cut3), cp('c', 1, cut3), put('b', 1), put('b', 2), cp('b', 3, cut3), cp('a', 2, cut3)]) s.offer(e);
  t.deepEqual(s.duplicates, ['a2', 'a3', 'c1', 'a2']);
  t.deepEqual(s.atReach, [{ a: 2, b: 3, c: 1 }]);
  t.deepEqual(s.applied.filter((x) => x === 'a3'), ['a3']);
});

test('barriers: a journal that passes its cut with another entry fails the checkpoint and releases the journals held', (t) => {
  const s = standby();
  for (const e of [put('a', 1), cp('a', 2, cut3), put('a', 3), put('b', 1), put('b', 2), put('b', 3)]) s.offer(e);
  t.deepEqual(s.said, ['pending nightly: b,c', 'failed nightly: journal b passed its cut b.1.3 with 1.3 (put), not this checkpoint\'s entry']);
  t.deepEqual(s.applied, ['a1', 'a2', 'b1', 'b2', 'a3', 'b3']);
  // The late journal's entry of the failed checkpoint passes at once.
  s.offer(cp('c', 1, cut3));
  s.offer(put('c', 2));
  t.deepEqual(s.applied.slice(-2), ['c1', 'c2']);
  t.deepEqual(s.atReach, []);
});

test('barriers: a journal already past its cut when the first checkpoint entry arrives fails it at once', (t) => {
  const s = standby({ start: { b: { e: 1, s: 7 } } });
  s.offer(put('a', 1));
  s.offer(cp('a', 2, cut3));
  s.offer(put('a', 3));
  t.deepEqual(s.said, ['failed nightly: journal b was already at 1.7, at or past its cut b.1.3 without this checkpoint\'s entry, when journal a\'s arrived']);
  t.deepEqual(s.applied, ['a1', 'a2', 'a3']);
});

test('barriers: journals that do not arrive within the bound fail it, naming them, and what was held is released', (t) => {
  const s = standby();
  s.offer(put('a', 1), 0);
  s.offer(cp('a', 2, cut3), 0);
  s.offer(put('a', 3), 0);
  s.offer(cp('c', 1, cut3), 10_000);
  s.run(s.barriers.expire(29_000), 29_000);
  t.deepEqual(s.applied, ['a1', 'a2', 'c1']);
  s.run(s.barriers.expire(30_001), 30_001);
  t.deepEqual(s.said.at(-1), 'failed nightly: journal b did not reach its checkpoint entry within 30 s of journal a\'s');
  t.deepEqual(s.applied, ['a1', 'a2', 'c1', 'a3']);
  t.false(s.barriers.holding);
});

test('barriers: the end of the stream fails a checkpoint still waiting', (t) => {
  const s = standby();
  s.offer(put('a', 1));
  s.offer(cp('a', 2, cut3));
  s.offer(put('a', 3));
  s.run(s.barriers.endOfStream(0), 0);
  t.regex(s.said.at(-1)!, /^failed nightly: the stream ended before journals b, c reached their checkpoint entry$/);
  t.deepEqual(s.applied, ['a1', 'a2', 'a3']);
});

test('barriers: a restart while held holds again from the positions (at the cut) and reaches it when the rest arrive', (t) => {
  const mark: CheckpointMark = { name: 'nightly', id: 'k1', time: 1000, cut: cut3 };
  const s = standby({ start: { a: { e: 1, s: 2 }, c: { e: 1, s: 1 } } });
  s.barriers.restore('a', mark, 0);
  s.barriers.restore('c', mark, 0);
  s.run([], 0);
  // Read again from the stream: what was held comes again, and waits again.
  for (const e of [cp('a', 2, cut3), put('a', 3), put('c', 2), put('b', 1), put('b', 2)]) s.offer(e);
  t.deepEqual(s.applied, ['b1', 'b2']);
  t.true(s.barriers.holding);
  s.offer(cp('b', 3, cut3));
  t.deepEqual(s.atReach, [{ a: 2, b: 3, c: 1 }]);
  t.deepEqual(s.applied.slice(2).sort(), ['a3', 'b3', 'c2']);
});

test('barriers: entries held at a checkpoint are not a gap; a real gap behind them is counted from the last one taken', (t) => {
  const s = standby();
  for (const e of [put('a', 1), cp('a', 2, cut3), put('a', 3), put('a', 4), put('a', 7)]) s.offer(e);
  t.is(s.pos.get('a')?.s, 2);
  t.deepEqual(s.sequencer.gaps(), [{ journal: 'a', from: 5, to: 6, epoch: 1, held: 1 }]);
  t.true(s.sequencer.holding);
});

test('barriers: a second checkpoint behind the first is held in its turn', (t) => {
  const cutA: CheckpointCut[] = [{ j: 'a', e: 1, s: 1 }, { j: 'b', e: 1, s: 1 }];
  const cutB: CheckpointCut[] = [{ j: 'a', e: 1, s: 2 }, { j: 'b', e: 1, s: 2 }];
  const s = standby();
  for (const e of [cp('a', 1, cutA, 'k1', 'one'), cp('a', 2, cutB, 'k2', 'two'), put('a', 3), cp('b', 1, cutA, 'k1', 'one')]) s.offer(e);
  t.deepEqual(s.said.filter((x) => x.startsWith('reached')), ['reached one']);
  t.deepEqual(s.applied, ['a1', 'b1', 'a2']);
  s.offer(cp('b', 2, cutB, 'k2', 'two'));
  t.deepEqual(s.said.filter((x) => x.startsWith('reached')), ['reached one', 'reached two']);
  t.deepEqual(s.atReach, [{ a: 1, b: 1 }, { a: 2, b: 2 }]);
  t.deepEqual(s.applied.slice(3).sort(), ['a3', 'b2']);
});

test('barriers: more waiting behind a checkpoint than the memory bounds allow fails it', (t) => {
  const s = standby({ maxHeld: { entries: 2, bytes: 10_000 } });
  for (const e of [put('a', 1), cp('a', 2, cut3), put('a', 3), put('a', 4), put('a', 5)]) s.offer(e);
  t.regex(s.said.at(-1)!, /^failed nightly: what waits behind it \(3 entries of journal a, 3 bytes in all\) exceeds the replayer's bounds \(2 entries of a journal, 10000 bytes\)$/);
  t.deepEqual(s.applied, ['a1', 'a2', 'a3', 'a4', 'a5']);
});

test('barriers: a replayer of one journal (--name) fails a checkpoint of several, and goes on', (t) => {
  const s = standby({ only: 'a' });
  for (const e of [put('a', 1), cp('a', 2, cut3), put('a', 3)]) s.offer(e);
  t.deepEqual(s.said, ['failed nightly: this replayer applies journal a only (--name): a checkpoint of 3 journals cannot be reached by it']);
  t.deepEqual(s.applied, ['a1', 'a2', 'a3']);
});

test('barriers: a transaction is staged until its end, then handed over whole; another journal interleaved goes on meanwhile', (t) => {
  const s = standby();
  for (const e of [put('a', 1), tx('a', 2, 'begin'), put('b', 1), inTx('a', 3), put('b', 2), inTx('a', 4), tx('a', 5, 'end'), put('a', 6)]) {
    s.offer(e);
    if (e.h.j === 'a' && e.h.s === 4) {
      t.deepEqual(s.barriers.staging(), [{ journal: 'a', ids: ['t1'], since: 2, entries: 3, bytes: 2 }]);
      t.is(s.pos.get('a')?.s, 1); // nothing of it is applied: the position stays before it
    }
  }
  t.deepEqual(s.applied, ['a1', 'b1', 'b2', '[a2 a3 a4 a5]', 'a6']);
  t.deepEqual(s.barriers.staging(), []);
});

test('barriers: nested transactions are handed over when the last one open ends', (t) => {
  const s = standby();
  for (const e of [tx('a', 1, 'begin', 't1'), inTx('a', 2, 't1'), tx('a', 3, 'begin', 't2'), inTx('a', 4, 't2'), tx('a', 5, 'end', 't1')]) s.offer(e);
  t.deepEqual(s.applied, []);
  t.deepEqual(s.barriers.staging()[0].ids, ['t1', 't2']);
  s.offer(tx('a', 6, 'end', 't2'));
  t.deepEqual(s.applied, ['[a1 a2 a3 a4 a5 a6]']);
});

test('barriers: a transaction whose end never comes applies nothing and is listed as unfinished', (t) => {
  const s = standby();
  for (const e of [put('a', 1), tx('a', 2, 'begin'), inTx('a', 3), inTx('a', 4)]) s.offer(e);
  t.deepEqual(s.applied, ['a1']);
  t.deepEqual(s.barriers.unfinished().map((u) => ({ journal: u.journal, ids: u.ids, entries: u.entries.map(label) })), [{ journal: 'a', ids: ['t1'], entries: ['a2', 'a3', 'a4'] }]);
  // Read again after a restart: the same entries are staged again, still none applied.
  const again = standby({ start: { a: { e: 1, s: 1 } } });
  for (const e of [put('a', 1), tx('a', 2, 'begin'), inTx('a', 3), inTx('a', 4)]) again.offer(e);
  t.deepEqual(again.applied, []);
  t.is(again.barriers.staging()[0].entries, 3);
});

test('barriers: a checkpoint entry inside a transaction fails the checkpoint, saying why, and stays in the transaction', (t) => {
  const cut: CheckpointCut[] = [{ j: 'a', e: 1, s: 3 }, { j: 'b', e: 1, s: 1 }];
  const s = standby();
  for (const e of [tx('a', 1, 'begin'), inTx('a', 2), cp('a', 3, cut), tx('a', 4, 'end'), cp('b', 1, cut), put('b', 2)]) s.offer(e);
  t.deepEqual(s.said, ['failed nightly: journal a\'s checkpoint entry 1.3 arrived inside its transaction t1']);
  t.deepEqual(s.applied, ['[a1 a2 a3 a4]', 'b1', 'b2']);
});

test('barriers: a transaction begun behind a checkpoint is staged once the checkpoint is reached', (t) => {
  const cut: CheckpointCut[] = [{ j: 'a', e: 1, s: 1 }, { j: 'b', e: 1, s: 1 }];
  const s = standby();
  for (const e of [cp('a', 1, cut), tx('a', 2, 'begin'), inTx('a', 3), cp('b', 1, cut)]) s.offer(e);
  t.deepEqual(s.applied, ['a1', 'b1']);
  t.is(s.barriers.staging()[0].entries, 2);
  s.offer(tx('a', 4, 'end'));
  t.deepEqual(s.applied, ['a1', 'b1', '[a2 a3 a4]']);
});

test('barriers: a transaction larger than maxStaged is refused, naming it and the bound', (t) => {
  const s = standby({ maxStaged: { entries: 3, bytes: 10_000 } });
  for (const e of [tx('a', 1, 'begin'), inTx('a', 2), inTx('a', 3)]) s.offer(e);
  const err = t.throws(() => s.offer(inTx('a', 4)), { instanceOf: ApplyError });
  t.regex(err!.message, /^journal a: transaction t1 \(begun .+\) is larger than this standby stages whole \(3 entries or 10000 bytes, DEFAULTS\.replay\.maxStaged\) at 1\.4; none of it is applied; stopping$/);
  t.deepEqual(s.applied, []);
});

test('barriers: a new process of the journal (a later epoch) ends what the last one left open: its changes are on the primary\'s disk, and are applied before the new ones', (t) => {
  const s = standby();
  s.offer(tx('a', 1, 'begin'));
  s.offer(inTx('a', 2));
  t.deepEqual(s.applied, []);
  // The process was SIGKILLed inside it and started again: its next entry has a new epoch.
  s.offer({ ...put('a', 3), h: { ...put('a', 3).h, e: 2 } });
  t.deepEqual(s.applied, ['[a1 a2]', 'a3']);
  t.deepEqual(s.said, ['cut short a t1: 2 at 2.3']);
  t.deepEqual(s.barriers.unfinished(), []);
});

test('barriers: at a promotion, what is staged behind a transaction that never ended and belongs to none open (one that ended, calls outside) is applied; only the open one is set aside', (t) => {
  const s = standby({ promoting: true });
  for (const e of [tx('a', 1, 'begin', 't2'), inTx('a', 2, 't2'), tx('a', 3, 'begin', 't1'), inTx('a', 4, 't1'), tx('a', 5, 'end', 't1'), put('a', 6)]) s.offer(e);
  t.deepEqual(s.applied, [], 'all of it waits behind t2 while the stream may still bring its end');
  s.run(s.barriers.endOfStream(0), 0);
  t.deepEqual(s.applied, ['[a3 a4 a5 a6]']);
  t.deepEqual(s.said, ['never ended a t2: 4 applied, 2 aside']);
  const u = s.barriers.unfinished();
  t.deepEqual(u.map((x) => ({ journal: x.journal, ids: x.ids, entries: x.entries.map(label) })), [{ journal: 'a', ids: ['t2'], entries: ['a1', 'a2'] }]);
});

test('barriers: a drain that is not a promotion keeps a transaction open at the end of the stream whole: its end may still come', (t) => {
  const s = standby();
  for (const e of [tx('a', 1, 'begin', 't2'), inTx('a', 2, 't2'), put('a', 3)]) s.offer(e);
  s.run(s.barriers.endOfStream(0), 0);
  t.deepEqual(s.applied, []);
  t.is(s.barriers.unfinished()[0].entries.length, 3);
});
