import type { StandbyCheckpoints } from '../../lib/state/checkpoint';

/** A standby's checkpoints as status and the status page show them. */
export interface CheckpointsView {
  /** The newest reached: a point-in-time copy of the roots is kept for it. */
  last_reached?: { name: string; time: string; reached_at: string; bytes: number };
  /** How many reached checkpoints this standby keeps, and their bytes in all. */
  kept: number;
  kept_bytes: number;
  pending: { name: string; time: string; waiting_for: string[] }[];
  failed: { name: string; time: string; why: string }[];
}

/** What `checkpoints.<standby>` says, for one standby row. */
export function checkpointsView(rec: StandbyCheckpoints): CheckpointsView {
  const reached = rec.checkpoints.filter((c) => c.reachedAt !== undefined).sort((a, b) => (a.reachedAt ?? 0) - (b.reachedAt ?? 0));
  const last = reached.at(-1);
  const iso = (ms: number): string => new Date(ms).toISOString();
  return {
    ...(last === undefined ? {} : { last_reached: { name: last.name, time: iso(last.time), reached_at: iso(last.reachedAt ?? 0), bytes: last.bytes ?? 0 } }),
    kept: reached.length,
    kept_bytes: reached.reduce((n, c) => n + (c.bytes ?? 0), 0),
    pending: rec.checkpoints.filter((c) => c.reachedAt === undefined && c.failed === undefined).map((c) => ({ name: c.name, time: iso(c.time), waiting_for: c.waitingFor ?? [] })),
    failed: rec.checkpoints.filter((c) => c.failed !== undefined).map((c) => ({ name: c.name, time: iso(c.time), why: c.failed ?? '' })),
  };
}
