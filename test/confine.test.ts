import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { checkRelPath } from '../lib/confine';
import { ConfinementError } from '../lib/errors';
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
