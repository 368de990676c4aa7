import test from 'ava';
import type { SqliteOp } from '../lib/entry';
import type { PageSet } from '../lib/sqlite-pages';
import { decide, type DbPosition } from '../replayer/apply/sqlite-order';

// How the standby places a database's entries against what it holds: pure logic, every branch.

const G1 = '00000001aaaaaaaa';
const G2 = '00000002bbbbbbbb';
const txn = (end: number): PageSet => ({ end, size: 3, pages: new Map([[1, Buffer.alloc(512)]]) });
const wal = (bw: string, bk: number, w: string, ends: number[]): [SqliteOp, PageSet[]] => [{ op: 'sqlite', kind: 'wal', w, k: ends.at(-1) ?? 0, bw, bk, ps: 512 }, ends.map(txn)];
const image = (w: string, k: number): [SqliteOp, PageSet[]] => [{ op: 'sqlite', kind: 'image', w, k, ps: 512 }, [txn(k)]];
const at = (w: string, k: number, o = 100): DbPosition => ({ w, k, o });
const ends = (v: ReturnType<typeof decide>): number[] | string => (v.kind === 'apply' ? v.txns.map((t) => t.end) : v.kind);

test('an image: applied on an empty standby, in its generation only when newer, across generations by host order', (t) => {
  t.deepEqual(ends(decide(undefined, image(G1, 5)[0], 1, image(G1, 5)[1])), [5]);
  t.is(decide(at(G1, 9), image(G1, 5)[0], 200, image(G1, 5)[1]).kind, 'duplicate', 'older in its generation, whatever its host order');
  t.is(decide(at(G1, 5), image(G1, 5)[0], 200, image(G1, 5)[1]).kind, 'duplicate', 'the same position');
  t.true(decide(at(G1, 5), image(G1, 6)[0], 1, image(G1, 6)[1]).kind === 'apply');
  t.is(decide(at(G1, 5, 100), image(G2, 1)[0], 99, image(G2, 1)[1]).kind, 'duplicate', 'another generation, read before what the standby holds');
  t.true(decide(at(G1, 5, 100), image(G2, 1)[0], 101, image(G2, 1)[1]).kind === 'apply');
});

test('changes: continuing, overlapping (another journal applied part), duplicate, with a gap, spanning the position', (t) => {
  const d = (pos: DbPosition | undefined, [op, txns]: [SqliteOp, PageSet[]]) => ends(decide(pos, op, 150, txns));
  t.deepEqual(d(at(G1, 4), wal(G1, 4, G1, [6, 9])), [6, 9], 'continues');
  t.deepEqual(d(at(G1, 6), wal(G1, 4, G1, [6, 9])), [9], 'its first transaction came in another journal');
  t.is(d(at(G1, 9), wal(G1, 4, G1, [6, 9])), 'duplicate');
  t.is(d(at(G1, 12), wal(G1, 4, G1, [6, 9])), 'duplicate');
  t.is(d(at(G1, 3), wal(G1, 4, G1, [6, 9])), 'doubt', 'frames 4..3 missing');
  t.is(d(at(G1, 5), wal(G1, 4, G1, [6, 9])), 'doubt', 'no transaction starts at 5');
  t.is(d(undefined, wal(G1, 4, G1, [6])), 'doubt', 'no image yet');
});

test('changes into the next generation: applied when they build on exactly what the standby holds', (t) => {
  const d = (pos: DbPosition, [op, txns]: [SqliteOp, PageSet[]], o = 150) => ends(decide(pos, op, o, txns));
  t.deepEqual(d(at(G1, 9), wal(G1, 9, G2, [2, 3])), [2, 3], 'the restart followed a full read of G1');
  t.deepEqual(d(at(G2, 2), wal(G1, 9, G2, [2, 3])), [3], 'another journal already moved the standby into G2');
  t.is(d(at(G2, 3), wal(G1, 9, G2, [2, 3])), 'duplicate');
  t.is(d(at(G1, 7), wal(G1, 9, G2, [2])), 'doubt', 'builds on frame 9 of G1, standby at 7');
  t.is(d(at(G2, 1, 200), wal(G1, 2, G1, [3]), 150), 'duplicate', 'an older generation, journaled before what the standby holds');
  t.is(d(at(G2, 1, 100), wal(G1, 2, G1, [3]), 150), 'doubt', 'an older generation journaled later: it cannot be placed');
  t.deepEqual(d(at(G1, 9), wal(G1, 9, G2, [])), [], 'a restart alone moves the position and writes nothing');
});

test('rollback-journal changes: only on the change counter they build on', (t) => {
  const op = (bk: number, k: number): SqliteOp => ({ op: 'sqlite', kind: 'rollback', w: 'r', k, bw: 'r', bk, ps: 512 });
  t.deepEqual(ends(decide(at('r', 4), op(4, 5), 1, [txn(5)])), [5]);
  t.is(decide(at('r', 5), op(4, 5), 1, [txn(5)]).kind, 'duplicate');
  t.is(decide(at('r', 3), op(4, 5), 1, [txn(5)]).kind, 'doubt');
});
