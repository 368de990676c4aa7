import * as fs from 'node:fs';
import * as path from 'node:path';
import { OBJECT_ROOT, type CheckpointCut } from '../../lib/entry';
import { replaceJson, syncDir } from '../../lib/durable-file';
import { PositionStore } from '../state';
import { coveredRoots, findReached, type Reached } from './meta';
import { copyTree } from './tree-copy';
import { logsBack, undoInto } from './undo';
import { KEPT_LOG, OBJECTS_DIR, type KeptLine } from './undo-log';
import { RESTORED_STATE } from './restore';

/** Where the changes a rollback undid are kept, under --state. */
export const SET_ASIDE_DIR = 'set-aside';

/** One object a rollback set aside. */
export interface SetAsideItem { root: string; path: string; was: 'moved here' | 'removed since the checkpoint' | `mode ${string}` }

export interface RollbackResult {
  checkpoint: Reached;
  /** The directory under --state/set-aside that holds what was undone. */
  dir: string;
  /** Objects set aside (moved there, or a mode noted in its manifest). */
  changes: number;
  /** Each journal's position at the cut: where the positions now stand. */
  cut: CheckpointCut[];
  /** Journals with applied positions that the checkpoint does not name: their later changes were undone too, their positions left. */
  outside: string[];
}

/**
 * Rolls the live roots and replicas back to reached checkpoint `name` in place (the caller
 * holds the lock of --state and no replayer runs): every object changed since is first moved
 * under --state/set-aside/<time>/ (a root's objects under its name, the replicas under
 * .state), with a manifest, then put back as it was; the undo logs of the checkpoints after
 * it, and its own, move there too (they describe a future that is now set aside); the
 * positions move to the cut. Run again after a crash midway, it finishes: the logs are
 * moved only at the end, and putting an object back is idempotent.
 */
export function rollBack(stateDir: string, roots: ReadonlyMap<string, string>, name: string, now = new Date()): RollbackResult {
  const { target, newer } = findReached(stateDir, name);
  // Rolled back in place: every root it covers, each at the directory it covered, or none.
  coveredRoots(target, newer, [...roots].map(([n, d]) => ({ name: n, dir: d, realDir: d })), true);
  const dir = path.join(stateDir, SET_ASIDE_DIR, now.toISOString().replace(/[:.]/g, '-'));
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const targets = new Map([...roots, [OBJECT_ROOT, stateDir]]);
  const items: SetAsideItem[] = [];
  const moved = new Set<string>();
  const logs = logsBack(target, newer);
  try {
    undoInto(logs, targets, (root, rel, abs, line) => setAside(root, rel, abs, line));
  } finally {
    logs.forEach((l) => l.close());
  }
  // Entries applied since the replicas' last commit: they follow the cut.
  const objectsLog = path.join(stateDir, 'objects.log');
  if ((fs.statSync(objectsLog, { throwIfNoEntry: false })?.size ?? 0) > 0) fs.renameSync(objectsLog, path.join(dir, 'objects.log'));
  const later = path.join(dir, 'checkpoints-after');
  fs.mkdirSync(later);
  for (const r of newer) fs.renameSync(r.dir, path.join(later, path.basename(r.dir)));
  for (const f of [KEPT_LOG, OBJECTS_DIR]) {
    const p = path.join(target.dir, f);
    if (fs.existsSync(p)) fs.renameSync(p, path.join(later, `${path.basename(target.dir)}-${f}`));
  }
  syncDir(target.dir);
  replaceJson(path.join(dir, 'manifest.json'), { checkpoint: target.name, id: target.id, at: now.toISOString(), items });
  const outside = movePositions(stateDir, target);
  return { checkpoint: target, dir, changes: items.length, cut: target.cut, outside };

  function setAside(root: string, rel: string, abs: string, line: KeptLine): void {
    const key = `${root}\0${rel}`;
    const segs = rel.split('/');
    for (let i = 1; i <= segs.length; i++) if (moved.has(`${root}\0${segs.slice(0, i).join('/')}`)) return;
    const st = fs.lstatSync(abs, { throwIfNoEntry: false });
    if (line.k === 'dir') {
      if (st?.isDirectory() === true && (st.mode & 0o7777) !== line.mode) items.push({ root, path: rel, was: `mode ${(st.mode & 0o7777).toString(8)}` });
      return;
    }
    moved.add(key);
    if (st === undefined) {
      items.push({ root, path: rel, was: 'removed since the checkpoint' });
      return;
    }
    const to = path.join(dir, root === OBJECT_ROOT ? RESTORED_STATE : root, rel);
    fs.mkdirSync(path.dirname(to), { recursive: true });
    try {
      fs.renameSync(abs, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      copyTree(abs, to);
      fs.rmSync(abs, { recursive: true, force: true });
    }
    items.push({ root, path: rel, was: 'moved here' });
  }
}

/** Moves each journal of the cut to its position there; returns the applied journals the cut does not name. */
function movePositions(stateDir: string, target: Reached): string[] {
  const store = new PositionStore(stateDir);
  try {
    const inCut = new Set(target.cut.map((c) => c.j));
    for (const c of target.cut) {
      const was = store.positions.journals[c.j];
      store.record(c.j, { e: c.e, s: c.s, t: Math.min(was?.t ?? target.time, target.time) }, store.streamSeq);
    }
    store.sync();
    return Object.keys(store.positions.journals).filter((j) => !inCut.has(j)).sort();
  } finally {
    store.close();
  }
}
