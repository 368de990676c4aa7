import test from 'ava';
import { decodeEntry, encodeEntry, MAX_HEADER_BYTES } from '../lib/codec';
import type { EntryHeader } from '../lib/entry';
import { DecodeError } from '../lib/errors';

const base = { j: 'app', e: 7, s: 42, t: 1_700_000_000_000, r: 'data', p: 'dir/file.txt' };

const cases: { label: string; header: EntryHeader; data?: Buffer }[] = [
  { label: 'put with bytes', header: { ...base, op: 'put', mode: 0o644 }, data: Buffer.from('hello') },
  { label: 'empty put', header: { ...base, op: 'put', mode: 0o600 }, data: Buffer.alloc(0) },
  { label: 'append', header: { ...base, op: 'append', at: 5 }, data: Buffer.from(' world') },
  { label: 'pwrite', header: { ...base, op: 'pwrite', at: 1 }, data: Buffer.from('X') },
  { label: 'truncate', header: { ...base, op: 'truncate', size: 3 } },
  { label: 'mkdir', header: { ...base, op: 'mkdir', mode: 0o755 } },
  { label: 'rm', header: { ...base, op: 'rm' } },
  { label: 'rename', header: { ...base, op: 'rename', toRoot: 'data', to: 'b' } },
  { label: 'symlink', header: { ...base, op: 'symlink', target: '../a' } },
  { label: 'link', header: { ...base, op: 'link', fromRoot: 'data', from: 'a' } },
  { label: 'chmod', header: { ...base, op: 'chmod', mode: 0o4755 } },
  { label: 'config set', header: { ...base, r: '', p: 'nconf', op: 'config', key: ['db', 'port'] }, data: Buffer.from('5432') },
  { label: 'config deletion', header: { ...base, r: '', p: 'env', op: 'config', key: ['FLAG'], del: true } },
  { label: 'job enqueued', header: { ...base, r: '', p: 'emails', op: 'job', id: '7.1', ev: 'enqueued', captured: true, front: true }, data: Buffer.from([0xff, 0x0f, 0x49, 0x02]) },
  { label: 'job of code, not captured', header: { ...base, r: '', p: 'app.mjs:12', op: 'job', id: '7.2', ev: 'enqueued', captured: false, label: 'sendMail' } },
  { label: 'job completed', header: { ...base, r: '', p: 'emails', op: 'job', id: '7.1', ev: 'completed' } },
  { label: 'chunk', header: { ...base, s: 43, op: 'put', mode: 0o644, c: { first: 42, i: 1, n: 3, off: 10, total: 25 } }, data: Buffer.from('0123456789') },
];

for (const c of cases) {
  test(`codec round-trips ${c.label}`, (t) => {
    const { header, data } = decodeEntry(encodeEntry(c.header, c.data));
    t.deepEqual(header, c.header);
    t.deepEqual(data, c.data ?? Buffer.alloc(0));
  });
}

test('every flipped byte is caught by the checksum or the frame checks', (t) => {
  const good = encodeEntry({ ...base, op: 'put', mode: 0o644 }, Buffer.from('payload'));
  for (let i = 0; i < good.length; i++) {
    const bad = Buffer.from(good);
    bad[i] ^= 0x40;
    t.throws(() => decodeEntry(bad), { instanceOf: DecodeError }, `byte ${i}`);
  }
});

test('a truncated entry is refused', (t) => {
  const good = encodeEntry({ ...base, op: 'rm' });
  for (const n of [0, 3, 11, good.length - 1]) {
    t.throws(() => decodeEntry(good.subarray(0, n)), { instanceOf: DecodeError });
  }
});

test('schema violations name the field', (t) => {
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...base, op: 'put' }, /"mode"/],
    [{ ...base, op: 'put', mode: 0o10000 }, /"mode"/],
    [{ ...base, op: 'explode' }, /operation "explode" is unknown/],
    [{ ...base, s: 0, op: 'rm' }, /"s"/],
    [{ ...base, e: -1, op: 'rm' }, /"e"/],
    [{ ...base, r: '', op: 'rm' }, /"r"/],
    // The journal name is a subject token and a staging file name: no separator, no dots.
    [{ ...base, j: 'x/y', op: 'rm' }, /"j"/],
    [{ ...base, j: '..', op: 'rm' }, /"j"/],
    [{ ...base, j: 'a.b', op: 'rm' }, /"j"/],
    [{ ...base, j: '', op: 'rm' }, /"j"/],
    [{ ...base, j: 'x'.repeat(129), op: 'rm' }, /"j"/],
    [{ ...base, op: 'truncate', size: 1.5 }, /"size"/],
    [{ ...base, op: 'rm', c: { first: 42, i: 0, n: 2, off: 0, total: 1 } }, /"c"/],
    [{ ...base, op: 'put', mode: 0o644, c: { first: 1, i: 0, n: 2, off: 0, total: 1 } }, /"c"/],
  ];
  for (const [header, message] of bad) {
    t.throws(() => decodeEntry(encodeEntry(header as unknown as EntryHeader)), { instanceOf: DecodeError, message });
  }
});

test('a header over 64 KiB is refused before it is parsed, whatever its checksum says', (t) => {
  const entry = encodeEntry({ ...base, op: 'symlink', target: 'x'.repeat(MAX_HEADER_BYTES) } as EntryHeader);
  t.true(entry.readUInt32BE(4) > MAX_HEADER_BYTES);
  t.throws(() => decodeEntry(entry), { instanceOf: DecodeError, message: /entry header length \d+ does not fit/ });
});

test('data on an operation that carries none is refused', (t) => {
  t.throws(() => decodeEntry(encodeEntry({ ...base, op: 'mkdir', mode: 0o755 }, Buffer.from('x'))), { message: /mkdir entry carries 1 data bytes/ });
});

test('a USB1 batch (the form earlier agents sent) carries its entries in order; one entry travels bare', async (t) => {
  const { encodeBatch, splitMessage } = await import('../lib/batch.js');
  const entries = [1, 2, 3].map((s) => encodeEntry({ ...base, s, op: 'put', mode: 0o644 }, Buffer.from(`entry ${s}`)));
  const parts = splitMessage(encodeBatch(entries));
  t.deepEqual(parts.map((p) => decodeEntry(p).header.s), [1, 2, 3]);
  t.is(encodeBatch([entries[0]]), entries[0]);
  t.deepEqual(splitMessage(entries[0]), [entries[0]]);
});

test('broken batch framing is a DecodeError that says what is wrong', async (t) => {
  const { encodeBatch, splitMessage } = await import('../lib/batch.js');
  const good = encodeBatch([1, 2].map((s) => encodeEntry({ ...base, s, op: 'rm' })));
  t.throws(() => splitMessage(good.subarray(0, good.length - 3)), { instanceOf: DecodeError, message: /runs past the message/ });
  t.throws(() => splitMessage(Buffer.concat([good, Buffer.from('xx')])), { instanceOf: DecodeError, message: /2 bytes after its 2 entries/ });
  const lying = Buffer.from(good);
  lying.writeUInt32BE(100000, 4);
  t.throws(() => splitMessage(lying), { instanceOf: DecodeError, message: /claims 100000 entries/ });
});

test('spool frames travel as they were read: a slice of the read buffer when side by side, a copy when not', async (t) => {
  const { encodeFrames, splitMessage } = await import('../lib/batch.js');
  const { FRAME_HEAD, scanFrames, writeFrameHead } = await import('../lib/spool.js');
  const entries = [1, 2, 3].map((s) => encodeEntry({ ...base, s, op: 'put', mode: 0o644 }, Buffer.from(`entry ${s}`)));
  const spool = Buffer.concat(entries.map((e, i) => {
    const head = Buffer.alloc(FRAME_HEAD);
    writeFrameHead(head, 0, e.length, base.e, i + 1);
    return Buffer.concat([head, e]);
  }));
  const records = scanFrames(spool).records;
  const body = encodeFrames(records);
  t.true(body.buffer === spool.buffer && body.byteOffset === spool.byteOffset && body.length === spool.length, 'no copy of adjacent frames');
  t.deepEqual(splitMessage(body).map((p) => decodeEntry(p).header.s), [1, 2, 3]);
  t.deepEqual(splitMessage(encodeFrames([records[1]])).map((p) => decodeEntry(p).header.s), [2]);
  const apart = encodeFrames([records[0], records[2]]);
  spool.fill(0);
  t.deepEqual(splitMessage(apart).map((p) => decodeEntry(p).header.s), [1, 3], 'a copy: it outlives the read buffer');
});

test('broken frame framing is a DecodeError that says what is wrong', async (t) => {
  const { encodeFrames, splitMessage, MAX_BATCH_ENTRIES } = await import('../lib/batch.js');
  const { FRAME_HEAD, scanFrames, writeFrameHead } = await import('../lib/spool.js');
  const frame = (s: number): Buffer => {
    const e = encodeEntry({ ...base, s, op: 'rm' });
    const head = Buffer.alloc(FRAME_HEAD);
    writeFrameHead(head, 0, e.length, base.e, s);
    return Buffer.concat([head, e]);
  };
  const good = encodeFrames(scanFrames(Buffer.concat([frame(1), frame(2)])).records);
  t.throws(() => splitMessage(good.subarray(0, good.length - 3)), { instanceOf: DecodeError, message: /frame 1 runs past the message/ });
  t.throws(() => splitMessage(Buffer.concat([good, Buffer.from('xx')])), { instanceOf: DecodeError, message: /ends inside the head of frame 2/ });
  const notEntry = Buffer.from(good);
  notEntry.write('XXXX', FRAME_HEAD);
  t.throws(() => splitMessage(notEntry), { instanceOf: DecodeError, message: /frame 0 is not an entry/ });
  const many = Buffer.concat(Array.from({ length: MAX_BATCH_ENTRIES + 1 }, (_, i) => frame(i + 1)));
  t.throws(() => splitMessage(many), { instanceOf: DecodeError, message: /more than 512 entries/ });
});

test('configuration and job entries are refused when they could reach a root or a path', (t) => {
  const obj = { ...base, r: '' };
  const bad: [string, Record<string, unknown>, Buffer?][] = [
    ['a root name on a config entry', { ...base, p: 'env', op: 'config', key: ['A'] }],
    ['the reserved root on a file entry', { ...obj, op: 'put', mode: 0o644 }],
    ['a store name with a separator', { ...obj, p: 'a/b', op: 'config', key: ['A'] }],
    ['a store name ..', { ...obj, p: '..', op: 'config', key: ['A'] }],
    ['a store name starting with a dot', { ...obj, p: '.hidden', op: 'config', key: ['A'] }],
    ['an empty key segment', { ...obj, p: 'env', op: 'config', key: [''] }],
    ['a key that is not a list', { ...obj, p: 'env', op: 'config', key: 'A' }],
    ['an unknown job event', { ...obj, p: 'q', op: 'job', id: '1.1', ev: 'exploded' }],
    ['a job id with a slash', { ...obj, p: 'q', op: 'job', id: '../1', ev: 'completed' }],
    ['data on a deletion', { ...obj, p: 'env', op: 'config', key: ['A'], del: true }, Buffer.from('x')],
    ['data on a finished job', { ...obj, p: 'q', op: 'job', id: '1.1', ev: 'completed' }, Buffer.from('x')],
    ['data on an uncaptured job', { ...obj, p: 'q', op: 'job', id: '1.1', ev: 'enqueued', captured: false }, Buffer.from('x')],
  ];
  for (const [why, header, data] of bad) {
    t.throws(() => decodeEntry(encodeEntry(header as unknown as EntryHeader, data)), { instanceOf: DecodeError }, why);
  }
});
