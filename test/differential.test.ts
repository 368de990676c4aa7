import test from 'ava';
import * as path from 'node:path';
import { makePair, REPO } from './helpers/pair';
import { diffTrees, readTree } from './helpers/tree';

const RANDOM_OPS = path.join(REPO, 'test', 'fixtures', 'random-ops.js');
const SEEDS = [1, 2, 3, 42, 1234, 99991];

for (const seed of SEEDS) {
  test.serial(`seeded random operations (seed ${seed}) leave the standby equal to the primary`, async (t) => {
    const pair = await makePair('diff');
    t.teardown(() => pair.close());
    const run = await pair.runApp({ file: RANDOM_OPS, args: [String(seed), pair.primary, '150'] });
    t.is(run.code, 0, run.stderr);
    t.is(run.stderr, '');
    const { ok, failed } = JSON.parse(run.stdout) as { ok: number; failed: number };
    t.log(`seed ${seed}: ${ok} calls succeeded, ${failed} failed (failures must not be journaled); ${readTree(pair.primary).size} objects`);
    t.true(ok > 50, 'enough of the sequence succeeded to mean something');
    await pair.drain();
    t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  });
}
