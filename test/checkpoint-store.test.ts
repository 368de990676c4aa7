import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { planRestore, runRestore } from '../replayer/checkpoints/restore';
import { listCheckpoints } from '../replayer/checkpoints/meta';
import { CheckpointStandby, type Change } from './helpers/checkpoint-standby';
import { cfg, EVERY_CHANGE, put, seed } from './helpers/checkpoint-changes';
import { diffTrees } from './helpers/tree';

// The checkpoint store on real disk, driven through the real appliers: reach, change, restore,
// and compare with a `cp -a` copy taken at the reach.

async function restoreInto(sb: CheckpointStandby, name: string, to = path.join(sb.base, 'restored', name)): Promise<string> {
  const plan = planRestore(sb.stateDir, sb.roots, name, to);
  runRestore(plan);
  return to;
}

test('restore gives exactly the tree and the replicas of the reach, after every kind of change', async (t) => {
  const sb = new CheckpointStandby(t);
  seed(sb);
  const snap = await sb.reach('c1');
  for (const c of EVERY_CHANGE) sb.apply(c);
  await sb.commit();
  t.notDeepEqual(diffTrees(snap + '/data', sb.root()), [], 'the live tree moved on');
  const restored = await restoreInto(sb, 'c1');
  t.deepEqual(diffTrees(path.join(snap, 'data'), path.join(restored, 'data')), []);
  t.deepEqual(diffTrees(path.join(snap, '.state'), path.join(restored, '.state')), []);
  // Keeping never changed what was kept: a second restore is the same.
  const again = await restoreInto(sb, 'c1', path.join(sb.base, 'again'));
  t.deepEqual(diffTrees(path.join(snap, 'data'), path.join(again, 'data')), []);
});

test('the cost of a reach and of keeping is what changed: nothing kept for an untouched tree, a hard link for a replaced file', async (t) => {
  const sb = new CheckpointStandby(t);
  for (let i = 0; i < 200; i++) sb.apply(put(`f${i}`, 'x'.repeat(1000)));
  await sb.reach('c1');
  t.is(listCheckpoints(sb.stateDir)[0].bytes, 0);
  const before = fs.statSync(path.join(sb.root(), 'f1')).ino;
  sb.apply(put('f1', 'new'));
  const [cp] = listCheckpoints(sb.stateDir);
  t.is(cp.bytes, 1000);
  const kept = fs.readdirSync(path.join(sb.stateDir, 'checkpoints', '000001', 'o')).map((n) => fs.statSync(path.join(sb.stateDir, 'checkpoints', '000001', 'o', n)).ino);
  t.deepEqual(kept, [before], 'the replaced inode itself is kept, not a copy');
});

test('three checkpoints: each restores to its own instant, the logs chained newest first', async (t) => {
  const sb = new CheckpointStandby(t);
  seed(sb);
  const snaps: string[] = [];
  const rounds: Change[][] = [
    [put('a.txt', 'one'), { r: 'data', p: 'app.log', op: 'append', at: 6, data: 'two\n' }, { r: 'data', p: 'd/e', op: 'rm' }, cfg(['a'], 10)],
    [put('a.txt', 'two'), { r: 'data', p: 'd', op: 'rm' }, put('d2', 'fresh'), { r: 'data', p: 'app.log', op: 'truncate', size: 2 }, cfg(['a'], 20)],
    [{ r: 'data', p: 'd2', op: 'rename', toRoot: 'data', to: 'a.txt' }, { r: 'data', p: 'd', op: 'mkdir', mode: 0o700 }, put('d/x', 'back'), cfg(['c'], 30)],
  ];
  for (const [i, round] of rounds.entries()) {
    snaps.push(await sb.reach(`c${i + 1}`));
    for (const c of round) sb.apply(c);
    await sb.commit();
  }
  for (const [i, snap] of snaps.entries()) {
    const restored = await restoreInto(sb, `c${i + 1}`);
    t.deepEqual(diffTrees(path.join(snap, 'data'), path.join(restored, 'data')), [], `c${i + 1}`);
    t.deepEqual(diffTrees(path.join(snap, '.state'), path.join(restored, '.state')), [], `c${i + 1} replicas`);
  }
});

test('--keep-checkpoints drops the oldest with what only they kept; the others still restore', async (t) => {
  const sb = new CheckpointStandby(t, ['data'], 2);
  seed(sb);
  const snaps: string[] = [];
  for (let i = 1; i <= 4; i++) {
    snaps.push(await sb.reach(`c${i}`));
    sb.apply(put('a.txt', `round ${i}`));
    sb.apply(put(`new${i}`, 'n'));
    await sb.commit();
  }
  t.deepEqual(listCheckpoints(sb.stateDir).map((c) => c.name), ['c3', 'c4']);
  t.deepEqual(fs.readdirSync(path.join(sb.stateDir, 'checkpoints')).sort(), ['000003', '000004', 'marks.json']);
  t.throws(() => planRestore(sb.stateDir, sb.roots, 'c1', path.join(sb.base, 'r1')), { message: /no reached checkpoint named c1 .*reached: c3, c4/ });
  for (const i of [3, 4]) {
    const restored = await restoreInto(sb, `c${i}`);
    t.deepEqual(diffTrees(path.join(snaps[i - 1], 'data'), path.join(restored, 'data')), []);
  }
});

test('restore refuses a target that is not empty, and a dry run (a plan) changes nothing', async (t) => {
  const sb = new CheckpointStandby(t);
  seed(sb);
  await sb.reach('c1');
  const to = path.join(sb.base, 'busy');
  fs.mkdirSync(to);
  fs.writeFileSync(path.join(to, 'mine'), 'x');
  t.throws(() => planRestore(sb.stateDir, sb.roots, 'c1', to), { message: /is not empty/ });
  t.throws(() => planRestore(sb.stateDir, sb.roots, 'c1', path.join(sb.root(), 'in')), { message: /lies inside/ });
  const plan = planRestore(sb.stateDir, sb.roots, 'latest', path.join(sb.base, 'fresh'));
  t.is(plan.checkpoint.name, 'c1');
  t.false(fs.existsSync(path.join(sb.base, 'fresh')));
});

test('a replayer restarted after a kill between keeping and changing keeps nothing twice and restores the reach', async (t) => {
  const sb = new CheckpointStandby(t);
  seed(sb);
  const snap = await sb.reach('c1');
  sb.apply(put('a.txt', 'first'));
  sb.apply({ r: 'data', p: 'd', op: 'rm' });
  // What a kill leaves: a tree line whose move never happened, an object without a line.
  const cp = path.join(sb.stateDir, 'checkpoints', '000001');
  fs.appendFileSync(path.join(cp, 'kept.log'), `${JSON.stringify({ r: 'data', p: 'app.log', k: 'tree', o: 99, size: 0 })}\n{"r":"da`);
  fs.writeFileSync(path.join(cp, 'o', '98'), 'orphan');
  sb.close();
  sb.open();
  t.false(fs.existsSync(path.join(cp, 'o', '98')));
  // Applied again from the last commit: every change is idempotent, and so is keeping.
  sb.apply(put('a.txt', 'first'));
  sb.apply({ r: 'data', p: 'd', op: 'rm' });
  sb.apply({ r: 'data', p: 'app.log', op: 'append', at: 6, data: 'more\n' });
  await sb.commit();
  const restored = await restoreInto(sb, 'c1');
  t.deepEqual(diffTrees(path.join(snap, 'data'), path.join(restored, 'data')), []);
  t.true(sb.logged.some((l) => /removed 2 object/.test(l)));
});

test('a kept hard link never changes: a replacement that failed after its keep leaves the inode shared, and the next in-place change copies it first', async (t) => {
  const sb = new CheckpointStandby(t);
  sb.apply(put('f', 'at the checkpoint'));
  const snap = await sb.reach('c1');
  sb.fullDisk = true;
  t.throws(() => sb.apply(put('f', 'never written')), { message: /ENOSPC/ });
  sb.fullDisk = false;
  t.is(fs.statSync(path.join(sb.root(), 'f')).nlink, 2, 'the live name and the kept link share the inode');
  sb.apply({ r: 'data', p: 'f', op: 'pwrite', at: 0, data: 'CHANGED' });
  sb.apply({ r: 'data', p: 'f', op: 'append', at: 17, data: ' and more' });
  await sb.commit();
  t.is(fs.statSync(path.join(sb.root(), 'f')).nlink, 1, 'the kept one became a copy of its own');
  const restored = await restoreInto(sb, 'c1');
  t.deepEqual(diffTrees(path.join(snap, 'data'), path.join(restored, 'data')), []);
  // After a restart too: the store finds the shared inodes again from what it keeps.
  sb.apply(put('g', 'new'));
  await sb.reach('c2');
  sb.fullDisk = true;
  t.throws(() => sb.apply(put('g', 'never')), { message: /ENOSPC/ });
  sb.fullDisk = false;
  sb.close();
  sb.open();
  sb.apply({ r: 'data', p: 'g', op: 'truncate', size: 0 });
  await sb.commit();
  const again = await restoreInto(sb, 'c2');
  t.is(fs.readFileSync(path.join(again, 'data', 'g'), 'utf8'), 'new');
});
