import * as path from 'node:path';
import type { CheckpointCut } from '../../lib/entry';
import { namesIn, readJsonIfExists } from '../../lib/durable-file';
import type { StandbyCheckpoint } from '../../lib/state/checkpoint';
import { SettingsError } from '../../lib/errors';
import { UndoLog } from './undo-log';

/**
 * The checkpoint store's layout under --state: `checkpoints/<seq>/` per reached checkpoint
 * (`meta.json`, its undo log), `checkpoints/marks.json` for the pending and failed ones.
 * Read here, by the store and by the commands that list, restore and promote.
 */

export const CHECKPOINTS_DIR = 'checkpoints';
export const META = 'meta.json';
export const MARKS = 'marks.json';

/** A reached checkpoint as its directory records it. */
export interface ReachedMeta {
  /** Its order among the reached ones on this standby: the name of its directory. */
  seq: number;
  name: string;
  id: string;
  /** When it was taken on the primary, ms. */
  time: number;
  cut: CheckpointCut[];
  /** When this standby reached it, ms. */
  reachedAt: number;
}

/** The pending and failed checkpoints (reached ones leave this list). */
export interface Marks { marks: StandbyCheckpoint[] }

/** A reached checkpoint with where it is. */
export interface Reached extends ReachedMeta {
  dir: string;
}

/** The directory of reached checkpoint `seq`. */
export function seqDir(stateDir: string, seq: number): string {
  return path.join(stateDir, CHECKPOINTS_DIR, String(seq).padStart(6, '0'));
}

/** The reached checkpoints under `stateDir`, oldest first (a half-made or half-dropped directory is not one). */
export function readReached(stateDir: string): Reached[] {
  const root = path.join(stateDir, CHECKPOINTS_DIR);
  const out: Reached[] = [];
  for (const name of namesIn(root).filter((n) => /^\d{6,}$/.test(n)).sort()) {
    const dir = path.join(root, name);
    const meta = readJsonIfExists<ReachedMeta>(path.join(dir, META));
    if (meta !== undefined) out.push({ ...meta, dir });
  }
  return out;
}

/** The pending and failed checkpoints under `stateDir`. */
export function readMarks(stateDir: string): StandbyCheckpoint[] {
  return readJsonIfExists<Marks>(path.join(stateDir, CHECKPOINTS_DIR, MARKS))?.marks ?? [];
}

/** Every checkpoint this standby knows, as the state bucket and `understudy checkpoints` show them: reached (oldest first, with bytes kept), then the others. */
export function listCheckpoints(stateDir: string): StandbyCheckpoint[] {
  const reached = readReached(stateDir).map((r): StandbyCheckpoint => ({
    name: r.name, id: r.id, time: r.time, cut: r.cut, reachedAt: r.reachedAt, bytes: new UndoLog(r.dir).bytes,
  }));
  const ids = new Set(reached.map((r) => r.id));
  return [...reached, ...readMarks(stateDir).filter((m) => !ids.has(m.id))];
}

/** The reached checkpoint `name` (its newest take), or the newest of all for "latest"; an error naming what there is when none. */
export function findReached(stateDir: string, name: string): { target: Reached; newer: Reached[] } {
  const all = readReached(stateDir);
  const i = name === 'latest' ? all.length - 1 : all.map((r) => r.name).lastIndexOf(name);
  if (i < 0) {
    const known = all.map((r) => r.name).join(', ');
    throw new SettingsError(`no reached checkpoint ${name === 'latest' ? 'at all' : `named ${name}`} under ${stateDir}${known === '' ? '' : ` (reached: ${known})`}`);
  }
  return { target: all[i], newer: all.slice(i + 1) };
}
