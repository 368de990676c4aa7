import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';
import { makePair } from './helpers/pair';
import { publish } from './helpers/publish';

/** Every object under `dir` but the listed subdirectories: path, type, mode, content. */
function snapshot(dir: string, skip: string[]): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of fs.readdirSync(d)) {
      const p = path.join(d, name);
      if (d === dir && skip.includes(name)) continue;
      const st = fs.lstatSync(p);
      const what = st.isSymbolicLink() ? `link ${fs.readlinkSync(p)}` : st.isDirectory() ? 'dir' : `file ${fs.readFileSync(p, 'utf8')}`;
      out.push(`${path.relative(dir, p)} ${what} ${(st.mode & 0o7777).toString(8)} nlink=${st.nlink}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

test.serial('a corpus of hostile paths (CVE shapes, Unicode tricks) through the real replayer creates nothing outside its root', async (t) => {
  const pair = await makePair('hostile-paths');
  t.teardown(() => pair.close());
  const outside = path.join(pair.dir, 'outside');
  fs.mkdirSync(outside, { mode: 0o755 });
  fs.writeFileSync(path.join(outside, 'sentinel'), 'untouched', { mode: 0o644 });
  const before = snapshot(pair.dir, ['standby', 'state', 'nats']);
  const up = path.relative(pair.standby, outside); // "../outside"
  let s = 0;
  const e = (p: string, rest: object, data?: string) => ({ header: { j: 'app', e: 1, s: ++s, t: Date.now(), r: 'data', p, ...rest } as EntryHeader, data: data === undefined ? undefined : Buffer.from(data) });
  const put = (p: string) => e(p, { op: 'put', mode: 0o644 }, `written to ${p}`);
  const corpus = [
    // Zip Slip and the tar/rsync traversal shapes.
    put('../evil'), put(`${up}/zip-slip`), put('a/../../evil'), put('a/b/../../../evil'), put('./../evil'),
    // Absolute paths, with the extra slashes node-tar CVE-2021-32804 stripped one at a time.
    put(path.join(outside, 'abs')), put(`////${outside}/abs`), put(`/${up}/abs`),
    // Backslashes (CVE-2021-37701 on Windows-style names), NUL, empty and dot segments.
    put('a\\..\\..\\evil'), put('..\\evil'), put('a\0/evil'), put('a//b'), put('a/./b'), put('a/'), put(''),
    // A directory turned into a symlink to outside, then written through (CVE-2021-32803, syncthing #3801).
    e('d', { op: 'mkdir', mode: 0o755 }), put('d/first'), e('d', { op: 'symlink', target: outside }), put('d/second'), e('d/sub', { op: 'mkdir', mode: 0o755 }),
    // A symlink climbing out (rsync CVE-2024-12088's safe-links shape), then used as a directory, a chmod and a truncate target.
    e('up', { op: 'symlink', target: '../../../..' }), put('up/etc-passwd'), e('d', { op: 'chmod', mode: 0o777 }), e('d', { op: 'truncate', size: 0 }),
    e('d', { op: 'append', at: 0 }, 'appended through a link'),
    // Renames and hard links whose other path escapes.
    put('inside.txt'), e('inside.txt', { op: 'rename', toRoot: 'data', to: '../renamed' }), e('inside.txt', { op: 'rename', toRoot: 'data', to: 'd/renamed' }),
    e('hl1', { op: 'link', fromRoot: 'data', from: `${up}/sentinel` }), e('hl2', { op: 'link', fromRoot: 'data', from: 'd/sentinel' }),
    e('hl3', { op: 'link', fromRoot: 'data', from: path.join(outside, 'sentinel') }), e('hl4', { op: 'link', fromRoot: 'nope', from: 'sentinel' }),
    // Over-long names and paths.
    put('x'.repeat(256)), put(`${'é/'.repeat(1400)}f`) /* 2,801 characters, 4,201 bytes */,
    // Unicode look-alikes: ordinary names on Linux, which stay inside the root.
    put('．．/fullwidth-dots'), put('..\u2215division-slash'), put('\u202eevil.txt'), put('ﬀ-ligature'), put('e\u0301-nfd'), put('é-nfc'), put('\u2024\u2024/one-dot-leaders'),
  ];
  await publish(pair.server.url, corpus);
  const logs: string[] = [];
  const summary = await pair.drain(undefined, { onBadEntry: 'skip', log: (l) => logs.push(l) });
  t.log(`${summary.applied} applied, ${summary.skipped} refused`);
  t.deepEqual(snapshot(pair.dir, ['standby', 'state', 'nats']), before, 'nothing outside the root was created, changed or linked');
  // Refused: everything but the mkdir, the two symlinks, d/first, inside.txt and the seven look-alikes.
  t.is(summary.skipped, corpus.length - 12, logs.filter((l) => !/refused/.test(l)).join('\n'));
  t.is(summary.applied + summary.skipped, corpus.length);
  // What the look-alikes made is inside the root, under their own names.
  for (const name of ['．．', '..\u2215division-slash', '\u202eevil.txt', 'ﬀ-ligature', 'e\u0301-nfd', 'é-nfc', '\u2024\u2024']) {
    t.true(fs.existsSync(path.join(pair.standby, name)), name);
  }
  t.true(fs.lstatSync(path.join(pair.standby, 'd')).isSymbolicLink());
  t.true(fs.existsSync(path.join(pair.standby, 'inside.txt')), 'the renames out were refused');
});
