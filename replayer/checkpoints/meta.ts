import * as path from 'node:path';
import type { CheckpointCut } from '../../lib/entry';
import { namesIn, readJsonIfExists } from '../../lib/durable-file';
import type { StandbyCheckpoint } from '../../lib/state/checkpoint';
import { SettingsError } from '../../lib/errors';
import type { Root } from '../../lib/roots';
import * as fs from 'node:fs';
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
  /**
   * The roots it covers: name to the real directory of the standby, as the replayer had them
   * when it was reached. Its undo logs hold only these; a restore or rollback given another
   * name or directory would undo nothing there and pass the live tree off as the checkpoint.
   * Absent in checkpoints recorded by an older store.
   */
  roots?: Record<string, string>;
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

/** `dir` with symlinks resolved, or as given when it does not exist (it then matches no covered root). */
function realOrSelf(dir: string): string {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return path.resolve(dir);
  }
}

function describeRoots(roots: Record<string, string>): string {
  const names = Object.keys(roots).sort();
  return names.length === 0 ? 'no root' : names.map((n) => `${n}=${roots[n]}`).join(', ');
}

/**
 * The roots to restore (or roll back) `target` into, checked against what it covers: every
 * checkpoint of the chain (`target` and the newer ones, whose undo logs are applied too) must
 * record its roots, and each given root must be one of them by name and by real directory.
 * No root given: every covered root. `all`: every covered root must be given (a rollback in
 * place of some roots only would leave the others past the checkpoint). The roots returned
 * name their real directories.
 */
export function coveredRoots(target: Reached, newer: Reached[], given: readonly Root[], all = false): Root[] {
  for (const r of [target, ...newer]) {
    if (r.roots === undefined) {
      throw new SettingsError(`checkpoint ${r.name} (${path.basename(r.dir)}) was recorded by an older understudy that did not note which roots it covers; ` +
        `refusing to restore from it, since a root it does not cover would come out as the live tree, not the checkpoint`);
    }
  }
  const covered = target.roots as Record<string, string>;
  const what = `checkpoint ${target.name} covers ${describeRoots(covered)}`;
  const roots = given.length === 0 ? Object.entries(covered).map(([name, dir]): Root => ({ name, dir, realDir: dir })) : [...given];
  for (const chk of [target, ...newer]) {
    const has = chk.roots as Record<string, string>;
    for (const r of roots) {
      const dir = has[r.name];
      if (dir === undefined) throw new SettingsError(`root ${r.name} is not one the checkpoint holds: ${what}${chk === target ? '' : ` (and checkpoint ${chk.name}, reached after it, covers ${describeRoots(has)})`}`);
      const real = realOrSelf(r.dir);
      if (real !== dir) throw new SettingsError(`root ${r.name}=${r.dir}${real === r.dir ? '' : ` (really ${real})`} is not the directory the checkpoint holds for ${r.name}: ${what}`);
    }
  }
  // By their real directories from here: a root given through a symlink would be copied as the
  // symlink, and the undo then written through it into the live tree.
  const real = roots.map((r): Root => ({ name: r.name, dir: covered[r.name], realDir: covered[r.name] }));
  if (all) {
    const missing = Object.keys(covered).filter((n) => !roots.some((r) => r.name === n)).sort();
    if (missing.length > 0) throw new SettingsError(`root(s) ${missing.join(', ')} not given: ${what}; give every one (--root name=/dir), so none is left past the checkpoint`);
  }
  return real;
}
