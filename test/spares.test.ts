import test, { type ExecutionContext } from 'ava';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';
import { FsApplier, TEMP_PREFIX } from '../replayer/apply/fs';

// The replayer keeps the version a put replaced and writes the next put of that directory into
// it (replayer/apply/spares.ts). These tests hold it to: the right bytes every time, nothing of
// its own left in the roots, nothing written outside them.

const head = { j: 'app', e: 1, t: 0 };
let seq = 0;
const put = (p: string, mode = 0o644) => ({ ...head, s: ++seq, r: 'data', p, op: 'put', mode }) as EntryHeader;
const bytes = (s: string) => ({ buf: Buffer.from(s) });

function root(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-spares-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
const temps = (dir: string) => fs.readdirSync(dir, { recursive: true }).map(String).filter((n) => path.basename(n).startsWith(TEMP_PREFIX));

test('overwrites reuse the replaced inode, with the right bytes and mode every time, and leave nothing after close', (t) => {
  const dir = root(t);
  const ap = new FsApplier(new Map([['data', dir]]));
  const inodes = new Set<number>();
  for (let i = 0; i < 6; i++) {
    ap.apply(put('f', i % 2 === 0 ? 0o640 : 0o604), bytes(`version ${i}`.repeat(i + 1)));
    const st = fs.statSync(path.join(dir, 'f'));
    t.is(fs.readFileSync(path.join(dir, 'f'), 'utf8'), `version ${i}`.repeat(i + 1));
    t.is(st.mode & 0o777, i % 2 === 0 ? 0o640 : 0o604);
    t.is(st.nlink, 1, 'the file the application sees has one name');
    inodes.add(st.ino);
  }
  t.true(inodes.size <= 3, `two inodes take turns (${inodes.size} seen)`);
  const [spare] = temps(dir);
  t.is(temps(dir).length, 1, 'one spare for the directory');
  t.is(fs.statSync(path.join(dir, spare)).mode & 0o777, 0o600, 'an old version is readable by the replayer alone');
  ap.close();
  t.deepEqual(temps(dir), []);
});

test('a directory holding a spare can be renamed, and renamed over when the primary emptied it', (t) => {
  const dir = root(t);
  const ap = new FsApplier(new Map([['data', dir]]));
  fs.mkdirSync(path.join(dir, 'a'));
  fs.mkdirSync(path.join(dir, 'empty'));
  ap.apply(put('a/f'), bytes('1'));
  ap.apply(put('a/f'), bytes('2'));
  ap.apply(put('empty/g'), bytes('1'));
  ap.apply(put('empty/g'), bytes('2'));
  ap.apply({ ...head, s: ++seq, r: 'data', p: 'empty/g', op: 'rm' } as EntryHeader, { buf: Buffer.alloc(0) });
  t.is(temps(path.join(dir, 'empty')).length, 1, 'the spare of empty/ is there before the rename');
  // On the primary "empty" is empty now, so a directory may be renamed over it.
  ap.apply({ ...head, s: ++seq, r: 'data', p: 'a', op: 'rename', toRoot: 'data', to: 'empty' } as EntryHeader, { buf: Buffer.alloc(0) });
  t.deepEqual(fs.readdirSync(path.join(dir, 'empty')), ['f']);
  t.is(fs.readFileSync(path.join(dir, 'empty', 'f'), 'utf8'), '2');
  ap.close();
  t.deepEqual(temps(dir), []);
});

test('a spare swapped for a hard link to a file outside the root is not written through', (t) => {
  const dir = root(t);
  const outside = root(t);
  const secret = path.join(outside, 'secret');
  fs.writeFileSync(secret, 'outside, untouched');
  const ap = new FsApplier(new Map([['data', dir]]));
  ap.apply(put('f'), bytes('1'));
  ap.apply(put('f'), bytes('2'));
  const [spare] = temps(dir);
  fs.rmSync(path.join(dir, spare));
  fs.linkSync(secret, path.join(dir, spare)); // what a local attacker on the standby might plant
  ap.apply(put('f'), bytes('3'));
  t.is(fs.readFileSync(secret, 'utf8'), 'outside, untouched');
  t.is(fs.readFileSync(path.join(dir, 'f'), 'utf8'), '3');
  // And a FIFO under the name neither blocks nor is written to.
  const [next] = temps(dir).filter((n) => n !== spare);
  t.truthy(next, 'the version replaced by "3" was kept, under a new name');
  fs.rmSync(path.join(dir, next));
  execFileSync('mkfifo', [path.join(dir, next)]);
  ap.apply(put('f'), bytes('4'));
  t.is(fs.readFileSync(path.join(dir, 'f'), 'utf8'), '4');
  ap.close();
});
