import { inspect } from 'node:util';
import { SettingsError } from '../../lib/errors';
import { listReplicas, loadPendingJobs, loadQueue, QUEUE_DIR } from '../replicas';
import { common, parse } from '../../lib/cli-options';

export const usage = `understudy queue pending [NAME] [--state DIR] [--json]

Lists the jobs the standby knows were enqueued on the primary and not finished
there (completed or failed), per queue, as the replayer last committed them: what
the application should run again after promotion (the API: pendingJobs(name)).
Reads --state (or UNDERSTUDY_STATE_DIR) only: no NATS connection is made.`;

/** `understudy queue pending`. */
export async function queue(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const [sub, name, ...extra] = positionals;
  if (sub !== 'pending') throw new SettingsError(`queue: unknown subcommand ${sub === undefined ? '(none)' : `"${sub}"`}; try "understudy queue pending [NAME]"`);
  if (extra.length > 0) throw new SettingsError(`queue pending: unexpected arguments ${extra.join(' ')}`);
  const { stateDir } = common(values, env, false);
  const names = name === undefined ? listReplicas(stateDir, QUEUE_DIR) : [name];
  if (values.json === true) {
    const out = names.map((n) => {
      const q = loadQueue(stateDir, n);
      return { queue: n, completed: q.completed, failed: q.failed, pending: loadPendingJobs(stateDir, n).map((j) => ({ ...j, enqueuedAt: j.enqueuedAt.toISOString() })) };
    });
    // Payloads are whatever v8 can clone; JSON shows what it can of them.
    console.log(JSON.stringify(out, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2));
    return 0;
  }
  if (names.length === 0) console.log(`no queue replicated yet under ${stateDir}`);
  for (const n of names) {
    const q = loadQueue(stateDir, n);
    const jobs = loadPendingJobs(stateDir, n);
    console.log(`${n}: ${jobs.length} pending (${q.completed} completed, ${q.failed} failed)`);
    for (const j of jobs) {
      const what = j.captured ? inspect(j.payload, { depth: 4, breakLength: Infinity }) : '(payload not captured)';
      console.log(`  ${j.journal}:${j.id}  ${j.enqueuedAt.toISOString()}${j.started ? '  started' : ''}${j.label === undefined ? '' : `  ${j.label}`}  ${what}`);
    }
  }
  return 0;
}
