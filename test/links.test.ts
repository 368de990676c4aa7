import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';
import { BadEntryError, ConfinementError } from '../lib/errors';
import { FsApplier } from '../replayer/apply/fs';

const SECRET = 'TOP SECRET, outside every root';
const head = { j: 'app', e: 1, t: 0 };
let seq = 0;
const link = (r: string, p: string, fromRoot: string, from: string) => ({ ...head, s: ++seq, r, p, op: 'link', fromRoot, from }) as EntryHeader;
const none = { buf: Buffer.alloc(0) };

/** Every file under `dir`, with its content, so a test can say no byte of a secret got in. */
function contents(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(fs.readFileSync(path.join(e.parentPath, e.name), 'utf8'));
  }
  return out;
}

/** Two roots on two filesystems (os.tmpdir() and /dev/shm), so a hard link between them is EXDEV. */
function twoFilesystems(t: ExecutionContext): { a: string; b: string; outside: string } {
  const a = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-links-a-'));
  const b = fs.mkdtempSync(path.join('/dev/shm', 'understudy-links-b-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-links-out-'));
  t.teardown(() => { for (const d of [a, b, outside]) fs.rmSync(d, { recursive: true, force: true }); });
  fs.writeFileSync(path.join(outside, 'secret'), SECRET, { mode: 0o600 });
  return { a, b, outside };
}

test('across filesystems, a link from a symlink is made a symlink: what it points to is never read into the root', (t) => {
  const { a, b, outside } = twoFilesystems(t);
  t.not(fs.statSync(a).dev, fs.statSync(b).dev, 'the two roots must be on different filesystems for this test to mean anything');
  const ap = new FsApplier(new Map([['a', a], ['b', b]]));
  ap.apply({ ...head, s: ++seq, r: 'b', p: 'ln', op: 'symlink', target: path.join(outside, 'secret') } as EntryHeader, none);
  ap.apply(link('a', 'copy', 'b', 'ln'), none);
  t.true(fs.lstatSync(path.join(a, 'copy')).isSymbolicLink());
  t.is(fs.readlinkSync(path.join(a, 'copy')), path.join(outside, 'secret'));
  t.false(contents(a).includes(SECRET));
  t.deepEqual(fs.readdirSync(a), ['copy']);
});

test('across filesystems, a link from a file is a copy with its content and mode', (t) => {
  const { a, b } = twoFilesystems(t);
  const ap = new FsApplier(new Map([['a', a], ['b', b]]));
  ap.apply({ ...head, s: ++seq, r: 'b', p: 'f', op: 'put', mode: 0o640 } as EntryHeader, { buf: Buffer.from('inside') });
  ap.apply(link('a', 'g', 'b', 'f'), none);
  t.is(fs.readFileSync(path.join(a, 'g'), 'utf8'), 'inside');
  t.is(fs.statSync(path.join(a, 'g')).mode & 0o777, 0o640);
});

test('a link from a directory or a FIFO is a bad entry, not a failure to apply, on one filesystem or two', (t) => {
  const { a, b } = twoFilesystems(t);
  fs.mkdirSync(path.join(b, 'dir'));
  execFileSync('mkfifo', [path.join(b, 'fifo')]);
  fs.mkdirSync(path.join(a, 'dir'));
  execFileSync('mkfifo', [path.join(a, 'fifo')]);
  const ap = new FsApplier(new Map([['a', a], ['b', b]]));
  for (const [root, from] of [['b', 'dir'], ['b', 'fifo'], ['a', 'dir'], ['a', 'fifo']]) {
    t.throws(() => ap.apply(link('a', 'x', root, from), none), { instanceOf: BadEntryError, message: /is a (directory|FIFO) on the standby, not a file or a symlink/ });
  }
  t.deepEqual(fs.readdirSync(a).sort(), ['dir', 'fifo']);
});
test('hard-link escapes on the standby: a link from outside through "..", an absolute path, or a symlinked directory writes nothing and links nothing', (t) => {
  const { a, outside } = twoFilesystems(t);
  fs.symlinkSync(outside, path.join(a, 'out'));
  fs.writeFileSync(path.join(a, 'inside.txt'), 'inside');
  const ap = new FsApplier(new Map([['a', a]]));
  const before = fs.readdirSync(outside);
  const attempts: [string, string][] = [
    ['copy1', `../${path.basename(outside)}/secret`],
    ['copy2', path.join(outside, 'secret')],
    ['copy3', 'out/secret'],
    ['sub/copy4', 'out/secret'],
    ['out/copy5', 'inside.txt'],
  ];
  for (const [p, from] of attempts) {
    t.throws(() => ap.apply(link('a', p, 'a', from), none), { instanceOf: ConfinementError }, `${p} from ${from}`);
  }
  t.deepEqual(fs.readdirSync(a).sort(), ['inside.txt', 'out'], 'nothing linked, copied, or left behind in the root');
  t.is(fs.statSync(path.join(a, 'inside.txt')).nlink, 1);
  t.deepEqual(fs.readdirSync(outside), before, 'nothing written outside');
  t.is(fs.statSync(path.join(outside, 'secret')).nlink, 1);
});
