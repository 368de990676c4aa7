import test from 'ava';
import type { Chunk } from '../lib/entry';
import { Sequencer, type Applied } from '../replayer/order/sequencer';

/** An entry as the sequencer sees it: `a.1.3` is journal a, epoch 1, seq 3; `:n` gives its size in bytes. */
interface E { h: { j: string; e: number; s: number; c?: Chunk }; data: { length: number } }

function entry(spec: string): E {
  const [pos, size] = spec.split(':');
  const [j, e, s] = pos.split('.');
  return { h: { j, e: Number(e), s: Number(s) }, data: { length: size === undefined ? 1 : Number(size) } };
}
const label = (e: E): string => `${e.h.j}.${e.h.e}.${e.h.s}`;

/**
 * One arrival order. Steps: an entry spec arrives from the stream; `?` notes what catch-up
 * would ask for now; `>a.1.5` moves journal a past 1.5 from outside, as catch-up does for
 * entries gone from the agent's spool; `>>a.1.5` also releases what then follows, as it does
 * for entries that went to an earlier stream.
 */
interface Case {
  name: string;
  start?: Record<string, Applied>;
  maxHeld?: { entries: number; bytes: number };
  steps: string[];
  applied: string[];
  duplicates?: string[];
  refused?: string[];
  restarts?: string[];
  asked?: string[][];
  /** What is still held at the end, as catch-up sees it. */
  missing?: string[];
}

const cases: Case[] = [
  { name: 'in order', steps: ['a.1.1', 'a.1.2', 'a.1.3'], applied: ['a.1.1', 'a.1.2', 'a.1.3'] },
  { name: 'duplicates are skipped', steps: ['a.1.1', 'a.1.2', 'a.1.1', 'a.1.2', 'a.1.3'], applied: ['a.1.1', 'a.1.2', 'a.1.3'], duplicates: ['a.1.1', 'a.1.2'] },
  { name: 'a gap then its filler', steps: ['a.1.1', 'a.1.3', 'a.1.4', '?', 'a.1.2', '?'], applied: ['a.1.1', 'a.1.2', 'a.1.3', 'a.1.4'], asked: [['a 2..2 (2 held, epoch 1)'], []] },
  { name: 'a resend of a held entry is held once', steps: ['a.1.1', 'a.1.3', 'a.1.3', '?', 'a.1.2', 'a.1.3'], applied: ['a.1.1', 'a.1.2', 'a.1.3'], duplicates: ['a.1.3'], asked: [['a 2..2 (1 held, epoch 1)']] },
  { name: 'a journal whose start is missing waits for it', steps: ['a.1.3', 'a.1.4'], applied: [], missing: ['a 1..2 (2 held, epoch 1)'] },
  { name: 'numbering begins again with a new epoch', start: { a: { e: 1, s: 5 } }, steps: ['a.2.1', 'a.2.2', 'a.1.5', 'a.2.2'], applied: ['a.2.1', 'a.2.2'], restarts: ['a.2.1 after 1.5'], duplicates: ['a.1.5', 'a.2.2'] },
  { name: 'a new epoch that goes on from the old numbering is no restart', start: { a: { e: 1, s: 5 } }, steps: ['a.2.6', 'a.1.4'], applied: ['a.2.6'], duplicates: ['a.1.4'] },
  { name: 'a new epoch past a gap waits like any other', start: { a: { e: 1, s: 5 } }, steps: ['a.2.8', '?'], applied: [], asked: [['a 6..7 (1 held, epoch 2)']], missing: ['a 6..7 (1 held, epoch 2)'] },
  {
    name: 'more entries held than maxHeld allows are refused, a resend of a held one is not',
    maxHeld: { entries: 2, bytes: 1000 },
    steps: ['a.1.1', 'a.1.3', 'a.1.4', 'a.1.5', 'a.1.4', 'a.1.2'],
    applied: ['a.1.1', 'a.1.2', 'a.1.3', 'a.1.4'],
    refused: ['journal a: entries after 1.1 are missing from the stream (holding 2 later ones, 2 bytes)'],
  },
  {
    name: 'held bytes are bounded across journals',
    maxHeld: { entries: 100, bytes: 10 },
    steps: ['a.1.2:6', 'b.1.2:6', 'b.1.3:4'],
    applied: [],
    refused: ['journal b: entries after its start are missing from the stream (holding 0 later ones, 6 bytes)'],
    missing: ['a 1..1 (1 held, epoch 1)', 'b 1..2 (1 held, epoch 1)'],
  },
  {
    name: 'several journals interleaved keep their own order',
    steps: ['a.1.1', 'b.1.2', 'a.1.3', '?', 'b.1.1', 'c.1.1', 'a.1.2'],
    applied: ['a.1.1', 'b.1.1', 'b.1.2', 'c.1.1', 'a.1.2', 'a.1.3'],
    asked: [['b 1..1 (1 held, epoch 1)', 'a 2..2 (1 held, epoch 1)']],
  },
  { name: 'entries passed from outside release what follows them', steps: ['a.1.1', 'a.1.4', 'a.1.5', '>>a.1.3'], applied: ['a.1.1', 'a.1.4', 'a.1.5'] },
  {
    name: 'a held copy of an entry read again after its gap was passed is applied once, and no longer held',
    steps: ['a.1.1', 'a.1.3', 'a.1.5', '>a.1.2', 'a.1.3', 'a.1.4'],
    applied: ['a.1.1', 'a.1.3', 'a.1.4', 'a.1.5'],
  },
];

function run(c: Case): Required<Omit<Case, 'name' | 'start' | 'maxHeld' | 'steps'>> {
  const positions = new Map<string, Applied>(Object.entries(c.start ?? {}));
  const seq = new Sequencer<E>((j) => positions.get(j), c.maxHeld ?? { entries: 100, bytes: 1_000_000 });
  const out = { applied: [] as string[], duplicates: [] as string[], refused: [] as string[], restarts: [] as string[], asked: [] as string[][], missing: [] as string[] };
  const gaps = (): string[] => seq.gaps().map((g) => `${g.journal} ${g.from}..${g.to} (${g.held} held, epoch ${g.epoch})`);
  // What the replayer does with an entry let through: apply it, then record its journal's position.
  const apply = (e: E): void => {
    out.applied.push(label(e));
    positions.set(e.h.j, { e: e.h.e, s: e.h.s });
  };
  for (const step of c.steps) {
    if (step === '?') {
      out.asked.push(gaps());
      continue;
    }
    if (step.startsWith('>')) {
      const past = entry(step.replace(/^>+/, ''));
      positions.set(past.h.j, { e: past.h.e, s: past.h.s });
      if (step.startsWith('>>')) seq.release(past.h.j, apply);
      continue;
    }
    const e = entry(step);
    const d = seq.offer(e);
    if (d.kind === 'duplicate') out.duplicates.push(label(e));
    else if (d.kind === 'refused') out.refused.push(d.reason);
    else if (d.kind === 'next') {
      if (d.restartsAfter !== undefined) out.restarts.push(`${label(e)} after ${d.restartsAfter.e}.${d.restartsAfter.s}`);
      apply(e);
      seq.applied(e, apply);
    }
  }
  out.missing = gaps();
  return out;
}

for (const c of cases) {
  test(`sequencer: ${c.name}`, (t) => {
    const got = run(c);
    t.deepEqual(got.applied, c.applied, 'applied, in order');
    t.deepEqual(got.duplicates, c.duplicates ?? [], 'duplicates');
    t.deepEqual(got.refused, c.refused ?? [], 'refused');
    t.deepEqual(got.restarts, c.restarts ?? [], 'numbering restarts');
    t.deepEqual(got.asked, c.asked ?? [], 'what catch-up would ask for');
    t.deepEqual(got.missing, c.missing ?? [], 'still missing at the end');
  });
}

/** Arrival orders → the stream position recorded with each: it stays put while anything is held. */
const resumes: { name: string; steps: string[]; resume: number[] }[] = [
  { name: 'nothing held: each entry moves it', steps: ['a.1.1', 'a.1.2'], resume: [10, 11] },
  { name: 'held behind a gap: it stays until the gap is filled', steps: ['a.1.1', 'a.1.3', 'b.1.1', 'a.1.2', 'b.1.2'], resume: [10, 10, 10, 13, 14] },
];

for (const c of resumes) {
  test(`sequencer resume position: ${c.name}`, (t) => {
    const positions = new Map<string, Applied>();
    const seq = new Sequencer<E>((j) => positions.get(j), { entries: 100, bytes: 1_000_000 });
    let recorded = 9;
    const got: number[] = [];
    c.steps.forEach((step, i) => {
      const e = entry(step);
      const d = seq.offer(e);
      const apply = (x: E): void => void positions.set(x.h.j, { e: x.h.e, s: x.h.s });
      if (d.kind === 'next') {
        apply(e);
        seq.applied(e, apply);
      }
      // Message i is stream message 10 + i; the replayer records the position the sequencer gives.
      recorded = seq.resumeAt(10 + i, recorded);
      got.push(recorded);
    });
    t.deepEqual(got, c.resume);
  });
}

const chunk = (first: number, i: number, n: number): Chunk => ({ first, i, n, off: i * 10, total: n * 10 });

/** Chunks as they are applied → the refusal of each (empty when in order). */
const chunkCases: { name: string; entries: { j: string; s: number; c?: Chunk }[]; refused: string[] }[] = [
  { name: 'one after another', entries: [{ j: 'a', s: 5, c: chunk(5, 0, 3) }, { j: 'a', s: 6, c: chunk(5, 1, 3) }, { j: 'a', s: 7, c: chunk(5, 2, 3) }, { j: 'a', s: 8 }], refused: ['', '', '', ''] },
  { name: 'a chunk skipped', entries: [{ j: 'a', s: 5, c: chunk(5, 0, 3) }, { j: 'a', s: 7, c: chunk(5, 2, 3) }, { j: 'a', s: 8 }], refused: ['', 'chunks 1..2 of entry a.5 never arrived before a.1.7', ''] },
  { name: 'a whole entry before the last chunk', entries: [{ j: 'a', s: 5, c: chunk(5, 0, 2) }, { j: 'a', s: 6 }], refused: ['', 'chunks 1..1 of entry a.5 never arrived before a.1.6'] },
  { name: 'another entry\'s chunks before the last', entries: [{ j: 'a', s: 5, c: chunk(5, 0, 2) }, { j: 'a', s: 6, c: chunk(6, 0, 2) }], refused: ['', 'chunks 1..1 of entry a.5 never arrived before a.1.6'] },
  { name: 'two journals\' chunks interleaved', entries: [{ j: 'a', s: 5, c: chunk(5, 0, 2) }, { j: 'b', s: 1, c: chunk(1, 0, 2) }, { j: 'a', s: 6, c: chunk(5, 1, 2) }, { j: 'b', s: 2, c: chunk(1, 1, 2) }], refused: ['', '', '', ''] },
];

for (const c of chunkCases) {
  test(`sequencer chunk order: ${c.name}`, (t) => {
    const seq = new Sequencer<E>(() => undefined, { entries: 1, bytes: 1 });
    t.deepEqual(c.entries.map((h) => seq.checkChunk({ ...h, e: 1 }) ?? ''), c.refused);
  });
}

test('sequencer: clear forgets what is held and the open chunk', (t) => {
  const positions = new Map<string, Applied>([['a', { e: 1, s: 1 }]]);
  const seq = new Sequencer<E>((j) => positions.get(j), { entries: 100, bytes: 1_000_000 });
  t.is(seq.offer(entry('a.1.3')).kind, 'held');
  t.is(seq.checkChunk({ j: 'a', e: 1, s: 2, c: chunk(2, 0, 2) }), undefined);
  t.true(seq.holding);
  seq.clear();
  t.false(seq.holding);
  t.deepEqual(seq.gaps(), []);
  // The open chunk is forgotten too: an entry after it is not refused.
  t.is(seq.checkChunk({ j: 'a', e: 1, s: 2 }), undefined);
  // And the held bytes: a full bound holds again.
  const small = new Sequencer<E>((j) => positions.get(j), { entries: 100, bytes: 5 });
  t.is(small.offer(entry('a.1.3:5')).kind, 'held');
  small.clear();
  t.is(small.offer(entry('a.1.4:5')).kind, 'held');
});
