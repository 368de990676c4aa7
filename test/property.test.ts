import test from 'ava';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decodeEntry, encodeEntry } from '../lib/codec';
import { encodeBatch, encodeFrames, splitMessage } from '../lib/batch';
import { FRAME_HEAD, scanFrames, writeFrameHead } from '../lib/spool';
import { checkRelPath } from '../lib/confine';
import type { EntryHeader, Op } from '../lib/entry';
import { BadEntryError, ConfinementError, DecodeError } from '../lib/errors';
import { FsApplier } from '../replayer/apply/fs';

// Path pieces an attacker would try: traversal, separators, NUL, unicode look-alikes, long names.
const segment = fc.oneof(
  fc.constantFrom('..', '.', '', 'a', 'b', 'esc', 'link', '\\', '..\\..', 'a\0b', '／', '．．', '\u202e', 'x'.repeat(300), 'ok.txt'),
  fc.string({ maxLength: 8 }),
);
const relPath = fc.oneof(
  fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => s.join('/')),
  fc.array(segment, { minLength: 1, maxLength: 5 }).map((s) => '/' + s.join('/')),
  fc.string({ maxLength: 40 }),
);

test('decoding random bytes never throws anything but DecodeError', (t) => {
  // The property is the assertion: fc.assert throws the first counterexample.
  t.notThrows(() => fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
    try {
      decodeEntry(bytes);
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
    }
  }), { numRuns: 3000 }));
});

for (const form of ['USB1 batches', 'spool frames'] as const) {
  test(`splitting random or mutated ${form} never throws anything but DecodeError`, (t) => {
    const entries = [1, 2, 3].map((s) => encodeEntry({ j: 'app', e: 1, s, t: 1, r: 'data', p: 'f', op: 'rm' }));
    const batch = form === 'USB1 batches' ? encodeBatch(entries) : encodeFrames(scanFrames(Buffer.concat(entries.map((e, i) => {
      const head = Buffer.alloc(FRAME_HEAD);
      writeFrameHead(head, 0, e.length, 1, i + 1);
      return Buffer.concat([head, e]);
    }))).records);
    t.deepEqual(splitMessage(batch).map((p) => decodeEntry(p).header.s), [1, 2, 3]);
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(batch.length - 1), fc.integer({ min: 1, max: 255 }), (bytes, i, x) => {
      const mutated = Buffer.from(batch);
      mutated[i] ^= x;
      for (const input of [Buffer.concat([batch.subarray(0, 8), bytes]), Buffer.concat([batch.subarray(0, 60), bytes]), mutated]) {
        try {
          for (const part of splitMessage(input)) decodeEntry(part);
        } catch (err) {
          if (!(err instanceof DecodeError)) throw err;
        }
      }
    }), { numRuns: 3000 });
  });
}

test('mutated valid entries are refused or decode to a valid entry, never crash the decoder', (t) => {
  const base = encodeEntry({ j: 'app', e: 1, s: 1, t: 1, r: 'data', p: 'a/b', op: 'put', mode: 0o644 }, Buffer.from('hello world'));
  let refused = 0;
  fc.assert(fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.nat(base.length), (flips, cut) => {
    const b = Buffer.from(base);
    for (const [i, x] of flips) b[i] ^= x;
    try {
      decodeEntry(b.subarray(0, cut === 0 ? b.length : cut));
    } catch (err) {
      if (!(err instanceof DecodeError)) throw err;
      refused++;
    }
  }), { numRuns: 3000 });
  t.true(refused > 2900, `${refused} of 3000 mutations refused`);
});

test('a relative path is refused, or it resolves inside the root', (t) => {
  const root = '/srv/standby/root';
  let accepted = 0;
  fc.assert(fc.property(relPath, (rel) => {
    let segs: string[];
    try {
      segs = checkRelPath(rel);
    } catch (err) {
      if (!(err instanceof ConfinementError)) throw err;
      return;
    }
    accepted++;
    const resolved = path.resolve(root, ...segs);
    if (!resolved.startsWith(root + '/')) throw new Error(`${JSON.stringify(rel)} escapes to ${resolved}`);
  }), { numRuns: 5000 });
  t.true(accepted > 100, `${accepted} ordinary paths accepted`);
});

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('put' as const), mode: fc.constantFrom(0o644, 0o600, 0o4755) }),
  fc.record({ op: fc.constant('append' as const), at: fc.nat(100) }),
  fc.record({ op: fc.constant('pwrite' as const), at: fc.nat(100) }),
  fc.record({ op: fc.constant('truncate' as const), size: fc.nat(100) }),
  fc.record({ op: fc.constant('mkdir' as const), mode: fc.constantFrom(0o755, 0o700) }),
  fc.record({ op: fc.constant('rm' as const) }),
  fc.record({ op: fc.constant('rename' as const), toRoot: fc.constantFrom('data', 'other', 'nope'), to: relPath }),
  fc.record({ op: fc.constant('symlink' as const), target: fc.constantFrom('../outside', '/tmp', '..', 'a', '../../etc/passwd', '../outside/x') }),
  fc.record({ op: fc.constant('link' as const), fromRoot: fc.constantFrom('data', 'other'), from: relPath }),
  fc.record({ op: fc.constant('chmod' as const), mode: fc.constantFrom(0o777, 0o000, 0o644) }),
);
const hostileEntry = fc.record({ r: fc.constantFrom('data', 'other', 'nope'), p: fc.oneof(relPath, fc.constantFrom('esc', 'esc/f', 'a', 'a/b', 'link/x')), op, data: fc.uint8Array({ maxLength: 64 }) });

test('thousands of hostile entries applied in sequence never write outside the roots', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-prop-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'sentinel'), 'untouched');
  const before = fs.readdirSync(dir).sort();
  let applied = 0;
  let refused = 0;
  fc.assert(fc.property(fc.array(hostileEntry, { minLength: 1, maxLength: 25 }), (entries) => {
    const data = path.join(dir, 'data');
    const other = path.join(dir, 'other');
    fs.rmSync(data, { recursive: true, force: true });
    fs.rmSync(other, { recursive: true, force: true });
    fs.mkdirSync(data);
    fs.mkdirSync(other);
    // A link planted in the standby tree pointing out: nothing may be written through it.
    fs.symlinkSync(outside, path.join(data, 'esc'));
    const applier = new FsApplier(new Map([['data', data], ['other', other]]));
    let s = 0;
    for (const e of entries) {
      const header = { j: 'app', e: 1, s: ++s, t: 0, r: e.r, p: e.p, ...e.op } as EntryHeader;
      try {
        applier.apply(header, { buf: Buffer.from(e.data) });
        applied++;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (!(err instanceof BadEntryError || err instanceof ConfinementError || (err as Error).name === 'ApplyError' || typeof code === 'string')) throw err;
        refused++;
      }
      for (const f of fs.readdirSync(outside)) if (f !== 'sentinel') throw new Error(`wrote ${f} outside the root`);
      if (fs.readFileSync(path.join(outside, 'sentinel'), 'utf8') !== 'untouched') throw new Error('sentinel changed');
      if ((fs.statSync(outside).mode & 0o777) !== 0o755 && (fs.statSync(outside).mode & 0o777) !== 0o700) throw new Error('outside dir mode changed');
    }
    if (fs.readdirSync(dir).sort().join() !== before.concat(['data', 'other']).sort().join()) throw new Error(`something appeared beside the roots: ${fs.readdirSync(dir)}`);
  }), { numRuns: 400 });
  t.log(`${applied} entries applied, ${refused} refused`);
  t.true(applied > 100 && refused > 100);
});
