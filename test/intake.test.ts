import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodeBatch } from '../lib/batch';
import { crc32 } from 'node:zlib';
import { encodeEntry } from '../lib/codec';
import type { EntryHeader } from '../lib/entry';
import { ApplyError, BadEntryError } from '../lib/errors';
import { FenceStore } from '../replayer/fence';
import { Intake, type Held } from '../replayer/intake';
import { makeOrder } from '../replayer/order/order';
import { Quarantine } from '../replayer/quarantine';
import { MemorySource } from '../replayer/source/memory';
import { PositionStore } from '../replayer/state';
import { emptySummary } from '../replayer/summary';

/** From stream messages to applied entries, over the memory source and a real --state directory; no nats-server. */

const put = (j: string, e: number, s: number, p = `f${s}`): EntryHeader => ({ j, e, s, t: s, r: 'data', p, op: 'put', mode: 0o644 });
const msg = (...hs: EntryHeader[]): Buffer => encodeBatch(hs.map((h) => encodeEntry(h, Buffer.from(h.p))));

function setup(t: import('ava').ExecutionContext, o: { onBadEntry?: 'halt' | 'skip'; refuse?: string } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-intake-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new PositionStore(dir);
  t.teardown(() => store.close());
  const applied: string[] = [];
  const logs: string[] = [];
  const doubts: string[] = [];
  const summary = emptySummary();
  const intake = new Intake({
    stream: 'UNDERSTUDY', onBadEntry: o.onBadEntry, waitsOut: false, log: (l) => logs.push(l), store,
    ...makeOrder<Held>((j) => store.positions.journals[j], { maxHeld: { entries: 100, bytes: 1_000_000 }, maxStaged: { entries: 100, bytes: 1_000_000 }, waitMs: 30_000 }),
    quarantine: new Quarantine(path.join(dir, 'quarantine')), fences: new FenceStore(dir), summary, changed: new Set(),
    apply: (h) => {
      if (h.p === o.refuse) throw new BadEntryError(`refused ${h.p}`);
      applied.push(`${h.j}.${h.s}`);
    },
    doubt: (root, rel, why) => doubts.push(`${root}/${rel}: ${why}`),
    distrust: () => {
      throw new Error('no disk fails here');
    },
  });
  return { dir, store, applied, logs, doubts, summary, intake, source: new MemorySource('UNDERSTUDY') };
}

async function takeAll(s: ReturnType<typeof setup>): Promise<void> {
  for await (const m of await s.source.open({ fromSeq: s.store.streamSeq + 1, toEnd: true })) await s.intake.take(m);
}

test('intake: a batch and single messages are applied in journal order, duplicates counted, the stream position moved', async (t) => {
  const s = setup(t);
  s.source.append('a', msg(put('a', 1, 1), put('a', 1, 2)));
  s.source.append('b', msg(put('b', 1, 1)));
  s.source.append('a', msg(put('a', 1, 2), put('a', 1, 3)));
  await takeAll(s);
  t.deepEqual(s.applied, ['a.1', 'a.2', 'b.1', 'a.3']);
  t.is(s.summary.applied, 4);
  t.is(s.summary.duplicates, 1);
  t.is(s.store.streamSeq, 3);
  t.deepEqual(s.store.positions.journals.a, { e: 1, s: 3, t: 3 });
});

test('intake: while entries are held behind a gap the stream position stays before them; the filler moves it on', async (t) => {
  const s = setup(t);
  s.source.append('a', msg(put('a', 1, 1)));
  s.source.append('a', msg(put('a', 1, 3)));
  s.source.append('b', msg(put('b', 1, 1)));
  await takeAll(s);
  t.deepEqual(s.applied, ['a.1', 'b.1']);
  t.is(s.store.streamSeq, 1, 'a restart reads the held entry again');
  s.source.append('a', msg(put('a', 1, 2)));
  await takeAll(s);
  t.deepEqual(s.applied, ['a.1', 'b.1', 'a.2', 'a.3']);
  t.is(s.store.streamSeq, 4);
});

test('intake: a message on another journal\'s subject is quarantined and stops the replayer (halt)', async (t) => {
  const s = setup(t);
  s.source.append('b', msg(put('a', 1, 1)));
  const err = await t.throwsAsync(takeAll(s), { instanceOf: BadEntryError });
  t.regex(err!.message, /^stream message 1 \(understudy\.understudy\.journal\.b\): entry of journal "a" arrived on another journal's subject; quarantined in \S+000000000001\.entry; stopping/);
  t.deepEqual(s.applied, []);
  t.true(fs.existsSync(path.join(s.dir, 'quarantine', '000000000001.json')));
});

test('intake: in skip mode a bad message is passed over and a refused entry of a batch alone is quarantined', async (t) => {
  const s = setup(t, { onBadEntry: 'skip', refuse: 'bad' });
  s.source.append('a', Buffer.from('not an entry'));
  s.source.append('a', msg(put('a', 1, 1), put('a', 1, 2, 'bad'), put('a', 1, 3)));
  await takeAll(s);
  t.deepEqual(s.applied, ['a.1', 'a.3']);
  t.is(s.summary.skipped, 2);
  t.is(s.summary.applied, 2);
  t.deepEqual(s.store.positions.journals.a, { e: 1, s: 3, t: 3 }, 'the refused entry is authentic: its place is passed');
  t.deepEqual(fs.readdirSync(path.join(s.dir, 'quarantine')).sort(), ['000000000001.entry', '000000000001.json', '000000000002.1.entry', '000000000002.1.json']);
  t.true(s.logs.some((l) => /^skipped: stream message 1 \(\S+\): .+; quarantined in \S+000000000001\.entry$/.test(l)), s.logs.join('\n'));
  t.true(s.logs.some((l) => /^skipped: refused bad; quarantined in \S+000000000002\.1\.entry$/.test(l)), s.logs.join('\n'));
  t.is(s.doubts.length, 1, 'what the refused entry changed is in doubt');
  t.regex(s.doubts[0], /^data\/bad: a\.1\.2 \(put\) was refused and passed over: refused bad; quarantined in /);
});

/** An entry whose checksum holds and whose header names its place, but that this version cannot decode (an operation it does not know). */
function unknownOp(j: string, e: number, s: number): Buffer {
  const good = encodeEntry(put(j, e, s), Buffer.alloc(0));
  const hlen = good.readUInt32BE(4);
  const header = Buffer.from(JSON.stringify({ ...JSON.parse(good.toString('utf8', 8, 8 + hlen)), op: 'from-a-newer-agent' }));
  const body = Buffer.alloc(8 + header.length + 4);
  good.copy(body, 0, 0, 4);
  body.writeUInt32BE(header.length, 4);
  header.copy(body, 8);
  body.writeUInt32BE(crc32(body.subarray(0, body.length - 4)), body.length - 4);
  return body;
}

test('intake: in skip mode an entry that names its place but does not decode passes that place: its journal goes on, and the journal is in doubt', async (t) => {
  const s = setup(t, { onBadEntry: 'skip' });
  s.source.append('a', msg(put('a', 1, 1)));
  s.source.append('a', unknownOp('a', 1, 2));
  s.source.append('a', msg(put('a', 1, 3)));
  await takeAll(s);
  t.deepEqual(s.applied, ['a.1', 'a.3'], 'the entry after it is not held behind a gap');
  t.is(s.summary.skipped, 1);
  t.deepEqual(s.store.positions.journals.a, { e: 1, s: 3, t: 3 });
  t.true(fs.existsSync(path.join(s.dir, 'quarantine', '000000000002.entry')));
  t.is(s.doubts.length, 1);
  t.regex(s.doubts[0], /^\/journal a: its entry a\.1\.2 could not be read \(stream message 2 \(\S+\): entry operation "from-a-newer-agent" is unknown\), and what it changed is not on the standby; quarantined in /);
});

test('intake: in halt mode the same entry stops the replayer, naming what is wrong', async (t) => {
  const s = setup(t);
  s.source.append('a', unknownOp('a', 1, 1));
  const err = await t.throwsAsync(takeAll(s), { instanceOf: BadEntryError });
  t.regex(err!.message, /entry operation "from-a-newer-agent" is unknown; quarantined in \S+; stopping/);
  t.deepEqual(s.applied, []);
  t.false(Object.hasOwn(s.store.positions.journals, 'a'), 'no place taken');
});

test('intake: more held than maxHeld allows stops with an ApplyError naming the journal', async (t) => {
  const s = setup(t);
  const small = new Intake({
    stream: 'UNDERSTUDY', waitsOut: false, log: () => undefined, store: s.store,
    ...makeOrder<Held>((j) => s.store.positions.journals[j], { maxHeld: { entries: 1, bytes: 1_000_000 }, maxStaged: { entries: 100, bytes: 1_000_000 }, waitMs: 30_000 }),
    quarantine: new Quarantine(path.join(s.dir, 'quarantine')), fences: new FenceStore(s.dir), summary: s.summary, changed: new Set(),
    apply: () => undefined, doubt: () => undefined, distrust: () => { throw new Error('unused'); },
  });
  s.source.append('a', msg(put('a', 1, 2)));
  s.source.append('a', msg(put('a', 1, 3)));
  const messages = (await s.source.open({ fromSeq: 1, toEnd: true }))[Symbol.asyncIterator]();
  await small.take((await messages.next()).value);
  await t.throwsAsync(small.take((await messages.next()).value), { instanceOf: ApplyError, message: 'journal a: entries after its start are missing from the stream (holding 1 later ones, 2 bytes)' });
});
