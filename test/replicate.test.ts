import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makePair, REPO } from './helpers/pair';
import { diffTrees, readTree } from './helpers/tree';

// The case table, expanded into every API shape (STYLE: one table, every shape).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { CASES } = require(path.join(REPO, 'test', 'fixtures', 'fs-cases.js')) as { CASES: Record<string, unknown> };
const RUN_CASE = path.join(REPO, 'test', 'fixtures', 'run-case.js');
const SHAPES = ['sync', 'callback', 'promise'] as const;

// Serial within the file: each test has its own nats-server, and a 2-core machine runs a few at a time well.
for (const name of Object.keys(CASES)) {
  for (const shape of SHAPES) {
    test.serial(`${name} (${shape}) replicates byte-identical`, async (t) => {
      const pair = await makePair('rep');
      t.teardown(() => pair.close());
      const run = await pair.runApp({ file: RUN_CASE, args: [name, shape, pair.primary] });
      t.is(run.code, 0, run.stderr);
      t.is(run.stderr, '', 'the agent said nothing: it did not degrade');
      t.true(readTree(pair.primary).size > 0, 'the case changed something');
      const summary = await pair.drain();
      t.true(summary.applied > 0);
      t.deepEqual(diffTrees(pair.primary, pair.standby), []);
      t.deepEqual(fs.readdirSync(pair.standby).filter((n) => n.startsWith('.understudy-')), [], 'no temporary file left');
    });
  }
}

test.serial('a hard link stays one inode on the standby', async (t) => {
  const pair = await makePair('link');
  t.teardown(() => pair.close());
  const run = await pair.runApp({ file: RUN_CASE, args: ['hard link', 'sync', pair.primary] });
  t.is(run.code, 0, run.stderr);
  await pair.drain();
  t.is(fs.statSync(path.join(pair.standby, 'orig.txt')).ino, fs.statSync(path.join(pair.standby, 'hard.txt')).ino);
});
