import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makePair, REPO } from './helpers/pair';
import { diffTrees } from './helpers/tree';
import { listSegments, scanFrames } from '../lib/spool';
import { decodeEntry } from '../lib/codec';

const SCRIPT = path.join(REPO, 'test', 'fixtures', 'transparency.js');

test.serial('the application sees the same results and errors with and without the agent', async (t) => {
  const pair = await makePair('same');
  t.teardown(() => pair.close());
  const bare = path.join(pair.dir, 'bare');
  fs.mkdirSync(bare);
  const without = await pair.runApp({ file: SCRIPT, args: [bare], withAgent: false });
  const withAgent = await pair.runApp({ file: SCRIPT, args: [pair.primary] });
  t.is(without.code, 0, without.stderr);
  t.is(withAgent.code, 0, withAgent.stderr);
  t.is(withAgent.stderr, '');
  const a = JSON.parse(without.stdout) as unknown[][];
  const b = JSON.parse(withAgent.stdout) as unknown[][];
  t.true(a.length > 40);
  t.true(a.some((row) => row[1] === 'threw' || row[1] === 'rejected'), 'failing calls are among them');
  t.deepEqual(b, a);
  // And what did change under the agent is on the standby.
  await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('ESM named imports of node:fs see the wrappers', async (t) => {
  const pair = await makePair('esm');
  t.teardown(() => pair.close());
  const file = path.join(pair.dir, 'app.mjs');
  fs.writeFileSync(file, [
    "import { writeFileSync, promises } from 'node:fs';",
    "import { appendFile } from 'node:fs/promises';",
    `writeFileSync(${JSON.stringify(path.join(pair.primary, 'esm.txt'))}, 'from esm');`,
    `await appendFile(${JSON.stringify(path.join(pair.primary, 'esm.txt'))}, ' and more');`,
    `await promises.writeFile(${JSON.stringify(path.join(pair.primary, 'p.txt'))}, 'p');`,
  ].join('\n'));
  const run = await pair.runApp({ file });
  t.is(run.code, 0, run.stderr);
  await pair.drain();
  t.is(fs.readFileSync(path.join(pair.standby, 'esm.txt'), 'utf8'), 'from esm and more');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
});

test.serial('changes outside the roots, or reaching outside through a symlink, are not journaled', async (t) => {
  const pair = await makePair('outside');
  t.teardown(() => pair.close());
  const outside = path.join(pair.dir, 'outside');
  fs.mkdirSync(outside);
  fs.symlinkSync(outside, path.join(pair.primary, 'escape'));
  const run = await pair.runApp({
    code: `const fs = require('fs');
      fs.writeFileSync(${JSON.stringify(path.join(outside, 'direct.txt'))}, 'not ours');
      fs.writeFileSync(${JSON.stringify(path.join(pair.primary, 'escape', 'through-link.txt'))}, 'not ours either');
      fs.writeFileSync(${JSON.stringify(path.join(pair.spool, 'in-spool.txt'))}, 'the spool is never journaled');
      fs.writeFileSync(${JSON.stringify(path.join(pair.primary, 'inside.txt'))}, 'ours');
      fs.linkSync(${JSON.stringify(path.join(outside, 'direct.txt'))}, ${JSON.stringify(path.join(pair.primary, 'hard-to-outside'))});`,
  });
  t.is(run.code, 0, run.stderr);
  const summary = await pair.drain();
  t.is(summary.applied, 2);
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['hard-to-outside', 'inside.txt']);
  // A hard link to a file outside the roots arrives as a copy of its content: the standby never links outside.
  t.is(fs.readFileSync(path.join(pair.standby, 'hard-to-outside'), 'utf8'), 'not ours');
  t.is(fs.statSync(path.join(pair.standby, 'hard-to-outside')).nlink, 1);
});

test.serial('a directory swapped for a link by another process after the agent resolved it is seen at once', async (t) => {
  const pair = await makePair('swapped');
  t.teardown(() => pair.close());
  const outside = path.join(pair.dir, 'outside');
  fs.mkdirSync(outside);
  const d = path.join(pair.primary, 'd');
  const moved = path.join(pair.primary, 'moved');
  // Between the app's writes a shell moves d away and leaves a link to outside (then to the moved d) in its place.
  const run = await pair.runApp({
    code: `const fs = require('fs'); const { execFileSync } = require('child_process');
      fs.mkdirSync(${JSON.stringify(d)});
      fs.writeFileSync(${JSON.stringify(path.join(d, 'one.txt'))}, 'one');
      execFileSync('sh', ['-c', 'mv "$1" "$2" && ln -s "$3" "$1"', 'sh', ${JSON.stringify(d)}, ${JSON.stringify(moved)}, ${JSON.stringify(outside)}]);
      fs.writeFileSync(${JSON.stringify(path.join(d, 'two.txt'))}, 'written outside through the link');
      execFileSync('sh', ['-c', 'rm "$1" && ln -s moved "$1"', 'sh', ${JSON.stringify(d)}]);
      fs.writeFileSync(${JSON.stringify(path.join(d, 'three.txt'))}, 'three');`,
  });
  t.is(run.code, 0, run.stderr);
  t.is(fs.readFileSync(path.join(outside, 'two.txt'), 'utf8'), 'written outside through the link');
  const entries = listSegments(path.join(pair.spool, 'app'))
    .flatMap((seg) => scanFrames(fs.readFileSync(seg.file)).records)
    .map((r) => decodeEntry(r.entry).header)
    .map((h) => `${h.op} ${h.p}`);
  // two.txt went outside the root: not journaled. three.txt really lies in moved/, and is journaled there.
  t.deepEqual(entries, ['mkdir d', 'put d/one.txt', 'put moved/three.txt']);
});

test.serial('a bad setting leaves the application running, and says why once', async (t) => {
  const pair = await makePair('bad');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    env: { UNDERSTUDY_ROOTS: 'relative/dir' },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'x'))}, 'x'); console.log('app ran');`,
  });
  t.is(run.code, 0);
  t.is(run.stdout.trim(), 'app ran');
  t.regex(run.stderr, /understudy: agent not started.*UNDERSTUDY_ROOTS: "relative\/dir" is not name=\/absolute\/dir/);
  t.is(run.stderr.trim().split('\n').length, 1);
});

test.serial('UNDERSTUDY_EXCLUDE keeps matching paths out of the journal', async (t) => {
  const pair = await makePair('exclude');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    env: { UNDERSTUDY_EXCLUDE: '*.tmp,cache/**' },
    code: `const fs = require('fs'); const r = ${JSON.stringify(pair.primary)};
      fs.writeFileSync(r + '/keep.txt', 'k'); fs.writeFileSync(r + '/scratch.tmp', 's');
      fs.mkdirSync(r + '/cache/deep', { recursive: true }); fs.writeFileSync(r + '/cache/deep/x', 'x');`,
  });
  t.is(run.code, 0, run.stderr);
  await pair.drain();
  t.deepEqual(fs.readdirSync(pair.standby).sort(), ['keep.txt'], '"cache/**" covers cache itself too');
});

test.serial('a signing key that cannot be used stops the agent, not the application: nothing goes out unsigned', async (t) => {
  const pair = await makePair('sign');
  t.teardown(() => pair.close());
  const run = await pair.runApp({
    env: { UNDERSTUDY_SIGNING_KEY: '/etc/understudy/key' },
    code: `require('fs').writeFileSync(${JSON.stringify(path.join(pair.primary, 'x'))}, 'x'); console.log('app ran');`,
  });
  t.is(run.code, 0);
  t.is(run.stdout.trim(), 'app ran');
  t.regex(run.stderr, /agent not started.*UNDERSTUDY_SIGNING_KEY: cannot read \/etc\/understudy\/key/);
  t.is((await pair.drain()).applied, 0, 'nothing unsigned was shipped');
});
