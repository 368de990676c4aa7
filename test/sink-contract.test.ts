import test from 'ava';
import { decodeEntry } from '../lib/codec';
import type { EntryHeader, Op } from '../lib/entry';
import { SpoolCursor } from '../lib/spool-reader';
import { Journal } from '../agent/journal';
import type { Change, JournalSink } from '../agent/sink';
import { MemorySink, type Recorded } from './helpers/memory-sink';
import { tempDir } from './helpers/temp-dir';

/** A sink under test and what it holds, read back the way its own reader would. */
interface Subject { sink: JournalSink; recorded(): Recorded[] }

const CHUNK = 1000;

/** Every JournalSink implementation; each case below runs against each. */
const implementations: { name: string; make(t: { teardown(fn: () => void): void }): Subject }[] = [
  {
    name: 'memory',
    make: () => {
      const sink = new MemorySink(CHUNK);
      return { sink, recorded: () => sink.changes };
    },
  },
  {
    name: 'journal',
    make: (t) => {
      const dir = tempDir(t, 'sink');
      const journal = new Journal(dir, 'contract', { chunkBytes: CHUNK });
      journal.open();
      t.teardown(() => journal.close());
      return { sink: journal, recorded: () => fromSpool(journal) };
    },
  },
];

/** The spool's entries gathered back into changes: a chunked one whole, its chunks checked to agree. */
function fromSpool(journal: Journal): Recorded[] {
  const out: Recorded[] = [];
  const cursor = new SpoolCursor(journal.dir, 1);
  try {
    let open: { rec: Recorded; parts: Buffer[]; n: number } | undefined;
    for (const r of cursor.read(journal.lastSeq, 64 * 1024 * 1024)) {
      const { header: h, data } = decodeEntry(r.entry);
      if (h.c !== undefined && h.c.i > 0) {
        if (open === undefined || h.c.first !== open.rec.first || h.o !== open.rec.order || h.b !== open.rec.at) throw new Error(`chunk ${h.s} does not continue its change`);
        open.parts.push(Buffer.from(data));
        open.rec.last = h.s;
      } else {
        const rec: Recorded = { root: h.r, path: h.p, op: opOf(h), data: Buffer.from(data), at: h.b, order: h.o, first: h.s, last: h.s };
        out.push(rec);
        open = h.c === undefined ? undefined : { rec, parts: [rec.data], n: h.c.n };
      }
      if (open !== undefined && open.parts.length === open.n) {
        open.rec.data = Buffer.concat(open.parts);
        open = undefined;
      }
    }
  } finally {
    cursor.close();
  }
  return out;
}

function opOf(h: EntryHeader): Op {
  const { j: _j, e: _e, s: _s, t: _t, o: _o, r: _r, p: _p, c: _c, b: _b, ...op } = h;
  return op as Op;
}

const put = { op: 'put', mode: 0o644 } as const;

/** Pieces that say which ranges were asked for, in order. */
function piecesOf(bytes: Buffer, asked: [number, number][]): Change['pieces'] {
  return {
    size: bytes.length,
    read: (off, len) => {
      asked.push([off, len]);
      return bytes.subarray(off, off + len);
    },
  };
}

const cases: { title: string; run(t: import('ava').ExecutionContext, s: Subject): void }[] = [
  {
    title: 'a change with its bytes is kept whole, and record returns its sequence number',
    run: (t, s) => {
      t.is(s.sink.record({ root: 'data', path: 'a/b', op: put, data: Buffer.from('hello') }), 1);
      const [r] = s.recorded();
      t.like(r, { root: 'data', path: 'a/b', op: put, first: 1, last: 1, at: undefined });
      t.is(r?.data.toString(), 'hello');
    },
  },
  {
    title: 'an operation without data is kept with no bytes',
    run: (t, s) => {
      s.sink.record({ root: 'data', path: 'gone', op: { op: 'rm' } });
      t.deepEqual(s.recorded().map((r) => [r.op, r.data.length]), [[{ op: 'rm' }, 0]]);
    },
  },
  {
    title: 'changes keep their order; each entry takes the next sequence number',
    run: (t, s) => {
      const seqs = ['x', 'y', 'z'].map((p) => s.sink.record({ root: 'data', path: p, op: { op: 'mkdir', mode: 0o755 } }));
      t.deepEqual(seqs, [1, 2, 3]);
      t.deepEqual(s.recorded().map((r) => r.path), ['x', 'y', 'z']);
    },
  },
  {
    title: 'bytes larger than a chunk take one sequence number per chunk and come back whole',
    run: (t, s) => {
      const big = Buffer.alloc(2500);
      for (let i = 0; i < big.length; i++) big[i] = i % 251;
      t.is(s.sink.record({ root: 'data', path: 'big', op: put, data: big }), 3);
      t.is(s.sink.record({ root: 'data', path: 'after', op: { op: 'rm' } }), 4);
      const [r, after] = s.recorded();
      t.like(r, { path: 'big', first: 1, last: 3 });
      t.true(r?.data.equals(big));
      t.like(after, { path: 'after', first: 4, last: 4 });
    },
  },
  {
    title: 'pieces are read a chunk at a time, in order, and come back whole',
    run: (t, s) => {
      const big = Buffer.from('0123456789'.repeat(250));
      const asked: [number, number][] = [];
      t.is(s.sink.record({ root: 'data', path: 'big', op: put, pieces: piecesOf(big, asked) }), 3);
      t.deepEqual(asked, [[0, 1000], [1000, 1000], [2000, 500]]);
      t.true(s.recorded()[0]?.data.equals(big));
    },
  },
  {
    title: 'pieces that fit in one chunk are read once, whole; empty ones once, for nothing',
    run: (t, s) => {
      const asked: [number, number][] = [];
      s.sink.record({ root: 'data', path: 'small', op: put, pieces: piecesOf(Buffer.from('tiny'), asked) });
      s.sink.record({ root: 'data', path: 'empty', op: put, pieces: piecesOf(Buffer.alloc(0), asked) });
      t.deepEqual(asked, [[0, 4], [0, 0]]);
      t.deepEqual(s.recorded().map((r) => [r.path, r.data.toString(), r.first]), [['small', 'tiny', 1], ['empty', '', 2]]);
    },
  },
  {
    title: "a snapshot keeps its read time: the read's order stamp and wall clock, on every chunk",
    run: (t, s) => {
      s.sink.record({ root: 'data', path: 'snap', op: put, data: Buffer.alloc(1500, 1), read: { at: 1_700_000_000_000, order: 42 } });
      s.sink.record({ root: 'data', path: 'stamped', op: { op: 'rm' }, read: { order: 43 } });
      t.deepEqual(s.recorded().map((r) => [r.path, r.at, r.order, r.last - r.first + 1]), [['snap', 1_700_000_000_000, 42, 2], ['stamped', undefined, 43, 1]]);
    },
  },
  {
    title: 'the sink keeps nothing of the change: its producer may reuse the object and the buffer',
    run: (t, s) => {
      const data = Buffer.from('first');
      const change: Change = { root: 'data', path: 'one', op: put, data };
      s.sink.record(change);
      data.write('XXXXX');
      change.path = 'two';
      change.op = { op: 'rm' };
      change.data = undefined;
      s.sink.record(change);
      t.deepEqual(s.recorded().map((r) => [r.path, r.op.op, r.data.toString()]), [['one', 'put', 'first'], ['two', 'rm', '']]);
    },
  },
];

for (const impl of implementations) {
  for (const c of cases) test(`${impl.name} sink: ${c.title}`, (t) => c.run(t, impl.make(t)));
}
