import * as fs from 'node:fs';
import * as path from 'node:path';
import { OBJECT_ROOT } from '../../lib/entry';
import { SettingsError } from '../../lib/errors';
import type { Root } from '../../lib/roots';
import type { Counts } from '../../lib/progress';
import { isTempName } from '../apply/temp-files';
import { CONFIG_DIR, QUEUE_DIR } from '../replicas';
import { coveredRoots, findReached, type Reached } from './meta';
import { copyTree, measure } from './tree-copy';
import { countLines, logsBack, undoInto } from './undo';

/** Where restore puts the configuration and queue replicas under --to: the layout of --state (config/, queues/). */
export const RESTORED_STATE = '.state';

/** One directory restore copies. */
export interface RestoreCopy { name: string; from: string; to: string; objects: number; bytes: number }

/** What a restore will do; `--dry-run` prints it. */
export interface RestorePlan {
  checkpoint: Reached;
  /** The reached checkpoints newer than it, oldest first. */
  newer: Reached[];
  /** The checkpoints whose undo logs are applied, newest first (the last is the checkpoint's own). */
  undone: string[];
  copies: RestoreCopy[];
  undoLines: number;
  to: string;
  /** The roots restored: those given, checked against what the checkpoint covers, or all it covers when none was given. */
  roots: Root[];
}

/**
 * Plans a restore of `given` roots (every root the checkpoint covers when none is given) and the
 * replicas under `stateDir` as they were at `checkpoint` (a name or "latest") into `to`: refuses
 * a root the checkpoint does not cover, by name or directory, a `to` that is not empty, or that
 * lies in a root or under --state. Reads only.
 */
export function planRestore(stateDir: string, given: Root[], checkpoint: string, to: string): RestorePlan {
  const { target, newer } = findReached(stateDir, checkpoint);
  const roots = coveredRoots(target, newer, given);
  const dest = path.resolve(to);
  for (const inside of [stateDir, ...roots.map((r) => r.dir)]) {
    const rel = path.relative(path.resolve(inside), dest);
    if (rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel))) throw new SettingsError(`--to ${to} lies inside ${inside}; restore into a directory of its own`);
  }
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (entries.length > 0) throw new SettingsError(`--to ${to} is not empty (${entries.length} entries); restore refuses to mix a checkpoint with what is there`);
  const copies: RestoreCopy[] = roots.map((r) => ({ name: r.name, from: r.dir, to: path.join(dest, r.name), ...measure(r.dir, isTempName) }));
  for (const d of [CONFIG_DIR, QUEUE_DIR]) {
    copies.push({ name: `${RESTORED_STATE}/${d}`, from: path.join(stateDir, d), to: path.join(dest, RESTORED_STATE, d), ...measure(path.join(stateDir, d), isTempName) });
  }
  const logs = logsBack(target, newer);
  const undoLines = countLines(logs, targetsOf(roots, dest));
  logs.forEach((l) => l.close());
  return { checkpoint: target, newer, undone: [...newer].reverse().concat(target).map((r) => r.name), copies, undoLines, to: dest, roots };
}

/** Where each root's (and the replicas') undo lines apply under `dest`. */
function targetsOf(roots: Root[], dest: string): Map<string, string> {
  return new Map([...roots.map((r): [string, string] => [r.name, path.join(dest, r.name)]), [OBJECT_ROOT, path.join(dest, RESTORED_STATE)]]);
}

/** Carries out `plan`: copies the live trees (hard links within them kept), then undoes the later changes in the copy, newest first. */
export function runRestore(plan: RestorePlan, progress?: (done: Counts) => void): Counts & { undone: number } {
  const done = { objects: 0, bytes: 0 };
  const tell = (bytes: number): void => {
    done.objects++;
    done.bytes += bytes;
    progress?.(done);
  };
  fs.mkdirSync(plan.to, { recursive: true });
  fs.mkdirSync(path.join(plan.to, RESTORED_STATE), { recursive: true, mode: 0o700 });
  const links = new Map<string, string>();
  for (const c of plan.copies) {
    if (!fs.existsSync(c.from)) {
      fs.mkdirSync(c.to, { recursive: true });
      continue;
    }
    copyTree(c.from, c.to, { skip: isTempName, progress: tell, links });
  }
  const logs = logsBack(plan.checkpoint, plan.newer);
  try {
    const undone = undoInto(logs, targetsOf(plan.roots, plan.to), undefined, () => tell(0));
    return { ...done, undone };
  } finally {
    logs.forEach((l) => l.close());
  }
}

