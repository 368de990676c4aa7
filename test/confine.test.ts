import test from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkRelPath } from '../lib/confine';
import type { EntryHeader } from '../lib/entry';
import { BadEntryError, ConfinementError } from '../lib/errors';
import { FsApplier } from '../replayer/apply/fs';
import { resolveInRoot } from '../replayer/safe-path';

const HOSTILE = [
  '', '/etc/passwd', '////etc/passwd', '..', '../x', 'a/../../x', 'a/./b', './a', 'a//b', 'a/', 'a\\..\\b',
  '..\\x', 'a\0b', 'x'.repeat(256), `${'d/'.repeat(2100)}f`, 'a/b/../../../etc/shadow',
];

for (const p of HOSTILE) {
  test(`hostile path ${JSON.stringify(p.length > 40 ? p.slice(0, 40) + '…' : p)} is refused`, (t) => {
    t.throws(() => checkRelPath(p), { instanceOf: ConfinementError });
  });
}

test('ordinary and unicode names pass', (t) => {
  for (const p of ['a', 'a/b/c.txt', 'ünïcödé/日本語.txt', '.hidden', '..dots', 'a..b', 'sp ace/x']) {
    t.deepEqual(checkRelPath(p), p.split('/'));
  }
});

test('a symlinked directory inside the root is never written through', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-confine-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  const outside = path.join(dir, 'outside');
  fs.mkdirSync(root);
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(root, 'escape'));
  t.throws(() => resolveInRoot(root, 'escape/file', true), { instanceOf: ConfinementError, message: /symlink/ });
  t.throws(() => resolveInRoot(root, 'escape/deeper/file', true), { instanceOf: ConfinementError });
  t.deepEqual(fs.readdirSync(outside), []);
});

test('missing parents are made inside the root', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-confine-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  t.is(resolveInRoot(root, 'a/b/c', true), path.join(root, 'a/b/c'));
  t.true(fs.statSync(path.join(root, 'a/b')).isDirectory());
});

test('an entry refused for any of its paths leaves no directory behind', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-confine-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const root = path.join(dir, 'root');
  fs.mkdirSync(root);
  fs.mkdirSync(path.join(dir, 'outside'));
  fs.symlinkSync(path.join(dir, 'outside'), path.join(root, 'esc'));
  fs.mkdirSync(path.join(root, 'd'));
  fs.writeFileSync(path.join(root, 'f'), 'f');
  const ap = new FsApplier(new Map([['data', root]]));
  const head = { j: 'app', e: 1, s: 1, t: 0, r: 'data' };
  const refused: [EntryHeader, RegExp][] = [
    [{ ...head, p: 'new1/x', op: 'link', fromRoot: 'data', from: 'esc/f' }, /"esc" is a symlink/],
    [{ ...head, p: 'new2/x', op: 'link', fromRoot: 'data', from: '../f' }, /has a "\.\." segment/],
    [{ ...head, p: 'new3/x', op: 'link', fromRoot: 'data', from: 'd' }, /is a directory on the standby/],
    [{ ...head, p: 'new4/x', op: 'link', fromRoot: 'nope', from: 'f' }, /root "nope"/],
    [{ ...head, p: 'new5/x', op: 'link', fromRoot: 'data', from: 'missing/f' }, /does not exist on the standby/],
    [{ ...head, p: 'missing/f', op: 'rename', toRoot: 'data', to: 'new6/x' }, /does not exist on the standby/],
    [{ ...head, p: 'f', op: 'rename', toRoot: 'data', to: 'new7/../../x' }, /has a "\.\." segment/],
    [{ ...head, p: 'new8/x', op: 'rename', toRoot: 'data', to: 'new9/x' }, /does not exist on the standby/],
  ];
  for (const [h, message] of refused) t.throws(() => ap.apply(h, { buf: Buffer.alloc(0) }), { message }, `${h.op} ${h.p}`);
  t.deepEqual(fs.readdirSync(root).sort(), ['d', 'esc', 'f']);
  t.deepEqual(fs.readdirSync(path.join(dir, 'outside')), []);
});

test('a FIFO planted on the standby blocks nothing: in-place writes, truncate and chmod refuse it', (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-confine-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  execFileSync('mkfifo', [path.join(root, 'fifo')]);
  const ap = new FsApplier(new Map([['data', root]]));
  const head = { j: 'app', e: 1, s: 1, t: 0, r: 'data', p: 'fifo' };
  const entries = [
    { ...head, op: 'pwrite', at: 0 }, { ...head, op: 'append', at: 0 }, { ...head, op: 'truncate', size: 0 }, { ...head, op: 'chmod', mode: 0o600 },
  ] as EntryHeader[];
  const check = () => {
    for (const h of entries) {
      t.throws(() => ap.apply(h, { buf: Buffer.from('x') }), { instanceOf: BadEntryError, message: /fifo is (a FIFO|a FIFO, socket or device) on the standby, not a file/ }, h.op);
    }
  };
  check(); // nobody reads it: opening it for writing fails at once (ENXIO) instead of waiting for a reader
  const reader = fs.openSync(path.join(root, 'fifo'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  t.teardown(() => fs.closeSync(reader));
  check(); // someone reads it: it opens, and is refused once fstat says what it is
  t.is(fs.readSync(reader, Buffer.alloc(16)), 0, 'nothing was written into it');
  t.true(fs.lstatSync(path.join(root, 'fifo')).isFIFO());
});
