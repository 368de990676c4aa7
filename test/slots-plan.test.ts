import test from 'ava';
import { heldBytes, keptFrom, plan, type SlotView, type StreamView } from '../replayer/slots/plan';
import type { StandbyRecord } from '../lib/state-bucket';

const MiB = 1024 * 1024;
/** A stream of messages 1..1000, 100 MiB, max 128 MiB, two journals. */
const stream: StreamView = { firstSeq: 1, lastSeq: 1000, bytes: 100 * MiB, maxBytes: 128 * MiB, journals: ['app', 'app-1'], created: 'c1' };

function slot(key: string, streamSeq: number, journals: Record<string, { e: number; s: number }>, extra: Partial<StandbyRecord> & { lost?: boolean; oldestUnappliedMs?: number } = {}): SlotView {
  const { lost = false, oldestUnappliedMs, ...rec } = extra;
  return { key, lost, ...(oldestUnappliedMs === undefined ? {} : { oldestUnappliedMs }), record: { name: key, host: 'h', pid: 1, streamSeq, journals, committedAt: 0, time: 0, streamCreated: 'c1', keepBytes: 0, ...rec } };
}

test('the stream is purged and the spools trimmed below the slowest standby, never below one alone', (t) => {
  const p = plan([slot('b1', 900, { app: { e: 1, s: 450 }, 'app-1': { e: 2, s: 440 } }), slot('b2', 600, { app: { e: 1, s: 300 }, 'app-1': { e: 2, s: 290 } })], stream);
  t.deepEqual(p.lose, []);
  t.deepEqual([...p.purgeBelow], [['app', 601], ['app-1', 601]]);
  t.deepEqual([...p.spool], [['app', { e: 1, s: 300 }], ['app-1', { e: 2, s: 290 }]]);
});

test('a standby that never applied a journal holds its spool whole', (t) => {
  const p = plan([slot('b1', 900, { app: { e: 1, s: 450 } })], stream);
  t.deepEqual(p.spool.get('app-1'), { e: 0, s: 0 });
});

test('a replayer of one journal holds back only that journal', (t) => {
  const p = plan([slot('b1', 900, { app: { e: 1, s: 450 }, 'app-1': { e: 2, s: 440 } }), slot('b2.app-1', 200, { 'app-1': { e: 2, s: 100 } }, { journal: 'app-1' })], stream);
  t.deepEqual([...p.purgeBelow], [['app', 901], ['app-1', 201]]);
  t.deepEqual(p.spool.get('app'), { e: 1, s: 450 });
  t.deepEqual(p.spool.get('app-1'), { e: 2, s: 100 });
});

test('past its bytes limit a standby is lost, and the stream and spools move on without it', (t) => {
  // 97 MiB of the stream after b2's position: its default limit is 75 % of 128 MiB, 96 MiB.
  const b2 = slot('b2', 30, { app: { e: 1, s: 20 } }, { keepBytes: undefined });
  const p = plan([slot('b1', 990, { app: { e: 1, s: 495 }, 'app-1': { e: 2, s: 495 } }), b2], stream);
  t.deepEqual(p.lose.map((l) => l.key), ['b2']);
  t.regex(p.lose[0].reason, /^it held back about 97\.0 MiB of the stream \(its limit: 96\.0 MiB\)$/);
  t.deepEqual([...p.purgeBelow], [['app', 991], ['app-1', 991]]);
  t.deepEqual(p.spool.get('app'), { e: 1, s: 495 });
});

test('its own --max-standby-lag, in bytes or in age, is what a standby is judged by', (t) => {
  const small = plan([slot('b1', 990, {}), slot('b2', 900, {}, { maxLag: { bytes: 5 * MiB } })], stream);
  t.deepEqual(small.lose.map((l) => l.key), ['b2'], '10 MiB behind, limit 5 MiB');
  const old = plan([slot('b1', 990, {}), slot('b2', 980, {}, { maxLag: { ms: 60_000 }, oldestUnappliedMs: 120_000 })], stream);
  t.regex(old.lose[0]?.reason ?? '', /^the oldest entry it had not applied was 2 min old \(its limit: 60 s\)$/);
  t.deepEqual(plan([slot('b1', 990, {}), slot('b2', 900, {}, { maxLag: { bytes: 5 * MiB } })], stream, () => false).lose, [], 'not yet confirmed: given more time');
  const young = plan([slot('b1', 990, {}), slot('b2', 980, {}, { maxLag: { ms: 60_000 }, oldestUnappliedMs: 30_000 })], stream);
  t.deepEqual(young.lose, []);
});

test('a lost standby holds nothing back; when only lost ones apply a journal, the furthest of them bounds it', (t) => {
  const p = plan([slot('b1', 800, { app: { e: 1, s: 400 } }), slot('b2', 100, { app: { e: 1, s: 50 } }, { lost: true })], stream);
  t.deepEqual(p.lose, [], 'not marked again');
  t.is(p.purgeBelow.get('app'), 801);
  const alone = plan([slot('b2', 100, { app: { e: 1, s: 50 } }, { lost: true }), slot('b3', 300, { app: { e: 1, s: 150 } }, { lost: true })], stream);
  t.is(alone.purgeBelow.get('app'), 301);
  t.deepEqual(alone.spool.get('app'), { e: 1, s: 150 });
});

test('a position in an earlier stream of the name vouches for nothing in this one', (t) => {
  const p = plan([slot('b1', 900, { app: { e: 1, s: 450 } }, { streamCreated: 'c0' })], stream);
  t.is(p.purgeBelow.get('app'), 1, 'nothing purged');
  t.deepEqual(p.spool.get('app'), { e: 1, s: 450 }, 'entry positions are the agents\', not the stream\'s: they still hold');
});

test('the newest --keep-stream bytes stay in the stream whatever was committed; the largest of the standbys\' wins', (t) => {
  t.is(keptFrom(10 * MiB, stream), 901, '10 MiB of 100 MiB: the last tenth');
  t.is(keptFrom(200 * MiB, stream), 1, 'more than the stream holds: nothing goes');
  const p = plan([slot('b1', 1000, { app: { e: 1, s: 500 } }, { keepBytes: 10 * MiB }), slot('b2', 1000, { app: { e: 1, s: 500 } }, { keepBytes: 20 * MiB })], stream);
  t.is(p.purgeBelow.get('app'), 801);
  t.deepEqual(p.spool.get('app'), { e: 1, s: 500 }, 'the spools need not keep what the stream keeps');
  const byDefault = plan([slot('b1', 1000, {}, { keepBytes: undefined })], stream);
  t.is(byDefault.purgeBelow.get('app'), keptFrom(32 * MiB, stream), '25 % of max_bytes');
});

test('held bytes are the stream\'s share after a position: the slowest standby\'s is the whole stream', (t) => {
  t.is(heldBytes(0, stream), 100 * MiB);
  t.is(heldBytes(500, stream), 50 * MiB);
  t.is(heldBytes(1000, stream), 0);
  t.is(heldBytes(10, { ...stream, firstSeq: 501 }), 100 * MiB, 'below the first message: all of it');
});

test('no standby applies a journal: it is not touched', (t) => {
  const p = plan([slot('b1.app', 900, { app: { e: 1, s: 450 } }, { journal: 'app' })], stream);
  t.false(p.purgeBelow.has('app-1'));
  t.false(p.spool.has('app-1'));
});
