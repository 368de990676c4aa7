import test from 'ava';
import type { KvEntry } from '@nats-io/kv';
import { parseState, parseStateKey, stateKey, STATE_KINDS, type StateKind, type StateRecords } from '../lib/state-bucket';

/** A bucket entry as nats.js hands it over, for the parts parseState reads. */
function entry(value: string, operation: 'PUT' | 'DEL' | 'PURGE' = 'PUT'): KvEntry {
  return { operation, string: () => value } as unknown as KvEntry;
}

/** Per kind: a record its writer writes, and ways a record of it can be broken (each must read as absent). */
const CASES: { [K in StateKind]: { good: StateRecords[K]; broken: Record<string, unknown>[] } } = {
  agent: {
    good: { name: 'app', epoch: 3, mode: 'async', pid: 42, host: 'h', appended: 9, acked: { epoch: 3, seq: 7 }, time: 1, dropped: 0 },
    broken: [
      { name: 'app', epoch: 3, appended: 9, acked: { seq: 7 }, time: 1 }, // no acked.epoch: a verify would compare against nothing
      { name: 'app', epoch: 3, appended: '9', acked: { epoch: 3, seq: 7 }, time: 1 },
      { name: 'app', epoch: 3, appended: 9, acked: null, time: 1 },
    ],
  },
  applied: {
    good: { e: 3, s: 7, t: 100, appliedAt: 200, failing: 'EIO' },
    broken: [{ e: 3, t: 100 }, { e: '3', s: 7 }],
  },
  fence: {
    good: { e: 3, s: 7, at: '2026-12-01T00:00:00.000Z', by: 'host-b', standby: 'b1' },
    broken: [
      { e: 3, s: 7, at: '2026-12-01T00:00:00.000Z' },
      { e: 3, s: 7, at: 1, by: 'standby' },
      { e: 3, s: 7, at: '2026-12-01T00:00:00.000Z', by: 'host-b', standby: 1 }, // a name that is no name: status would print a number as who was promoted
      { e: 3, s: -1, at: '2026-12-01T00:00:00.000Z', by: 'host-b' }, // no entry is before the first: it would fence every entry
      { e: 3.5, s: 7, at: '2026-12-01T00:00:00.000Z', by: 'host-b' },
      { e: 3, s: 7, at: '2026-12-01T00:00:00.000Z', by: 'host-b', standby: 'b 1' }, // not a standby's name (promote --standby would refuse it)
      { e: 3, s: 7, at: '2026-12-01\nunderstudy replay: all is well', by: 'host-b' }, // a line of its own in every standby's log
    ],
  },
  doubts: {
    good: { standby: 'b', count: 1, objects: [{ root: 'data', path: 'f', why: 'late', at: 5 }], time: 6 },
    broken: [{ standby: 'b', count: 1, time: 6 }, { standby: 'b', count: '1', objects: [], time: 6 }],
  },
  watch: {
    good: { name: 'w', journaled: 4, polled: 0, time: 7, mendedTotal: 2 },
    broken: [{ name: 'w', journaled: 4, time: 7 }, { journaled: 4, polled: 0, time: 7 }],
  },
  baseline: {
    good: { state: 'done', started: 1, finished: 2, roots: ['data'], objects: 3, bytes: 4 },
    broken: [{ state: 'done', started: 1, objects: 3, bytes: 4 }, { started: 1, roots: [], objects: 3, bytes: 4 }],
  },
  standby: {
    good: { name: 'b1', journal: 'app', host: 'h', pid: 9, streamSeq: 57, journals: { app: { e: 3, s: 12 } }, committedAt: 5, time: 6 },
    broken: [{ name: 'b1', streamSeq: 57, committedAt: 5, time: 6 }, { name: 'b1', streamSeq: '57', journals: {}, committedAt: 5, time: 6 }, { streamSeq: 57, journals: {}, committedAt: 5, time: 6 }],
  },
  lost: {
    good: { standby: 'b2', since: 10, reason: 'held back 96 MiB of the stream (limit 64 MiB)', by: 'b1', streamSeq: 40 },
    broken: [{ standby: 'b2', since: 10, reason: 'r', streamSeq: 40 }, { standby: 'b2', since: '10', reason: 'r', by: 'b1', streamSeq: 40 }],
  },
  rebase: {
    good: { standby: 'b2', state: 'running', requested: 10, by: 'app on h', started: 11, step: 'baseline' },
    broken: [{ standby: 'b2', requested: 10 }, { state: 'requested', requested: 10 }, { standby: 'b2', state: 'requested' }],
  },
  trim: {
    good: { e: 2, s: 90, by: 'b1', time: 12 },
    broken: [{ e: 2, s: 90, time: 12 }, { e: 2, by: 'b1', time: 12 }],
  },
  checkpoint: {
    good: { name: 'nightly', id: 'c1', state: 'taken', started: 1, finished: 2, cut: [{ j: 'app', e: 3, s: 9 }], frozenMs: 4 },
    broken: [{ name: 'nightly', id: 'c1', started: 1, cut: [] }, { name: 'nightly', id: 'c1', state: 'taken', started: 1 }, { id: 'c1', state: 'taken', started: 1, cut: [] }],
  },
  checkpoints: {
    good: { standby: 'b1', time: 5, checkpoints: [{ name: 'nightly', id: 'c1', time: 1, cut: [{ j: 'app', e: 3, s: 9 }], reachedAt: 3, bytes: 10 }] },
    broken: [{ standby: 'b1', time: 5 }, { time: 5, checkpoints: [] }, { standby: 'b1', time: '5', checkpoints: [] }],
  },
  verify: {
    good: { time: 1, roots: ['data'], equal: true, differences: 0, repaired: 0, unsettled: 0 },
    broken: [{ time: 1, roots: ['data'], equal: 'yes', differences: 0, repaired: 0 }, { roots: ['data'], equal: true, differences: 0, repaired: 0 }],
  },
};

test('fence: a record of an older version, without the promoted standby\'s name, still reads', (t) => {
  const old = { e: 3, s: 7, at: '2026-12-01T00:00:00.000Z', by: 'host-b' };
  t.deepEqual(parseState('fence', entry(JSON.stringify(old))), old);
});

test('every kind of record has cases here, and nothing else does', (t) => {
  t.deepEqual(Object.keys(CASES).sort(), [...STATE_KINDS].sort());
});

for (const kind of STATE_KINDS) {
  const c = CASES[kind];
  test(`${kind}: a record as its writer writes it reads back whole`, (t) => {
    t.deepEqual(parseState(kind, entry(JSON.stringify(c.good))), c.good);
  });
  test(`${kind}: a record without the fields its readers rely on reads as absent`, (t) => {
    for (const b of c.broken) t.is(parseState(kind, entry(JSON.stringify(b))), undefined, JSON.stringify(b));
  });
  test(`${kind}: not JSON, not an object, deleted or purged reads as absent`, (t) => {
    for (const text of ['{', 'null', '7', '"agent"', '[]']) t.is(parseState(kind, entry(text)), undefined, text);
    t.is(parseState(kind, entry(JSON.stringify(c.good), 'DEL')), undefined);
    t.is(parseState(kind, entry(JSON.stringify(c.good), 'PURGE')), undefined);
    t.is(parseState(kind, null), undefined);
  });
  test(`${kind}: its key names it, and is read back as the same kind and name`, (t) => {
    t.is(stateKey(kind, 'app-1.t2'), `${kind}.app-1.t2`);
    t.deepEqual(parseStateKey(stateKey(kind, 'app-1.t2')), { kind, name: 'app-1.t2' });
  });
}

test('a key of no kind is not a record', (t) => {
  for (const k of ['nothing.app', 'agent', '.app', 'toString.app', '__proto__.x']) t.is(parseStateKey(k), undefined, k);
});
