import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { planRestore, runRestore } from '../replayer/checkpoints/restore';
import { CheckpointStandby } from './helpers/checkpoint-standby';
import { EVERY_CHANGE, seed } from './helpers/checkpoint-changes';
import { REPO } from './helpers/pair';
import { diffTrees } from './helpers/tree';

// A replayer SIGKILLed while keeping: after a keep was made durable and before the change it
// precedes, or after the change and before the commit. Restarted, it applies again from the
// last commit (the reach), as the replayer does; the checkpoint still restores exactly.

const CHILD = `
const [base, mode, n, seeded] = process.argv.slice(2);
const { CheckpointStandby } = require(${JSON.stringify(path.join(REPO, 'dist/test/helpers/checkpoint-standby.js'))});
const { EVERY_CHANGE } = require(${JSON.stringify(path.join(REPO, 'dist/test/helpers/checkpoint-changes.js'))});
const sb = new CheckpointStandby(undefined, ['data'], 3, base);
sb.seq.set('app', Number(seeded));
let keeps = 0;
if (mode === 'keep') sb.afterKeep = () => { if (++keeps === Number(n)) process.kill(process.pid, 'SIGKILL'); };
EVERY_CHANGE.forEach((c, i) => {
  sb.apply(c);
  if (mode === 'change' && i + 1 === Number(n)) process.kill(process.pid, 'SIGKILL');
});
`;

function runChild(file: string, args: string[]): Promise<NodeJS.Signals | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file, ...args], { stdio: ['ignore', 'ignore', 'inherit'] });
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve(signal));
  });
}

test('SIGKILL after a keep and before its change, or after a change and before the commit: restarted, the checkpoint restores exactly', async (t) => {
  const sb = new CheckpointStandby(t);
  seed(sb);
  const snap = await sb.reach('c1');
  const seeded = sb.seq.get('app') ?? 0;
  sb.close();
  const script = path.join(sb.base, 'child.js');
  fs.writeFileSync(script, CHILD);
  const points: [string, number][] = [...[1, 3, 5, 6, 8, 11, 14, 17, 20].map((n): [string, number] => ['keep', n]), ...[2, 6, 9, 13, 18].map((n): [string, number] => ['change', n])];
  for (const [mode, n] of points) {
    const base = path.join(sb.base, `run-${mode}-${n}`);
    fs.mkdirSync(base);
    for (const d of ['state', 'live']) execFileSync('cp', ['-a', path.join(sb.base, d), path.join(base, d)]);
    // The checkpoint notes the directory it covers; this copy's is elsewhere (restore refuses any other).
    const meta = path.join(base, 'state', 'checkpoints', '000001', 'meta.json');
    fs.writeFileSync(meta, JSON.stringify({ ...JSON.parse(fs.readFileSync(meta, 'utf8')) as object, roots: { data: path.join(base, 'live', 'data') } }));
    t.is(await runChild(script, [base, mode, String(n), String(seeded)]), 'SIGKILL', `${mode} ${n}: killed there`);
    const again = new CheckpointStandby(undefined, ['data'], 3, base);
    again.seq.set('app', seeded);
    for (const c of EVERY_CHANGE) again.apply(c);
    await again.commit();
    again.close();
    const to = path.join(base, 'restored');
    runRestore(planRestore(again.stateDir, again.roots, 'c1', to));
    t.deepEqual(diffTrees(path.join(snap, 'data'), path.join(to, 'data')), [], `${mode} ${n}`);
    t.deepEqual(diffTrees(path.join(snap, '.state'), path.join(to, '.state')), [], `${mode} ${n} replicas`);
  }
});
