import test, { type ExecutionContext } from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { lockState } from '../replayer/state-lock';
import { PositionStore } from '../replayer/state';
import { CheckpointStandby, type Change } from './helpers/checkpoint-standby';
import { startNatsServer } from './helpers/nats-server';
import { runCli } from './helpers/pair';
import { diffTrees, readTree } from './helpers/tree';

// The commands over the checkpoint store, as an operator runs them: checkpoints, restore,
// promote --at-checkpoint. The standby's state is made through the real appliers and store.

const put = (p: string, data: string, j = 'app'): Change => ({ r: 'data', p, op: 'put', mode: 0o644, data, j });

async function standbyWithTwoCheckpoints(t: ExecutionContext): Promise<{ sb: CheckpointStandby; snaps: string[] }> {
  const sb = new CheckpointStandby(t);
  sb.apply(put('a', 'one'));
  sb.apply({ r: '', p: 'settings', op: 'config', key: ['k'], data: '1' });
  const first = await sb.reach('nightly');
  sb.apply(put('a', 'two'));
  sb.apply(put('b', 'new'));
  const second = await sb.reach('hourly');
  sb.apply({ r: 'data', p: 'a', op: 'rm' });
  sb.apply({ r: '', p: 'settings', op: 'config', key: ['k'], data: '3' });
  await sb.commit();
  sb.store.pending({ name: 'soon', id: 'soon-id', time: 5000, cut: [{ j: 'app', e: 1, s: 9 }, { j: 'other', e: 1, s: 2 }] }, ['other']);
  sb.store.failed({ name: 'never', id: 'never-id', time: 6000, cut: [] }, 'journal other passed its cut without its entry');
  sb.close();
  return { sb, snaps: [first, second] };
}

const rootArg = (sb: CheckpointStandby): string[] => ['--root', `data=${sb.root()}`];

test('checkpoints --json lists name, time, positions, state and size; the text form says the same', async (t) => {
  const { sb } = await standbyWithTwoCheckpoints(t);
  const r = await runCli(['checkpoints', '--state', sb.stateDir, '--json']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { checkpoints: { name: string; state: string; positions: Record<string, string>; bytes?: number; time: string; waiting_for?: string[]; failed?: string }[] };
  t.deepEqual(out.checkpoints.map((c) => [c.name, c.state]), [['nightly', 'reached'], ['hourly', 'reached'], ['soon', 'pending'], ['never', 'failed']]);
  t.deepEqual(out.checkpoints[0].positions, { app: '1.2' });
  t.is(out.checkpoints[0].bytes, 3, 'the first content of a, replaced after it');
  t.is(out.checkpoints[1].bytes, 3 + fs.statSync(path.join(sb.base, 'snapshots', 'hourly', '.state', 'config', 'settings.json')).size, 'a, removed, and the replica, changed after it');
  t.deepEqual(out.checkpoints[2].waiting_for, ['other']);
  t.regex(out.checkpoints[3].failed ?? '', /passed its cut/);
  t.regex(out.checkpoints[0].time, /^\d{4}-\d\d-\d\dT/);
  const text = await runCli(['checkpoints', '--state', sb.stateDir]);
  t.regex(text.stdout, /nightly .* reached .* kept .*app@1\.2/);
  t.regex(text.stdout, /soon .* pending, waiting for other/);
});

test('restore: a dry run prints the plan and writes nothing; restore gives each checkpoint; a non-empty target and a running replayer are refused', async (t) => {
  const { sb, snaps } = await standbyWithTwoCheckpoints(t);
  const to = path.join(sb.base, 'out');
  const dry = await runCli(['restore', '--checkpoint', 'nightly', '--state', sb.stateDir, ...rootArg(sb), '--to', to, '--dry-run']);
  t.is(dry.code, 0, dry.stderr);
  t.regex(dry.stdout, /would restore checkpoint nightly[\s\S]*undo 4 change\(s\) kept by hourly <- nightly[\s\S]*dry run: nothing was written/);
  t.false(fs.existsSync(to));
  const liveBefore = readTree(sb.root());
  for (const [i, name] of ['nightly', 'hourly'].entries()) {
    const r = await runCli(['restore', '--checkpoint', name, '--state', sb.stateDir, ...rootArg(sb), '--to', path.join(to, name)]);
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /restore: \d+\/\d+ objects/, 'progress');
    t.deepEqual(diffTrees(path.join(snaps[i], 'data'), path.join(to, name, 'data')), []);
    t.deepEqual(diffTrees(path.join(snaps[i], '.state'), path.join(to, name, '.state')), []);
  }
  t.deepEqual(readTree(sb.root()), liveBefore, 'the live tree is untouched');
  const busy = await runCli(['restore', '--checkpoint', 'latest', '--state', sb.stateDir, ...rootArg(sb), '--to', path.join(to, 'nightly')]);
  t.is(busy.code, 2);
  t.regex(busy.stderr, /is not empty/);
  // A replayer holds the state: restore must not copy a tree in the middle of a change.
  const lock = lockState(sb.stateDir, 'replay');
  t.teardown(() => lock.release());
  const held = await runCli(['restore', '--checkpoint', 'latest', '--state', sb.stateDir, ...rootArg(sb), '--to', path.join(to, 'held')]);
  t.not(held.code, 0);
  t.regex(held.stderr, /in use by understudy replay/);
  t.false(fs.existsSync(path.join(to, 'held')));
  const unknown = await runCli(['restore', '--checkpoint', 'weekly', '--state', sb.stateDir, ...rootArg(sb), '--to', path.join(to, 'x'), '--dry-run']);
  t.regex(unknown.stderr, /no reached checkpoint named weekly .*reached: nightly, hourly/);
});

test('promote --at-checkpoint on journals at different instants (A far past its cut, B just past it): rolls back, sets aside every later change, fences at the cut', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const sb = new CheckpointStandby(t);
  for (let i = 0; i < 3; i++) sb.apply(put(`a${i}`, `a ${i}`, 'A'));
  sb.apply(put('b0', 'b 0', 'B'));
  sb.apply({ r: '', p: 'settings', op: 'config', key: ['mode'], data: '"before"', j: 'B' });
  const snap = await sb.reach('consistent');
  // A runs far ahead of its cut, B one entry past it.
  for (let i = 0; i < 20; i++) sb.apply(put(`a${i % 5}`, `later ${i}`, 'A'));
  sb.apply({ r: 'data', p: 'a1', op: 'rm', j: 'A' });
  sb.apply(put('b0', 'b 1', 'B'));
  sb.apply({ r: '', p: 'settings', op: 'config', key: ['mode'], data: '"after"', j: 'A' });
  await sb.commit();
  const positions = new PositionStore(sb.stateDir);
  for (const [j, s] of sb.seq) positions.record(j, { e: 1, s, t: 9999 }, 0);
  positions.sync();
  positions.close();
  sb.close();
  const later = new Map(['a0', 'a2', 'a3', 'a4', 'b0'].map((n) => [n, fs.readFileSync(path.join(sb.root(), n), 'utf8')]));

  const r = await runCli(['promote', '--at-checkpoint', 'latest', '--state', sb.stateDir, ...rootArg(sb), '--nats', nats.url, '--standby', 'sb1', '--json']);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { at_checkpoint: { name: string; set_aside: number; set_aside_dir: string }; journals: { journal: string; applied: string; fence: { e: number; s: number } }[] };
  t.is(out.at_checkpoint.name, 'consistent');
  t.is(out.at_checkpoint.set_aside, 7, 'a0..a4 (a1 removed since: noted), b0 and the configuration replica');
  t.deepEqual(diffTrees(path.join(snap, 'data'), sb.root()), [], 'the live roots are the checkpoint');
  t.deepEqual(diffTrees(path.join(snap, '.state', 'config'), path.join(sb.stateDir, 'config')), [], 'and so is the replica');
  t.deepEqual(out.journals.map((j) => [j.journal, j.applied, `${j.fence.e}.${j.fence.s}`]), [['A', '1.3', '1.3'], ['B', '1.2', '1.2']]);
  // What was set aside is all there: the later content of each object, and the manifest.
  const aside = out.at_checkpoint.set_aside_dir;
  t.true(aside.startsWith(path.join(sb.stateDir, 'set-aside')));
  for (const [name, text] of later) t.is(fs.readFileSync(path.join(aside, 'data', name), 'utf8'), text, name);
  t.regex(fs.readFileSync(path.join(aside, '.state', 'config', 'settings.json'), 'utf8'), /"after"/);
  const manifest = JSON.parse(fs.readFileSync(path.join(aside, 'manifest.json'), 'utf8')) as { items: { path: string; was: string }[] };
  t.deepEqual(manifest.items.find((i) => i.path === 'a1'), { root: 'data', path: 'a1', was: 'removed since the checkpoint' } as never);
  const list = JSON.parse((await runCli(['checkpoints', '--state', sb.stateDir, '--json'])).stdout) as { checkpoints: { name: string; bytes: number }[] };
  t.deepEqual(list.checkpoints.map((c) => [c.name, c.bytes]), [['consistent', 0]], 'the checkpoint is now the live tree: nothing to undo');
});


test('status (and its JSON, which the status page shows) says the last checkpoint a standby reached and the pending and failed ones', async (t) => {
  const nats = await startNatsServer();
  t.teardown(() => nats.stop());
  const { sb } = await standbyWithTwoCheckpoints(t);
  const drain = await runCli(['replay', '--drain', '--state', sb.stateDir, ...rootArg(sb), '--nats', nats.url, '--standby', 'sb1']);
  t.is(drain.code, 0, drain.stderr);
  const r = await runCli(['status', '--json', '--nats', nats.url]);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { standbys: { name: string; checkpoints?: { last_reached?: { name: string; bytes: number }; kept: number; pending: { name: string; waiting_for: string[] }[]; failed: { name: string; why: string }[] } }[] };
  const cp = out.standbys.find((s) => s.name === 'sb1')?.checkpoints;
  t.is(cp?.last_reached?.name, 'hourly');
  t.true((cp?.last_reached?.bytes ?? 0) > 0);
  t.is(cp?.kept, 2);
  t.deepEqual(cp?.pending, [{ name: 'soon', time: new Date(5000).toISOString(), waiting_for: ['other'] }]);
  t.deepEqual(cp?.failed.map((f) => f.name), ['never']);
  const text = await runCli(['status', '--nats', nats.url]);
  t.regex(text.stdout, /standby sb1 .*checkpoint hourly \(taken [^)]+\) reached [^,]+, 2 kept .*checkpoint soon pending \(waiting for other\).*checkpoint never FAILED here/);
});

test('restore refuses a root the checkpoint does not cover, by name or by directory, naming what it covers; with no root it restores every covered one', async (t) => {
  const { sb, snaps } = await standbyWithTwoCheckpoints(t);
  const to = (n: string): string => path.join(sb.base, 'out', n);
  const covered = new RegExp(`checkpoint nightly covers data=${sb.root().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`);
  // The replayer ran with data=<root>: another name would come out as the live tree, not the checkpoint.
  const other = path.join(sb.base, 'standby');
  fs.mkdirSync(other);
  const wrongName = await runCli(['restore', '--checkpoint', 'nightly', '--state', sb.stateDir, '--root', `other=${sb.root()}`, '--to', to('name')]);
  t.not(wrongName.code, 0);
  t.regex(wrongName.stderr, /root other is not one the checkpoint holds/);
  t.regex(wrongName.stderr, covered);
  t.false(fs.existsSync(to('name')), 'nothing written');
  const wrongDir = await runCli(['restore', '--checkpoint', 'nightly', '--state', sb.stateDir, '--root', `data=${other}`, '--to', to('dir')]);
  t.not(wrongDir.code, 0);
  t.regex(wrongDir.stderr, /root data=.*standby .*is not the directory the checkpoint holds for data/);
  t.regex(wrongDir.stderr, covered);
  t.false(fs.existsSync(to('dir')));
  // The same directory through a symlink is the one covered.
  const link = path.join(sb.base, 'link');
  fs.symlinkSync(sb.root(), link);
  const viaLink = await runCli(['restore', '--checkpoint', 'nightly', '--state', sb.stateDir, '--root', `data=${link}`, '--to', to('link')]);
  t.is(viaLink.code, 0, viaLink.stderr);
  t.deepEqual(diffTrees(path.join(snaps[0], 'data'), path.join(to('link'), 'data')), []);
  t.false(fs.lstatSync(path.join(to('link'), 'data')).isSymbolicLink(), 'the tree is copied, not the symlink to the live one');
  const all = await runCli(['restore', '--checkpoint', 'hourly', '--state', sb.stateDir, '--to', to('all')]);
  t.is(all.code, 0, all.stderr);
  t.deepEqual(diffTrees(path.join(snaps[1], 'data'), path.join(to('all'), 'data')), []);
  t.deepEqual(diffTrees(path.join(snaps[1], '.state'), path.join(to('all'), '.state')), []);
  // promote --at-checkpoint refuses the same, before it moves anything.
  const before = readTree(sb.root());
  const promote = await runCli(['promote', '--at-checkpoint', 'nightly', '--state', sb.stateDir, '--root', `data=${other}`, '--nats', 'nats://127.0.0.1:1', '--standby', 'sb1']);
  t.not(promote.code, 0);
  t.regex(promote.stderr, covered);
  t.deepEqual(readTree(sb.root()), before, 'the live tree is untouched');
  t.false(fs.existsSync(path.join(sb.stateDir, 'set-aside')) && fs.readdirSync(path.join(sb.stateDir, 'set-aside')).length > 0, 'nothing set aside');
});

test('restore refuses a checkpoint recorded by an older store, which did not note its roots, saying why', async (t) => {
  const { sb } = await standbyWithTwoCheckpoints(t);
  const dir = path.join(sb.stateDir, 'checkpoints');
  for (const seq of fs.readdirSync(dir).filter((n) => /^\d+$/.test(n))) {
    const file = path.join(dir, seq, 'meta.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    delete meta.roots;
    fs.writeFileSync(file, JSON.stringify(meta));
  }
  const to = path.join(sb.base, 'out');
  const r = await runCli(['restore', '--checkpoint', 'nightly', '--state', sb.stateDir, ...rootArg(sb), '--to', to]);
  t.not(r.code, 0);
  t.regex(r.stderr, /checkpoint nightly .*recorded by an older understudy that did not note which roots it covers/);
  t.false(fs.existsSync(to));
});
