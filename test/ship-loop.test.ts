import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { splitMessage } from '../lib/batch';
import { decodeEntry, encodeEntry } from '../lib/codec';
import { TransportError } from '../lib/errors';
import { FRAME_HEAD, listSegments, readJson, segmentFile, spoolFiles, writeFrameHead, type AckedState, type LostRange, type OriginState } from '../lib/spool';
import { PublishTimeoutError } from '../lib/transport/journal-transport';
import { MemoryTransport } from '../lib/transport/memory';
import { ACKED, APPENDED, APPLIED, createShared, publishPosition, readPosition } from '../agent/shared-state';
import { MessageMaker } from '../agent/ship/messages';
import { ResendService } from '../agent/ship/resend-service';
import { ShipLoop, type ShipPace } from '../agent/ship/ship-loop';
import { ShippingJournal } from '../agent/ship/shipping-journal';
import { StateReporter } from '../agent/ship/state-reporter';
import { StreamAdoption } from '../agent/ship/stream-adoption';

/**
 * The ship loop, the acked position, stream adoption, the resend service and the state reporter
 * over the memory transport and a real spool directory: failures, probes, a deleted stream,
 * gaps and trims, driven one round at a time.
 */

/** The default pace but for its waits, which would only slow the rounds down. */
const PACE: ShipPace = {
  lingerMs: 0, maxInFlight: 4, probeFirstMs: 1000, probeMaxMs: 5000, backoffBaseMs: 1, backoffMaxMs: 2,
  corruptRetryMs: 1, gapRetryMs: 1, idleWakeMs: 1, streamCheckTimeoutMs: 2000,
};

/** Writes entries `from`..`to` of epoch 1 as one spool segment. */
function writeSegment(dir: string, from: number, to: number): void {
  const parts: Buffer[] = [];
  for (let s = from; s <= to; s++) {
    const entry = encodeEntry({ j: 'app', e: 1, s, t: 0, r: 'data', p: `f${s}`, op: 'put', mode: 0o644 }, Buffer.from(`v${s}`));
    const head = Buffer.alloc(FRAME_HEAD);
    writeFrameHead(head, 0, entry.length, 1, s);
    parts.push(head, entry);
  }
  fs.writeFileSync(segmentFile(dir, from), Buffer.concat(parts));
}

/** The seqs of every entry the stream holds, in stream order. */
function shippedSeqs(transport: MemoryTransport): number[] {
  return transport.messages.flatMap((m) => splitMessage(m.body).map((e) => decodeEntry(e).header.s));
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Polls `cond` until it holds; fails the test if it never does. */
async function until(t: ExecutionContext, what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  t.true(cond(), what);
}

/** A journal `app` in a temporary spool, shipped over a memory transport. */
async function shipper(t: ExecutionContext, spool: (dir: string) => void, appended: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-ship-'));
  spool(dir);
  const shared = createShared();
  publishPosition(shared, APPENDED, appended);
  const journal = ShippingJournal.open({ name: 'app', dir, stream: 'UNDERSTUDY', epoch: 1, mode: 'sync', firstSeq: 1, shared });
  const transport = new MemoryTransport();
  const stop = new AbortController();
  const reporter = new StateReporter(journal, { heartbeatMs: 60_000, beatSoonMs: 1, beatSoonHurriedMs: 1, appliedRewatchMs: 1 }, stop.signal);
  const messages = new MessageMaker('app', undefined);
  const loop = new ShipLoop({ journal, transport, messages, reporter, adoption: new StreamAdoption(journal, transport, reporter) }, PACE);
  loop.adopt(await transport.ensureStream());
  t.teardown(async () => {
    stop.abort();
    reporter.stop();
    journal.acked.flush();
    await transport.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, shared, journal, transport, loop, reporter, messages };
}

test('a backlog goes out in order, in messages of at most 512 entries, and acked follows', async (t) => {
  const s = await shipper(t, (dir) => writeSegment(dir, 1, 1200), 1200);
  await s.loop.round();
  t.deepEqual(s.transport.messages.map((m) => m.id), ['app.1.1-512', 'app.1.513-1024', 'app.1.1025-1200']);
  t.deepEqual(shippedSeqs(s.transport), range(1, 1200));
  t.deepEqual(s.journal.acked.current, { epoch: 1, seq: 1200 });
  t.is(readPosition(s.shared, ACKED), 1200);
});

test('a failed publish: acked stops before it, one probe goes first, then the rest; nothing is skipped or doubled', async (t) => {
  const s = await shipper(t, (dir) => writeSegment(dir, 1, 1200), 1200);
  const ensured = s.transport.ensureCalls;
  s.transport.refusePublish(1, new TransportError('no stream there'));
  await s.loop.round();
  // The third message went through, but acked never runs ahead of the hole the second left.
  t.deepEqual(s.journal.acked.current, { epoch: 1, seq: 512 });
  t.is(readPosition(s.shared, ACKED), 512);
  t.is(s.transport.ensureCalls, ensured + 1, 'a failure that is not a timeout has the stream looked at (made again if gone)');
  const before = s.transport.publishTimeouts.length;
  await s.loop.round();
  t.deepEqual(s.transport.publishTimeouts.slice(before), [1000], 'one message with a short timeout, alone');
  t.deepEqual(s.journal.acked.current, { epoch: 1, seq: 1024 });
  await s.loop.round();
  t.deepEqual(s.transport.publishTimeouts.slice(before + 1), [undefined], 'the probe passed: full speed again');
  t.deepEqual(s.journal.acked.current, { epoch: 1, seq: 1200 });
  t.deepEqual([...shippedSeqs(s.transport)].sort((a, b) => a - b), range(1, 1200), 'the resent third message was a duplicate');
});

test('publishes that time out: probes wait longer each time, and the stream is not made again', async (t) => {
  const s = await shipper(t, (dir) => writeSegment(dir, 1, 3), 3);
  const ensured = s.transport.ensureCalls;
  for (let i = 0; i < 3; i++) s.transport.refusePublish(i, new PublishTimeoutError('timeout'));
  for (let i = 0; i < 4; i++) await s.loop.round();
  t.deepEqual(s.transport.publishTimeouts, [undefined, 1000, 2000, 4000]);
  t.is(s.transport.ensureCalls, ensured);
  t.deepEqual(s.journal.acked.current, { epoch: 1, seq: 3 });
  t.deepEqual(shippedSeqs(s.transport), [1, 2, 3]);
});

test('a reconnect gives up on publishes the old server never answered: they go again, and acked reaches the end', async (t) => {
  const s = await shipper(t, (dir) => writeSegment(dir, 1, 3), 3);
  s.transport.stallPublish(0);
  const round = s.loop.round();
  s.transport.reconnect();
  await round;
  t.is(s.journal.acked.current.seq, 0);
  await s.loop.round();
  t.deepEqual(s.transport.publishTimeouts, [undefined, 1000], 'after the abandoned one, a probe');
  t.deepEqual(s.journal.acked.current, { epoch: 1, seq: 3 });
  t.deepEqual(shippedSeqs(s.transport), [1, 2, 3]);
});

test('a stream deleted under the shipper is made again and gets what the spool holds from its oldest entry', async (t) => {
  const s = await shipper(t, (dir) => writeSegment(dir, 1, 10), 10);
  await s.loop.round();
  t.is(s.journal.acked.current.seq, 10);
  writeSegment(s.dir, 11, 12);
  publishPosition(s.shared, APPENDED, 12);
  s.transport.deleteStream();
  await s.loop.round();
  t.deepEqual(readJson<OriginState>(spoolFiles(s.dir).origin), { stream: 'UNDERSTUDY', created: 'memory-stream-2', epoch: 1, seq: 1 });
  t.is(s.journal.acked.current.seq, 0, 'nothing of this journal is in the new stream yet');
  await s.loop.round();
  t.deepEqual(shippedSeqs(s.transport), range(1, 12));
  t.is(s.journal.acked.current.seq, 12);
});

test('a resend of a range partly trimmed answers where the spool begins and publishes the rest, tagged .again.', async (t) => {
  const s = await shipper(t, (dir) => {
    writeSegment(dir, 1, 5);
    writeSegment(dir, 6, 10);
    fs.rmSync(segmentFile(dir, 1));
  }, 10);
  new ResendService(s.journal, s.transport, s.messages).serve();
  t.deepEqual(await s.transport.requestResend({ from: 2, to: 8 }), { resent: 3, oldest: { e: 1, s: 6 } });
  t.regex(s.transport.messages[0].id, /^app\.1\.6-8\.again\.\d+$/);
  t.deepEqual(shippedSeqs(s.transport), [6, 7, 8]);
  t.deepEqual(await s.transport.requestResend({ from: 9, to: 50 }), { resent: 2 }, 'nothing past what was appended');
  t.deepEqual(await s.transport.requestResend({ from: 0, to: 3 }), { resent: 0, error: 'bad range 0..3' });
});

test('a spool that begins past the acked position: waits for the state bucket, then records what nobody has as lost and goes on', async (t) => {
  const s = await shipper(t, (dir) => writeSegment(dir, 6, 10), 10);
  await s.loop.round();
  t.is(s.journal.acked.current.seq, 0, 'without the standby\'s position nothing is decided');
  await s.transport.state.write('applied', 'app', { e: 1, s: 2, t: 0, appliedAt: 0 });
  s.reporter.start(s.transport.state);
  await s.loop.round();
  const lost = readJson<LostRange[]>(spoolFiles(s.dir).lost) ?? [];
  t.deepEqual(lost.map((l) => [l.from, l.to]), [[3, 5]]);
  t.deepEqual((await s.transport.state.read('agent', 'app'))?.lost?.map((l) => [l.from, l.to]), [[3, 5]], 'reported before shipping goes on');
  t.deepEqual(readJson<AckedState>(spoolFiles(s.dir).acked), { epoch: 1, seq: 5 }, 'the next process resumes past the gap too');
  await s.loop.round();
  t.deepEqual(shippedSeqs(s.transport), range(6, 10));
});

/** A spool of entries 1..12 in three segments (1-5, 6-10, 11-12), all acked once shipped. */
function threeSegments(dir: string): void {
  writeSegment(dir, 1, 5);
  writeSegment(dir, 6, 10);
  writeSegment(dir, 11, 12);
}

test('the standbys\' trim position trims the spool below it, after the acked position is on disk; one standby\'s applied position does not', async (t) => {
  const s = await shipper(t, threeSegments, 12);
  await s.loop.round();
  t.is(s.journal.acked.current.seq, 12);
  // Standbys of this version leave trim records: a slower one holds the spools back at 3.
  await s.transport.state.write('trim', 'app', { e: 1, s: 3, by: 'b2', time: 0 });
  s.reporter.start(s.transport.state);
  await s.transport.state.write('applied', 'app', { e: 1, s: 10, t: 0, appliedAt: 0 });
  await until(t, 'the applied position reached the application thread', () => readPosition(s.shared, APPLIED) === 10);
  t.deepEqual(listSegments(s.dir).map((seg) => seg.first), [1, 6, 11], 'a second standby may still need what one applied');
  await s.transport.state.write('trim', 'app', { e: 1, s: 10, by: 'b1', time: 0 });
  await until(t, 'the spool was trimmed below the trim position', () => listSegments(s.dir).length === 1);
  t.deepEqual(listSegments(s.dir).map((seg) => seg.first), [11]);
  t.deepEqual(readJson<AckedState>(spoolFiles(s.dir).acked), { epoch: 1, seq: 12 });
  const beat = await s.transport.state.read('agent', 'app');
  t.like(beat, { name: 'app', epoch: 1, mode: 'sync', appended: 12, acked: { epoch: 1, seq: 12 }, origin: { created: 'memory-stream-1', seq: 1 } });
});

test('with no trim record at all (standbys of an earlier version, or not allowed to write one), the applied position trims the spool, as before', async (t) => {
  const s = await shipper(t, threeSegments, 12);
  await s.loop.round();
  s.reporter.start(s.transport.state);
  await s.transport.state.write('applied', 'app', { e: 1, s: 10, t: 0, appliedAt: 0 });
  await until(t, 'the spool was trimmed below the applied position', () => listSegments(s.dir).length === 1);
  t.deepEqual(listSegments(s.dir).map((seg) => seg.first), [11]);
});

test('strong mode\'s applied notices move the applied position forward only, an earlier epoch\'s covering nothing of this one, a malformed one ignored; the state bucket\'s record and a notice mix', async (t) => {
  const s = await shipper(t, threeSegments, 12);
  void s.reporter.followNotices(s.transport.appliedNotices());
  s.reporter.start(s.transport.state);
  await Promise.resolve();
  s.transport.announceApplied({ e: 1, s: 5, t: 0, appliedAt: 0 });
  await until(t, 'a notice reached the application thread', () => readPosition(s.shared, APPLIED) === 5);
  s.transport.announceApplied('{"e":1,"s":"12"}');
  s.transport.announceApplied('not json');
  // An earlier epoch's position covers none of this epoch's entries (firstSeq 1: nothing).
  s.transport.announceApplied({ e: 0, s: 11, t: 0, appliedAt: 0 });
  s.transport.announceApplied({ e: 1, s: 8, t: 0, appliedAt: 0 });
  await until(t, 'the later notice was taken', () => readPosition(s.shared, APPLIED) === 8);
  // The bucket's record of an earlier commit comes after the notice of a later one: no step back.
  await s.transport.state.write('applied', 'app', { e: 1, s: 6, t: 0, appliedAt: 0 });
  await new Promise((r) => setTimeout(r, 50));
  t.is(readPosition(s.shared, APPLIED), 8, 'an older record does not take the position back');
  await s.transport.state.write('applied', 'app', { e: 1, s: 9, t: 0, appliedAt: 0 });
  await until(t, 'the bucket\'s later record was taken', () => readPosition(s.shared, APPLIED) === 9);
  s.transport.announceApplied({ e: 1, s: 7, t: 0, appliedAt: 0 });
  s.transport.announceApplied({ e: 1, s: 10, t: 0, appliedAt: 0 });
  await until(t, 'the last notice was taken', () => readPosition(s.shared, APPLIED) === 10);
});
