import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkRelPath } from '../../lib/confine';
import { copyOne, copyTree } from './tree-copy';
import { UndoLog, type KeptLine } from './undo-log';
import type { Reached } from './meta';

/**
 * Undoing what changed after a checkpoint, in a tree: the undo logs of the checkpoints newer
 * than it and its own, newest first, each read newest line first, put every object back as it
 * was. Restore does it in a copy of the live tree; promote --at-checkpoint in the live tree,
 * setting aside what it replaces.
 */

/** Where each root (and OBJECT_ROOT: the replicas) is undone. */
export type UndoTargets = ReadonlyMap<string, string>;

/** Told before an object at `abs` is replaced or removed by the undo (promote sets it aside there). */
export type BeforeUndo = (root: string, rel: string, abs: string, line: KeptLine) => void;

/** The undo logs that take the tree back to `target`, in the order they are applied: newest checkpoint first. */
export function logsBack(target: Reached, newer: Reached[]): UndoLog[] {
  return [...newer].reverse().concat(target).map((r) => new UndoLog(r.dir));
}

/** How many lines undoing through `logs` applies to `targets`. */
export function countLines(logs: UndoLog[], targets: UndoTargets): number {
  return logs.reduce((n, l) => n + l.lines.filter((x) => targets.has(x.r)).length, 0);
}

/** Applies `logs` (newest first) to `targets`; returns how many lines it applied. */
export function undoInto(logs: UndoLog[], targets: UndoTargets, before?: BeforeUndo, progress?: () => void): number {
  let n = 0;
  for (const log of logs) {
    for (let i = log.lines.length - 1; i >= 0; i--) {
      const line = log.lines[i];
      const base = targets.get(line.r);
      if (base === undefined) continue;
      checkRelPath(line.p);
      const abs = path.join(base, line.p);
      before?.(line.r, line.p, abs, line);
      putBack(log, line, abs);
      n++;
      progress?.();
    }
  }
  return n;
}

/** Puts the object of `line` back at `abs`. */
function putBack(log: UndoLog, line: KeptLine, abs: string): void {
  if (line.k === 'dir') {
    // Only its mode was kept; a later line that removed it was applied first and made it again.
    if (fs.lstatSync(abs, { throwIfNoEntry: false })?.isDirectory() === true) fs.chmodSync(abs, line.mode);
    return;
  }
  fs.rmSync(abs, { recursive: true, force: true });
  if (line.k === 'absent') return;
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  switch (line.k) {
    case 'file':
      copyOne(log.object(line.o), abs, false);
      fs.chmodSync(abs, line.mode);
      return;
    case 'symlink':
      fs.symlinkSync(line.target, abs);
      return;
    case 'tree':
      copyTree(log.object(line.o), abs);
  }
}
