import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Locator } from '../agent/locate';
import { parseRoots } from '../lib/roots';

/** A root and a directory outside it, removed when the test ends. */
function dirs(t: ExecutionContext): { root: string; outside: string } {
  const base = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-locate-')));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(path.join(root, 'logs'), { recursive: true });
  fs.mkdirSync(outside);
  return { root, outside };
}

// Each change below is made behind the locator's back (another process's doing), right after it
// remembered the file: within the memo's second, so only its inode check can notice.

test('a file written again is found as it is now: its size after a change, though remembered', (t) => {
  const { root } = dirs(t);
  const locator = new Locator(parseRoots(`data=${root}`), []);
  const f = path.join(root, 'logs', 'app.log');
  fs.writeFileSync(f, 'one\n');
  t.is(locator.locateFile(f)?.st?.size, 4);
  fs.appendFileSync(f, 'two\n');
  const again = locator.locateFile(f);
  t.deepEqual(again?.at, { root: 'data', rel: 'logs/app.log', abs: f });
  t.is(again?.st?.size, 8);
});

test('a remembered file replaced by a symlink out of the root is not journaled', (t) => {
  const { root, outside } = dirs(t);
  const locator = new Locator(parseRoots(`data=${root}`), []);
  const f = path.join(root, 'logs', 'app.log');
  fs.writeFileSync(f, 'in');
  t.is(locator.locateFile(f)?.at.rel, 'logs/app.log');
  fs.writeFileSync(path.join(outside, 'secret'), 'out');
  fs.rmSync(f);
  fs.symlinkSync(path.join(outside, 'secret'), f);
  t.is(locator.locateFile(f), undefined);
});

test('a remembered file whose directory became a symlink to another one in the root is found where it really is', (t) => {
  const { root } = dirs(t);
  const locator = new Locator(parseRoots(`data=${root}`), []);
  const f = path.join(root, 'logs', 'app.log');
  fs.writeFileSync(f, 'old');
  t.is(locator.locateFile(f)?.at.rel, 'logs/app.log');
  fs.mkdirSync(path.join(root, 'v2'));
  fs.writeFileSync(path.join(root, 'v2', 'app.log'), 'new one');
  fs.renameSync(path.join(root, 'logs'), path.join(root, 'v1'));
  fs.symlinkSync('v2', path.join(root, 'logs'));
  const found = locator.locateFile(f);
  t.deepEqual(found?.at, { root: 'data', rel: 'v2/app.log', abs: path.join(root, 'v2', 'app.log') });
  t.is(found?.st?.size, 7);
});

test('a remembered file renamed over by another is the other one, and a removed one is found afresh', (t) => {
  const { root } = dirs(t);
  const locator = new Locator(parseRoots(`data=${root}`, 'UNDERSTUDY_ROOTS'), ['**/*.tmp']);
  const f = path.join(root, 'logs', 'state.json');
  fs.writeFileSync(f, '{}');
  const first = locator.locateFile(f);
  fs.writeFileSync(f + '.tmp', '{"a":1}');
  t.is(locator.locateFile(f + '.tmp'), undefined, 'excluded');
  fs.renameSync(f + '.tmp', f);
  const second = locator.locateFile(f);
  t.not(second?.st?.ino, first?.st?.ino);
  t.is(second?.st?.size, 7);
  fs.rmSync(f);
  t.deepEqual(locator.locateFile(f), { at: { root: 'data', rel: 'logs/state.json', abs: f }, st: undefined });
});
