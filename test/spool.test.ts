import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Journal } from '../agent/journal';
import { SpoolCursor } from '../lib/spool-reader';
import { listSegments, trimSegments } from '../lib/spool';
import { decodeEntry } from '../lib/codec';
import { JournalError } from '../lib/errors';

function tmp(t: { teardown(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-spool-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('entries read back in order, large data split into chunks', (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app', { chunkBytes: 1024 });
  j.open();
  j.record({ root: 'data', path: 'a', op: { op: 'put', mode: 0o644 }, data: Buffer.from('one') });
  j.record({ root: 'data', path: 'big', op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(2500, 7) });
  j.record({ root: 'data', path: 'a', op: { op: 'rm' } });
  t.is(j.lastSeq, 5);
  const recs = new SpoolCursor(j.dir, 1).read(j.lastSeq);
  t.deepEqual(recs.map((r) => r.seq), [1, 2, 3, 4, 5]);
  const chunks = recs.slice(1, 4).map((r) => decodeEntry(r.entry));
  t.deepEqual(chunks.map((c) => c.header.c), [0, 1, 2].map((i) => ({ first: 2, i, n: 3, off: i * 1024, total: 2500 })));
  t.deepEqual(Buffer.concat(chunks.map((c) => c.data)), Buffer.alloc(2500, 7));
  j.close();
});

test('a torn tail is cut on the next open and numbering goes on', (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app');
  const first = j.open();
  j.record({ root: 'data', path: 'a', op: { op: 'put', mode: 0o644 }, data: Buffer.from('kept') });
  j.record({ root: 'data', path: 'b', op: { op: 'put', mode: 0o644 }, data: Buffer.from('torn') });
  j.close();
  const seg = listSegments(j.dir)[0].file;
  fs.truncateSync(seg, fs.statSync(seg).size - 3); // a crash in the middle of the second append
  const again = new Journal(dir, 'app');
  const report = again.open();
  t.true(report.epoch > first.epoch);
  t.is(report.lastSeq, 1);
  t.true(report.tornBytes > 0);
  again.record({ root: 'data', path: 'c', op: { op: 'rm' } });
  t.deepEqual(new SpoolCursor(again.dir, 1).read(2).map((r) => r.seq), [1, 2]);
  again.close();
});

test('corruption in the middle is raised, never skipped', (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app');
  j.open();
  for (let i = 0; i < 3; i++) j.record({ root: 'data', path: `f${i}`, op: { op: 'put', mode: 0o644 }, data: Buffer.from(`content ${i}`) });
  const seg = listSegments(j.dir)[0].file;
  const buf = fs.readFileSync(seg);
  buf[Math.floor(buf.length / 2)] ^= 0xff;
  fs.writeFileSync(seg, buf);
  const cursor = new SpoolCursor(j.dir, 1);
  t.throws(() => {
    for (let n = 0; n < 3; n++) cursor.read(3);
  }, { instanceOf: JournalError, message: /corrupt/ });
  j.close();
});

test('a read leaves earlier records alone unless the reader recycles its buffer', (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app');
  j.open();
  const put = (i: number) => j.record({ root: 'data', path: `f${i}`, op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(100, i) });
  put(1);
  const cursor = new SpoolCursor(j.dir, 1);
  const first = cursor.read(j.lastSeq);
  put(2);
  const second = cursor.read(j.lastSeq);
  t.not(second[0].entry.buffer, first[0].entry.buffer, 'without recycle() a publish may still hold the first read');
  t.deepEqual(decodeEntry(first[0].entry).data, Buffer.alloc(100, 1));
  cursor.recycle();
  put(3);
  const third = cursor.read(j.lastSeq);
  t.is(third[0].entry.buffer, second[0].entry.buffer, 'recycled: the same buffer is filled again');
  t.deepEqual(third.map((r) => r.seq), [3]);
  t.deepEqual(decodeEntry(third[0].entry).data, Buffer.alloc(100, 3));
  j.close();
});

test('a frame larger than what is left of the read buffer is read whole', (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app', { chunkBytes: 3 * 1024 * 1024 });
  j.open();
  for (let i = 0; i < 3; i++) j.record({ root: 'data', path: `f${i}`, op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(1536 * 1024, i) });
  const recs = new SpoolCursor(j.dir, 1).read(j.lastSeq, 64 * 1024 * 1024);
  t.deepEqual(recs.map((r) => r.seq), [1, 2, 3]);
  t.deepEqual(recs.map((r) => decodeEntry(r.entry).data.equals(Buffer.alloc(1536 * 1024, r.seq - 1))), [true, true, true]);
  j.close();
});

test('a second live process cannot take the same journal', (t) => {
  const dir = tmp(t);
  const a = new Journal(dir, 'app');
  a.open();
  fs.writeFileSync(path.join(a.dir, 'lock'), `1@${os.hostname()}\n`); // pid 1 is alive
  const b = new Journal(dir, 'app');
  t.throws(() => b.open(), { instanceOf: JournalError, message: /in use/ });
  a.close();
});

test('segments wholly applied are trimmed, the newest never', (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app', { chunkBytes: 1024, segmentBytes: 200 }); // ~one entry per segment
  const { epoch } = j.open();
  for (let i = 0; i < 5; i++) j.record({ root: 'data', path: `f${i}`, op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(150) });
  const before = listSegments(j.dir).map((s) => s.first);
  t.deepEqual(before, [1, 2, 3, 4, 5]);
  t.is(trimSegments(j.dir, { e: epoch, s: 2 }), 2);
  t.deepEqual(listSegments(j.dir).map((s) => s.first), [3, 4, 5]);
  t.deepEqual(new SpoolCursor(j.dir, 3).read(5).map((r) => r.seq), [3, 4, 5]);
  t.is(trimSegments(j.dir, { e: epoch - 1, s: 99 }), 0, 'an older epoch covers nothing of this one');
  t.is(trimSegments(j.dir, { e: epoch, s: 99 }), 2);
  t.deepEqual(listSegments(j.dir).map((s) => s.first), [5]);
  j.close();
});

test('a full spool drops changes (counted, said) instead of stopping the application, and takes them again once trimmed', async (t) => {
  const dir = tmp(t);
  const j = new Journal(dir, 'app', { segmentBytes: 2000, maxBytes: 5000 });
  const { epoch } = j.open();
  const drops: number[] = [];
  j.onDrop = (bytes) => drops.push(bytes);
  for (let i = 0; i < 10; i++) j.record({ root: 'data', path: `f${i}`, op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(900) });
  t.true(j.dropped > 0, `${j.dropped} dropped`);
  t.is(j.lastSeq + j.dropped, 10);
  t.is(drops.length, j.dropped);
  const kept = j.lastSeq;
  // The standby applies what is there; the shipper trims; room comes back.
  trimSegments(j.dir, { e: epoch, s: kept });
  // The journal measures the spool again only now and then, not on every change: the change is
  // offered until it is taken (each refusal counted like any other), within a deadline.
  let tries = 0;
  for (const until = Date.now() + 10_000; j.lastSeq === kept && Date.now() < until; tries++) {
    j.record({ root: 'data', path: 'after', op: { op: 'put', mode: 0o644 }, data: Buffer.alloc(900) });
    if (j.lastSeq === kept) await new Promise((r) => setTimeout(r, 10));
  }
  t.is(j.lastSeq, kept + 1, `taken after ${tries} tries`);
  t.is(j.lastSeq + j.dropped, 10 + tries, 'every try was taken or counted as dropped');
  const taken = new SpoolCursor(j.dir, kept + 1).read(kept + 1);
  t.deepEqual(taken.map((r) => decodeEntry(r.entry).header.p), ['after']);
  j.close();
});
