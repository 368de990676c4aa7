import { common, parse } from '../../lib/cli-options';
import { SettingsError } from '../../lib/errors';
import { Progress } from '../../lib/progress';
import { planRestore, RESTORED_STATE, runRestore, type RestorePlan } from '../checkpoints/restore';
import { lockState } from '../state-lock';
import { requireState } from './standby-flags';

export const usage = `understudy restore --checkpoint NAME|latest --state DIR [--root name=/dir …] --to DIR [--dry-run]

Materializes each root as it was at a reached checkpoint into DIR/<root name>/, and the
configuration and queue replicas into DIR/${RESTORED_STATE}/ (config/, queues/: the layout
of --state, to copy into a new standby's --state or read with \`understudy config\` and
\`understudy queue --state DIR/${RESTORED_STATE}\`). --root names the standby's live roots, as
given to replay; without it, every root the checkpoint covers is restored. A root the
checkpoint does not cover (another name, or another directory) is refused, naming those it
covers. DIR must be empty or absent. --dry-run prints the plan and changes nothing.
It copies the live tree, then undoes what changed since the checkpoint from the undo logs
kept under --state, newest first. It takes the lock of --state: it refuses while a replayer
(or promote) runs there, so no tree is copied in the middle of a change; stop the replayer,
restore, start it again.`;

/** `understudy restore`. */
export async function restore(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { checkpoint: { type: 'string' }, to: { type: 'string' }, 'dry-run': { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  requireState(values.state, env, 'restore');
  if (values.checkpoint === undefined) throw new SettingsError('restore needs --checkpoint NAME (or latest)');
  if (values.to === undefined) throw new SettingsError('restore needs --to DIR: an empty directory the roots are restored into');
  // No root given restores every root the checkpoint covers (planRestore).
  const o = common(values, env, false);
  if (values['dry-run'] === true) {
    printPlan(planRestore(o.stateDir, o.roots, values.checkpoint, values.to), true);
    return 0;
  }
  const lock = lockState(o.stateDir, 'restore');
  try {
    const plan = planRestore(o.stateDir, o.roots, values.checkpoint, values.to);
    printPlan(plan, false);
    const total = plan.copies.reduce((t, c) => ({ objects: t.objects + c.objects, bytes: t.bytes + c.bytes }), { objects: plan.undoLines, bytes: 0 });
    const progress = new Progress('restore', total);
    const done = runRestore(plan, (d) => progress.update(d));
    progress.finish(done);
    console.log(`restored checkpoint ${plan.checkpoint.name} into ${plan.to}: ${done.objects - done.undone} objects copied, ${done.undone} changes since undone`);
    return 0;
  } finally {
    lock.release();
  }
}

function printPlan(plan: RestorePlan, dry: boolean): void {
  const c = plan.checkpoint;
  console.log(`${dry ? 'would restore' : 'restoring'} checkpoint ${c.name} (taken ${new Date(c.time).toISOString()}, reached here ${new Date(c.reachedAt).toISOString()}; cut ${c.cut.map((p) => `${p.j}@${p.e}.${p.s}`).join(' ')})`);
  for (const copy of plan.copies) console.log(`  copy ${copy.from} -> ${copy.to} (${copy.objects} objects, ${copy.bytes} bytes)`);
  console.log(`  then undo ${plan.undoLines} change(s) kept by ${plan.undone.join(' <- ')}`);
  if (dry) console.log('dry run: nothing was written');
}
