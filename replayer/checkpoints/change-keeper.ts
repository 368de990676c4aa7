import * as fs from 'node:fs';
import * as path from 'node:path';
import { OBJECT_ROOT } from '../../lib/entry';
import { checkRelPath } from '../../lib/confine';
import type { ChangeKind } from '../apply/applier';
import { isTempName } from '../apply/temp-files';
import { copyOne, copyTree } from './tree-copy';
import type { KeptLine, UndoLog } from './undo-log';

/**
 * The first change to each object after the newest reached checkpoint keeps what the object
 * was, in that checkpoint's undo log, before the applier changes it:
 * - a name that is replaced or removed keeps its inode by a hard link (no bytes copied), a
 *   directory its whole tree by a rename into the log (no walk but one for shared inodes);
 * - an inode changed in place (append, pwrite, truncate, chmod) is copied first;
 * - a rename's source keeps a copy (its inode lives on under the new name);
 * - an object that did not exist is noted absent (the highest missing directory above it,
 *   which the change is about to make, stands for everything under it).
 * A kept object must never change once kept, so a hard link is made only of an inode with one
 * name (the one about to go); an inode with other names is copied. An in-place change of an
 * inode some kept hard link still shares (a replacement that failed after its keep) first
 * turns that kept link into a copy. An in-place change of an inode with several names in the
 * roots keeps every other name too (found by one walk of the roots per inode and checkpoint):
 * they all change with it.
 *
 * Durability: what precedes an in-place change (a copy and its line) and a tree's line (it
 * precedes the tree's move) are fsynced before keep returns; the rest (hard links, absent
 * notes, link targets, modes) at the next group commit, before the appliers fsync what they
 * changed (Appliers.sync calls the store first). Between two commits those precede, in the
 * filesystem's journal, the rename or creation that follows them (ext4 data=ordered commits
 * metadata in order, and an append's data before its size): a power loss there loses both or
 * neither. One fdatasync per first change cost 6 ms each on this machine (bench/checkpoints.js).
 */
export class ChangeKeeper {
  /** Inodes a kept hard link shares with a name in the roots, by "dev:ino": their objects. */
  private readonly held = new Map<string, string[]>();
  /** Inodes whose other names were kept already since the newest checkpoint. */
  private readonly split = new Set<string>();
  /** Bytes kept, told to the store. */
  onKept: (line: KeptLine) => void = () => undefined;

  constructor(
    private readonly roots: ReadonlyMap<string, string>,
    private readonly stateDir: string,
    /** The newest reached checkpoint's log, or undefined when none is reached yet. */
    private readonly current: () => UndoLog | undefined,
    /** Every log kept (oldest first): the objects a hard link may share are looked for there. */
    logs: () => UndoLog[],
  ) {
    for (const log of logs()) this.noteHeld(log);
  }

  /** A new checkpoint was reached: every object may be kept again, for it. */
  reached(): void {
    this.split.clear();
  }

  /** A log was dropped: its objects hold nothing any more. */
  dropped(log: UndoLog): void {
    for (const [key, objects] of this.held) {
      const left = objects.filter((o) => !o.startsWith(log.objectsDir + path.sep));
      if (left.length === 0) this.held.delete(key);
      else this.held.set(key, left);
    }
  }

  /** The KeepFn the appliers call before each change. */
  readonly keep = (root: string, rel: string, how: ChangeKind): void => {
    const log = this.current();
    if (log === undefined) return;
    const base = root === OBJECT_ROOT ? this.stateDir : this.roots.get(root);
    if (base === undefined) return; // the applier refuses the entry
    checkRelPath(rel);
    if (how === 'inPlace') this.beforeInPlace(log, root, base, rel);
    if (log.covered(root, rel, how === 'inPlace')) return;
    const missing = highestMissing(base, rel);
    if (missing === null) return; // a symlink or a file above it: the applier refuses the entry
    if (missing !== undefined) {
      if (!log.covered(root, missing, false)) this.add(log, { r: root, p: missing, k: 'absent' });
      return;
    }
    this.keepObject(log, root, rel, path.join(base, rel), how);
  };

  private keepObject(log: UndoLog, r: string, p: string, abs: string, how: ChangeKind): void {
    const st = lstat(abs);
    if (st === undefined) return this.add(log, { r, p, k: 'absent' });
    if (st.isSymbolicLink()) return this.add(log, { r, p, k: 'symlink', target: fs.readlinkSync(abs) });
    if (st.isDirectory()) {
      if (how === 'inPlace') return this.add(log, { r, p, k: 'dir', mode: st.mode & 0o7777 });
      return this.keepTree(log, r, p, abs, st, how === 'replace');
    }
    if (!st.isFile()) return; // a FIFO, socket or device: the applier refuses to act on it
    const mode = st.mode & 0o7777;
    const o = log.take();
    const to = log.object(o);
    fs.mkdirSync(log.objectsDir, { recursive: true, mode: 0o700 });
    if (how === 'replace' && st.nlink === 1 && tryLink(abs, to)) {
      // Shared with the name until the applier replaces it; a failure in between leaves it held.
      this.held.set(`${st.dev}:${st.ino}`, [to]);
    } else {
      copyOne(abs, to, true);
    }
    // Before an in-place change the copy and its line must be on disk now: the changed pages
    // may be written back before the next commit. A name about to be replaced waits for the commit.
    const now = how === 'inPlace';
    if (now) log.syncObjects();
    this.add(log, { r, p, k: 'file', o, mode, size: st.size }, now);
  }

  /**
   * A directory about to be removed (or replaced) is moved into the log whole, its line
   * written first: after a crash a line whose tree is missing is dropped (the removal never
   * happened). Inodes it shares with names outside it become copies. On another filesystem,
   * or for a rename's source (its tree lives on), it is copied instead.
   */
  private keepTree(log: UndoLog, r: string, p: string, abs: string, st: fs.Stats, removed: boolean): void {
    fs.mkdirSync(log.objectsDir, { recursive: true, mode: 0o700 });
    const o = log.take();
    const to = log.object(o);
    const size = treeBytes(abs);
    if (removed && fs.statSync(log.objectsDir).dev === st.dev) {
      this.add(log, { r, p, k: 'tree', o, size }, true);
      fs.renameSync(abs, to);
      unshare(to);
      log.syncObjects();
      return;
    }
    const tmp = `${to}.tmp`;
    copyTree(abs, tmp, { durable: true, skip: isTempName });
    fs.renameSync(tmp, to);
    log.syncObjects();
    this.add(log, { r, p, k: 'tree', o, size }, true);
  }

  /**
   * Before an in-place change of (root, rel): a kept hard link sharing its inode becomes a
   * copy, and the inode's other names in the roots are kept (they change with it).
   */
  private beforeInPlace(log: UndoLog, root: string, base: string, rel: string): void {
    const abs = path.join(base, rel);
    if (highestMissing(base, rel) !== undefined) return;
    const st = lstat(abs);
    if (st === undefined || !st.isFile() || st.nlink < 2) return;
    const key = `${st.dev}:${st.ino}`;
    for (const object of this.held.get(key) ?? []) privatize(object);
    this.held.delete(key);
    if (this.split.has(key) || root === OBJECT_ROOT) return;
    this.split.add(key);
    // One copy for every other name; its bytes are counted once.
    let o: number | undefined;
    for (const [r, dir] of this.roots) {
      for (const p of namesOf(dir, st)) {
        if ((r === root && p === rel) || log.covered(r, p, false)) continue;
        const first = o === undefined;
        if (o === undefined) {
          o = log.take();
          fs.mkdirSync(log.objectsDir, { recursive: true, mode: 0o700 });
          copyOne(abs, log.object(o), true);
          log.syncObjects();
        }
        this.add(log, { r, p, k: 'file', o, mode: st.mode & 0o7777, size: first ? st.size : 0 }, true);
      }
    }
  }

  /** Appends `line`: durable now, or (`now` false) at the next group commit, before the appliers' fsyncs. */
  private add(log: UndoLog, line: KeptLine, now = false): void {
    log.append(line, now);
    this.onKept(line);
  }

  /** The kept files of `log` that share their inode with a name in the roots. */
  private noteHeld(log: UndoLog): void {
    for (const l of log.lines) {
      if (l.k !== 'file') continue;
      const object = log.object(l.o);
      const st = lstat(object);
      if (st === undefined || st.nlink < 2) continue;
      const key = `${st.dev}:${st.ino}`;
      this.held.set(key, [...(this.held.get(key) ?? []), object]);
    }
  }
}

/** The highest directory above `rel` (or `rel` itself) that does not exist, as a path in the root; undefined when all above exist, null when one is not a directory. */
function highestMissing(base: string, rel: string): string | undefined | null {
  const segs = rel.split('/');
  for (let i = 1; i < segs.length; i++) {
    const p = segs.slice(0, i).join('/');
    const st = lstat(path.join(base, p));
    if (st === undefined) return p;
    if (!st.isDirectory()) return null;
  }
  return undefined;
}

function lstat(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

function tryLink(from: string, to: string): boolean {
  try {
    fs.linkSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EXDEV') return false;
    throw err;
  }
}

/** Replaces the kept file `object` by a copy of itself, so the inode it shared may change. */
function privatize(object: string): void {
  const tmp = `${object}.tmp`;
  fs.rmSync(tmp, { force: true });
  copyOne(object, tmp, true);
  fs.renameSync(tmp, object);
}

/** Files of a tree moved into a log that share their inode with a name left outside: each becomes a copy. */
function unshare(dir: string): void {
  for (const d of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!d.isFile()) continue;
    const p = path.join(d.parentPath, d.name);
    if (fs.lstatSync(p).nlink > 1) privatize(p);
  }
}

function treeBytes(dir: string): number {
  let n = 0;
  for (const d of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (d.isFile()) n += fs.lstatSync(path.join(d.parentPath, d.name)).size;
  }
  return n;
}

/** The paths in the root `dir` of the inode of `st` (not following links). */
function namesOf(dir: string, st: fs.Stats): string[] {
  const out: string[] = [];
  for (const d of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!d.isFile()) continue;
    const p = path.join(d.parentPath, d.name);
    const s = fs.lstatSync(p);
    if (s.ino === st.ino && s.dev === st.dev) out.push(path.relative(dir, p).split(path.sep).join('/'));
  }
  return out;
}
