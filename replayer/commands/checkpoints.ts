import { common, parse } from '../../lib/cli-options';
import type { StandbyCheckpoint } from '../../lib/state/checkpoint';
import { listCheckpoints } from '../checkpoints/meta';
import { requireState } from './standby-flags';

export const usage = `understudy checkpoints --state DIR [--json]

Lists the checkpoints this standby knows: reached ones (a point-in-time copy of the roots and
replicas is kept for each, oldest first, at most --keep-checkpoints of them), then pending ones
(some journals not yet applied through their cut) and failed ones (can never be reached here,
and why). For each: name, when it was taken on the primary, each journal's position at the
cut, its state, and the bytes kept for it. Reads --state only; safe beside a running replayer.`;

/** One checkpoint as the list says it. */
interface Row { name: string; id: string; time: string; positions: Record<string, string>; state: 'reached' | 'pending' | 'failed'; reached_at?: string; bytes?: number; waiting_for?: string[]; failed?: string }

function row(c: StandbyCheckpoint): Row {
  const state = c.reachedAt !== undefined ? 'reached' : c.failed !== undefined ? 'failed' : 'pending';
  return {
    name: c.name, id: c.id, time: new Date(c.time).toISOString(), positions: Object.fromEntries(c.cut.map((p) => [p.j, `${p.e}.${p.s}`])), state,
    ...(c.reachedAt === undefined ? {} : { reached_at: new Date(c.reachedAt).toISOString(), bytes: c.bytes ?? 0 }),
    ...(c.waitingFor === undefined ? {} : { waiting_for: c.waitingFor }),
    ...(c.failed === undefined ? {} : { failed: c.failed }),
  };
}

/** `understudy checkpoints`. */
export async function checkpoints(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { json: { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  requireState(values.state, env, 'checkpoints');
  const { stateDir } = common(values, env, false);
  const rows = listCheckpoints(stateDir).map(row);
  if (values.json === true) {
    console.log(JSON.stringify({ state: stateDir, checkpoints: rows }, null, 2));
    return 0;
  }
  if (rows.length === 0) console.log(`no checkpoint reached or pending under ${stateDir}`);
  for (const r of rows) {
    const where = Object.entries(r.positions).map(([j, p]) => `${j}@${p}`).join(' ');
    const what = r.state === 'reached' ? `reached ${r.reached_at}, ${size(r.bytes ?? 0)} kept` : r.state === 'pending' ? `pending, waiting for ${(r.waiting_for ?? []).join(', ') || 'its journals'}` : `failed: ${r.failed}`;
    console.log(`${r.name}  taken ${r.time}  ${what}  ${where}`);
  }
  return 0;
}

function size(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}
