import test from 'ava';
import * as path from 'node:path';
import { makePair, REPO, type Pair } from './helpers/pair';
import { startNatsServer } from './helpers/nats-server';
import { diffTrees } from './helpers/tree';

const TAKE_TURNS = path.join(REPO, 'test', 'fixtures', 'take-turns.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Two processes with a journal each take turns on the same files; each change is causally after the last. */
async function takeTurns(pair: Pair, rounds: number, moves = false): Promise<void> {
  const run = await pair.runApp({ file: TAKE_TURNS, args: [pair.primary, String(rounds), ...(moves ? ['moves'] : [])], env: { UNDERSTUDY_CHILD_NAME: 'app-b' } });
  if (run.code !== 0 || run.stderr !== '') throw new Error(`take-turns: exit ${run.code}\n${run.stderr}`);
}

test.serial('two journals taking turns on the same files end on the standby as on the primary', async (t) => {
  const pair = await makePair('turns');
  t.teardown(() => pair.close());
  await takeTurns(pair, 200);
  const s = await pair.drain();
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(s.inDoubt, 0);
});

test.serial('two journals taking turns through a NATS outage, shipped as two backlogs: the standby equals the primary', async (t) => {
  const pair = await makePair('turns-outage');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const app = takeTurns(pair, 300);
  await sleep(1500);
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  await app;
  const s = await pair.drain();
  t.log(`${s.applied} applied, ${s.superseded} superseded by a later change from the other journal`);
  t.true(s.superseded > 0, 'the backlogs arrived out of host order, so some entries came after later changes');
  t.deepEqual(diffTrees(pair.primary, pair.standby), []);
  t.is(s.inDoubt, 0);
});

test.serial('renames and removals across two journals through an outage: equal, or every difference is named in doubt', async (t) => {
  const pair = await makePair('turns-moves');
  t.teardown(() => pair.close());
  await pair.server.stop();
  const app = takeTurns(pair, 150, true);
  await sleep(1500);
  const again = await startNatsServer({ port: pair.server.port, storeDir: pair.server.storeDir });
  t.teardown(() => again.stop());
  await app;
  const logs: string[] = [];
  const s = await pair.drain(undefined, { log: (m: string) => logs.push(m) });
  const differing = diffTrees(pair.primary, pair.standby).map((d) => d.replace(/^\w+: /, '').split(' ')[0]);
  t.log(`${s.superseded} superseded, ${s.inDoubt} in doubt; differing: ${differing.join(', ') || 'none'}`);
  t.true(s.superseded > 0, 'the backlogs arrived out of host order');
  for (const p of differing) t.true(logs.some((l) => l.startsWith(`data/${p} may differ`)), `${p} differs and the replayer said so`);
  t.is(s.inDoubt >= differing.length, true);
});
