import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EntryHeader, Op } from '../lib/entry';
import { Versions, type OrderVerdict } from '../replayer/order/versions';

let seq = 0;
const h = (j: string, o: number, p: string, op: Op): EntryHeader => ({ j, e: 1, s: ++seq, t: 1, o, r: 'data', p, ...op } as EntryHeader);
const put: Op = { op: 'put', mode: 0o644 };
const append: Op = { op: 'append', at: 0 };

/** Each case: entries applied in arrival order, then the verdict on the last one. */
const CASES: { name: string; applied: EntryHeader[]; next: EntryHeader; want: OrderVerdict }[] = [
  { name: 'in host order', applied: [h('a', 10, 'f', put)], next: h('b', 20, 'f', put), want: 'apply' },
  { name: 'a put older than a later put from another journal is superseded', applied: [h('b', 20, 'f', put)], next: h('a', 10, 'f', put), want: 'skip' },
  { name: 'an append older than a later put is superseded', applied: [h('b', 20, 'f', put)], next: h('a', 10, 'f', append), want: 'skip' },
  { name: 'an append older than later appends commutes (true offsets)', applied: [h('a', 5, 'f', put), h('b', 20, 'f', append)], next: h('a', 10, 'f', append), want: 'apply' },
  { name: 'a put older than a later append is in doubt', applied: [h('b', 20, 'f', append)], next: h('a', 10, 'f', put), want: 'doubt' },
  { name: 'anything below a directory removed later is superseded', applied: [h('b', 20, 'd', { op: 'rm' })], next: h('a', 10, 'd/x', put), want: 'skip' },
  { name: 'a change to a file moved away later is in doubt (it moved with it)', applied: [h('b', 20, 'f', { op: 'rename', toRoot: 'data', to: 'g' })], next: h('a', 10, 'f', put), want: 'doubt' },
  { name: 'a removal older than a later change below it is in doubt', applied: [h('b', 20, 'd/x', put)], next: h('a', 10, 'd', { op: 'rm' }), want: 'doubt' },
  { name: 'a journal\'s own later marks never make its entry late (re-apply after a restart)', applied: [h('a', 20, 'f', append)], next: h('a', 10, 'f', put), want: 'apply' },
  { name: 'entries without a host order (older agents) apply as before', applied: [h('b', 20, 'f', put)], next: { ...h('a', 10, 'f', put), o: undefined }, want: 'apply' },
];

for (const c of CASES) {
  test(`order: ${c.name}`, (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-order-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    const v = new Versions(dir, 0);
    for (const e of c.applied) v.note(e);
    t.is(v.place(c.next), c.want);
    v.close();
  });
}

test('order: doubts survive a restart and a later whole change clears them', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-order-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const v = new Versions(dir, 0);
  v.note(h('b', 20, 'f', append));
  v.doubt('data', 'f', 'test');
  v.sync();
  v.close();
  const again = new Versions(dir, 0);
  t.deepEqual(again.inDoubt().map((d) => d.path), ['f']);
  t.is(again.place(h('a', 10, 'f', put)), 'doubt', 'the marks came back too');
  again.note(h('a', 30, 'f', put));
  t.is(again.doubtCount, 0);
  again.close();
});
