import test from 'ava';
import { MessageChannel } from 'node:worker_threads';
import { FreezeGate } from '../agent/freeze';
import { CheckpointService } from '../agent/ship/checkpoint-service';
import { checkpointEntryWriter, writeEntry } from '../agent/checkpoint-entry';
import { Transactions } from '../agent/transactions';
import { APPENDED, createShared, publishPosition, readPosition, ACKED, FROZEN, gateCells } from '../agent/shared-state';
import type { Change, JournalSink } from '../agent/sink';
import { MemorySink } from './helpers/memory-sink';
import type { CheckpointReply } from '../lib/checkpoint-protocol';

/**
 * The gate, the worker's service and the entry writer in one thread, over the same cells and a
 * real MessageChannel: the logic of the freeze, without processes (test/checkpoint.test.ts has those).
 */
function rig() {
  const shared = createShared();
  const mem = new MemorySink();
  const sink: JournalSink = {
    record(c: Change) {
      const s = mem.record(c);
      publishPosition(shared, APPENDED, s);
      // As if the shipper acknowledged at once.
      publishPosition(shared, ACKED, s);
      return s;
    },
  };
  const channel = new MessageChannel();
  const gate = new FreezeGate(shared);
  const place = { epoch: 7, get lastSeq() { return mem.lastSeq; } };
  gate.listen(channel.port1, checkpointEntryWriter(place, sink, channel.port1));
  const service = new CheckpointService({ name: 'app', epoch: 7, shared, appended: () => readPosition(shared, APPENDED) }, channel.port2, 1);
  // A prepare is sent now unless the test says when (the agent refuses one past its deadline).
  const ask = (req: { op: string; sentAt?: number; [k: string]: unknown }): Promise<CheckpointReply> => service.handle(JSON.stringify(req.op === 'prepare' ? { sentAt: Date.now(), ...req } : req));
  /** A gated asynchronous "call": journals a put of `p` once it passes the gate. */
  const call = async (p: string): Promise<void> => {
    while (!gate.tryEnter()) await gate.thawed();
    try {
      sink.record({ root: 'data', path: p, op: { op: 'put', mode: 0o644 }, data: Buffer.from(p) });
    } finally {
      gate.leave();
    }
  };
  const close = (): void => {
    channel.port1.close();
    channel.port2.close();
  };
  return { shared, mem, sink, gate, ask, call, close };
}

test('prepare freezes: a call made meanwhile waits, and after the commit finds the checkpoint entry written first, at the promised seq', async (t) => {
  const r = rig();
  t.teardown(r.close);
  await r.call('before');
  const prepared = await r.ask({ op: 'prepare', name: 'n1', id: 'i1', thawAfterMs: 5000 });
  t.like(prepared, { ok: true, j: 'app', e: 7, s: 2 });
  let done = false;
  const during = r.call('during').then(() => (done = true));
  await new Promise((res) => setTimeout(res, 30));
  t.false(done, 'the call waits while frozen');
  t.is(r.mem.lastSeq, 1);
  const committed = await r.ask({ op: 'commit', name: 'n1', id: 'i1', cut: [{ j: 'app', e: 7, s: 2 }] });
  t.like(committed, { ok: true, s: 2 });
  await during;
  t.deepEqual(r.mem.changes.map((c) => [c.op.op, c.path, c.first]), [['put', 'before', 1], ['checkpoint', 'n1', 2], ['put', 'during', 3]]);
});

test('with no commit the freeze ends at its deadline; a commit after it is refused and writes nothing', async (t) => {
  const r = rig();
  t.teardown(r.close);
  t.like(await r.ask({ op: 'prepare', name: 'n2', id: 'i2', thawAfterMs: 40 }), { ok: true, s: 1 });
  await r.call('after-deadline');
  const late = await r.ask({ op: 'commit', name: 'n2', id: 'i2', cut: [{ j: 'app', e: 7, s: 1 }] });
  t.false(late.ok);
  t.deepEqual(r.mem.changes.map((c) => c.path), ['after-deadline']);
});

test('abort thaws at once; a second prepare while one is in progress is refused; a bad request says what is wrong', async (t) => {
  const r = rig();
  t.teardown(r.close);
  t.true((await r.ask({ op: 'prepare', name: 'n3', id: 'i3', thawAfterMs: 5000 })).ok);
  t.like(await r.ask({ op: 'prepare', name: 'n4', id: 'i4', thawAfterMs: 5000 }), { ok: false });
  t.true((await r.ask({ op: 'abort', name: 'n3', id: 'i3' })).ok);
  await r.call('free');
  t.is(r.mem.lastSeq, 1);
  const bad = await r.ask({ op: 'prepare', name: 'n5', id: 'i5', thawAfterMs: 0 });
  t.false(bad.ok);
  t.regex(bad.ok ? '' : bad.why, /thawAfterMs/);
});

test('prepare waits until no transaction is open, and holds new ones back until the commit', async (t) => {
  const r = rig();
  t.teardown(r.close);
  const tx = new Transactions(r.sink, r.gate, r.shared, 7);
  let release: () => void = () => {};
  const open = tx.run(() => new Promise<void>((res) => (release = res)));
  await new Promise((res) => setTimeout(res, 10));
  let prepared = false;
  const prep = r.ask({ op: 'prepare', name: 't1', id: 'it1', thawAfterMs: 5000 }).then((x) => {
    prepared = true;
    return x;
  });
  await new Promise((res) => setTimeout(res, 30));
  t.false(prepared, 'an open transaction holds the prepare');
  const later = tx.run(async () => 'second');
  release();
  await open;
  const reply = await prep;
  t.true(reply.ok);
  t.is(reply.ok ? reply.s : 0, 3, 'after the first transaction\'s begin and end');
  await r.ask({ op: 'commit', name: 't1', id: 'it1', cut: [{ j: 'app', e: 7, s: 3 }] });
  t.is(await later, 'second');
  t.deepEqual(r.mem.changes.map((c) => (c.op.op === 'tx' ? `tx ${c.op.ev}` : c.op.op)), ['tx begin', 'tx end', 'checkpoint', 'tx begin', 'tx end']);
});

test('the entry writer refuses a position that moved', (t) => {
  const mem = new MemorySink();
  mem.record({ root: 'data', path: 'x', op: { op: 'rm' } });
  const place = { epoch: 1, lastSeq: 1 };
  t.like(writeEntry(place, mem, { kind: 'commit', id: 'a', name: 'n', cut: [{ j: 'j', e: 1, s: 1 }], e: 1, s: 1 }), { kind: 'refused' });
  t.like(writeEntry(place, mem, { kind: 'commit', id: 'a', name: 'n', cut: [{ j: 'j', e: 1, s: 2 }], e: 1, s: 2 }), { kind: 'written', s: 2 });
});

test('a prepare that comes past its deadline (the agent was stopped meanwhile) is refused as too late and freezes nothing', async (t) => {
  const r = rig();
  t.teardown(r.close);
  const late = await r.ask({ op: 'prepare', name: 'old', id: 'iold', thawAfterMs: 1000, sentAt: Date.now() - 60_000 });
  t.false(late.ok);
  t.regex(late.ok ? '' : late.why, /too late: the prepare of old .*past its deadline/);
  t.is(Atomics.load(gateCells(r.shared), FROZEN), 0, 'not frozen');
  await r.call('free');
  t.is(r.mem.lastSeq, 1);
  const unsent = await r.ask({ op: 'prepare', name: 'n6', id: 'i6', thawAfterMs: 1000, sentAt: 0 });
  t.regex(unsent.ok ? '' : unsent.why, /bad sentAt/);
});

test('a stale prepare and its abort handled together (as after SIGCONT) leave the application unfrozen', async (t) => {
  const r = rig();
  t.teardown(r.close);
  // Both begin in one turn of the event loop, as two messages read from one socket buffer.
  const prepared = r.ask({ op: 'prepare', name: 'n7', id: 'i7', thawAfterMs: 50_000 });
  const aborted = r.ask({ op: 'abort', name: 'n7', id: 'i7' });
  t.true((await aborted).ok);
  t.false((await prepared).ok, 'the prepare does not claim a freeze that was aborted');
  t.is(Atomics.load(gateCells(r.shared), FROZEN), 0, 'nothing is left frozen by the prepare that went on after its abort');
  await r.call('free');
  t.is(r.mem.lastSeq, 1);
});
