import * as fs from 'node:fs';
import * as path from 'node:path';
import { positionLabel, type EntryHeader, type FileOp } from '../../lib/entry';
import { ApplyError, BadEntryError, ConfinementError } from '../../lib/errors';
import { checkRelPath } from '../../lib/confine';
import { DEFAULTS } from '../../lib/settings';
import { resolveInRoot } from '../safe-path';
import { writeAll, writeSync, type WriteFn } from '../write';
import { KEEP_NOTHING, NO_HISTORY, type Applier, type ChangeOrder, type Data, type KeepFn, type ObjectDoubt, type Outcome, type SnapshotMarks } from './applier';
import { copyFile, copyInto } from './fs-copy';
import { kindOf, lstatOrUndefined } from './fs-stat';
import { fsyncFile, Unsynced } from './fs-sync';
import { removeTemps, tempBeside } from './temp-files';

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** rename(2)'s refusals when its target is a non-empty directory, or an object of the other kind. */
const RENAME_BLOCKED: ReadonlySet<string> = new Set(['ENOTEMPTY', 'EEXIST', 'ENOTDIR', 'EISDIR']);

/** The file operations, each once: the type makes a new FileOp a compile error here until it is listed. */
const FILE_OPS: Readonly<Record<FileOp['op'], true>> = {
  put: true, append: true, pwrite: true, truncate: true, mkdir: true, rm: true, rename: true, symlink: true, link: true, chmod: true,
};

/** What the fs applier is given besides its roots; a standalone one (a test of one operation) remembers nothing. */
export interface FsApplierOptions {
  write?: WriteFn;
  /** When each object last changed: a snapshot older than that is not applied. */
  snapshots?: SnapshotMarks;
  /** The replayer's order across journals, asked before and told after each change. */
  order?: ChangeOrder;
  log?: (line: string) => void;
  /** Told before each change to an object (checkpoints keep what it was). */
  keep?: KeepFn;
}

/**
 * Applies file entries to the standby's roots. Files are replaced atomically
 * (temporary file in the same directory, then rename), so a reader never sees
 * one half-written. Durability is a group commit: `sync()` fsyncs every file
 * and directory changed since the last commit, in parallel (the filesystem
 * journal coalesces them), before the position that covers them is recorded.
 * After a power loss the replayer applies again from the last recorded position,
 * and every operation is idempotent, so what did not reach the disk is written again.
 * No symlink is ever followed: parents are checked by resolveInRoot, objects
 * are opened with O_NOFOLLOW or replaced by rename.
 */
export class FsApplier implements Applier {
  readonly name = 'fs';
  /** Files and directories changed since the last good commit, held open by inode until it fsyncs them. */
  private readonly dirty = new Unsynced();
  private readonly touched = new Unsynced();
  /** The entry being applied, named in an fsync error. */
  private by = '';
  /** What applying the current entry found the standby could not match, told to the order with it. */
  private found: ObjectDoubt | undefined;

  private readonly write: WriteFn;
  private readonly snapshots: SnapshotMarks;
  private readonly order: ChangeOrder;
  private readonly log: (line: string) => void;
  private readonly keep: KeepFn;

  /** `roots`: root name to its real directory on the standby. */
  constructor(private readonly roots: ReadonlyMap<string, string>, opts: FsApplierOptions = {}) {
    this.write = opts.write ?? writeSync;
    this.snapshots = opts.snapshots ?? NO_HISTORY.snapshots;
    this.order = opts.order ?? NO_HISTORY.order;
    this.log = opts.log ?? (() => undefined);
    this.keep = opts.keep ?? KEEP_NOTHING;
  }

  /** True for file operations. */
  handles(h: EntryHeader): boolean {
    return Object.hasOwn(FILE_OPS, h.op);
  }

  /**
   * Applies one whole change, unless it is a snapshot older than what the standby has or a
   * change the order across journals passes over; throws ApplyError (or ConfinementError,
   * BadEntryError) naming what failed.
   */
  apply(h: EntryHeader, data: Data): Outcome {
    if (h.b !== undefined && this.snapshots.stale(h.r, h.p, h.b, h.j)) {
      if (this.snapshots.undecided(h.b)) {
        this.log(`snapshot ${positionLabel(h)} of ${h.r}/${h.p} is older than what this standby remembers; not applied (understudy verify --repair mends it)`);
      }
      return 'stale';
    }
    const verdict = this.order.place(h);
    if (verdict === 'skip') return 'superseded';
    this.found = undefined;
    this.change(h, data);
    this.order.applied(h, verdict, this.found);
    return 'applied';
  }

  /** Closes the files and directories held for the next commit; what they held is applied again from the last one. */
  close(): void {
    this.dirty.close();
    this.touched.close();
  }

  /** Removes the temporary files a killed replayer left beside the objects it was replacing. */
  cleanUp(): number {
    return removeTemps([...this.roots.values()]);
  }

  /** Makes the change `h` names in the tree. */
  private change(h: EntryHeader, data: Data): void {
    // Every path the entry names is checked before anything on disk changes: a refused entry
    // leaves no directory behind. The paths it reads (a link's source, a rename's) are looked
    // at before the directories of the path it writes are made.
    this.by = positionLabel(h);
    this.check(h.r, h.p);
    if (h.op === 'rename') this.check(h.toRoot, h.to);
    if (h.op === 'link') this.check(h.fromRoot, h.from);
    // Told before the keep, which may add a name to the inode (a hard link into a checkpoint).
    const sharedInode = h.op === 'put' && this.multiLinked(h);
    this.keepBefore(h, sharedInode);
    switch (h.op) {
      case 'rm': {
        const target = this.find(h, h.r, h.p, true);
        if (target === undefined) return; // no directory above it: nothing there to remove
        fs.rmSync(target, { recursive: true, force: true });
        this.touched.directory(path.dirname(target), this.by);
        return;
      }
      case 'rename':
        return this.rename(h);
      case 'link':
        return this.link(h);
    }
    const target = this.place(h, h.r, h.p);
    switch (h.op) {
      case 'put':
        return this.put(target, h.mode, data, sharedInode);
      case 'append':
      case 'pwrite':
        return this.writeAt(target, h.at, data);
      case 'truncate':
        return this.withFd(target, O_WRONLY, 'file', (fd) => fs.ftruncateSync(fd, h.size), true);
      case 'mkdir':
        return this.mkdir(target, h.mode);
      case 'symlink':
        return this.replaceWith(target, (tmp) => fs.symlinkSync(h.target, tmp));
      case 'chmod':
        // Held like a write: a mode is the inode's, and only its fsync makes it durable.
        return this.withFd(target, O_RDONLY, 'file or directory', (fd) => fs.fchmodSync(fd, h.mode), true);
    }
  }

  /**
   * Tells `keep` what `h` is about to change, before anything (the directories above included)
   * is made: a put over a file with several names, like append, pwrite, truncate and chmod,
   * changes its inode in place; mkdir over a directory only sets its mode.
   */
  private keepBefore(h: EntryHeader, sharedInode: boolean): void {
    if (this.keep === KEEP_NOTHING) return;
    switch (h.op) {
      case 'rename':
        this.keep(h.r, h.p, 'move');
        return this.keep(h.toRoot, h.to, 'replace');
      case 'append': case 'pwrite': case 'truncate': case 'chmod':
        return this.keep(h.r, h.p, 'inPlace');
      case 'put':
        return this.keep(h.r, h.p, sharedInode ? 'inPlace' : 'replace');
      case 'mkdir': {
        const target = this.find(h, h.r, h.p, true);
        const isDir = target !== undefined && lstatOrUndefined(target)?.isDirectory() === true;
        return this.keep(h.r, h.p, isDir ? 'inPlace' : 'replace');
      }
      default:
        return this.keep(h.r, h.p, 'replace');
    }
  }

  /**
   * Makes every change since the last good commit durable: files first, then the directories
   * that name them. A path leaves the lists only once its fsync succeeded; a failure throws a
   * StandbyDiskError naming the path and the entry that changed it last.
   */
  async sync(): Promise<void> {
    await this.dirty.syncAll();
    await this.touched.syncAll();
  }

  /** Refuses an unknown root or a path that could leave it, before any disk access. */
  private check(root: string, rel: string): void {
    if (!this.roots.has(root)) throw new BadEntryError(`entry names root "${root}", which this replayer does not have (--root ${root}=/dir)`);
    checkRelPath(rel);
  }

  private resolve(root: string, rel: string, makeParents: boolean): string {
    const dir = this.roots.get(root);
    if (dir === undefined) throw new BadEntryError(`entry names root "${root}", which this replayer does not have (--root ${root}=/dir)`);
    return resolveInRoot(dir, rel, makeParents);
  }

  /** Where (root, rel) is on the standby, the directories above it made when missing. */
  private place(h: EntryHeader, root: string, rel: string): string {
    try {
      return this.resolve(root, rel, true);
    } catch (err) {
      throw mismatch(h, root, rel, err);
    }
  }

  /** Where (root, rel) is on the standby, or undefined when a directory above it does not exist (or is a file, if `fileIsAbsent`). */
  private find(h: EntryHeader, root: string, rel: string, fileIsAbsent = false): string | undefined {
    try {
      return this.resolve(root, rel, false);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || (code === 'ENOTDIR' && fileIsAbsent)) return undefined;
      throw mismatch(h, root, rel, err);
    }
  }

  /** Whether the file a put names has other names (then it is rewritten in place). */
  private multiLinked(h: EntryHeader): boolean {
    const target = this.find(h, h.r, h.p, true);
    const st = target === undefined ? undefined : lstatOrUndefined(target);
    return st !== undefined && st.isFile() && st.nlink > 1;
  }

  private put(target: string, mode: number, data: Data, sharedInode: boolean): void {
    if (sharedInode) {
      // A rename would split the hard link; on the primary every name of the inode sees the new
      // content, so here too: rewrite in place (a reader may see it half-written, as on the primary).
      this.withFd(target, O_WRONLY, 'file', (fd) => {
        fs.ftruncateSync(fd, 0);
        if (data.buf !== undefined) writeAll(this.write, fd, data.buf, 0);
        else copyInto(this.write, data.file, fd, 0);
        fs.fchmodSync(fd, mode);
      }, true);
      if (data.file !== undefined) fs.rmSync(data.file, { force: true });
      return;
    }
    if (data.file !== undefined) {
      // Staged chunks: already complete and fsynced; one rename makes them visible at once.
      fs.chmodSync(data.file, mode);
      try {
        this.renameOver(data.file, target);
        this.touched.directory(path.dirname(target), this.by);
        return;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      }
      this.replaceWith(target, (tmp) => {
        fs.copyFileSync(data.file, tmp, fs.constants.COPYFILE_EXCL);
        fsyncFile(tmp, mode);
      });
      fs.rmSync(data.file, { force: true });
      return;
    }
    this.replaceWith(target, (tmp) => {
      const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      let st: fs.Stats;
      try {
        writeAll(this.write, fd, data.buf, 0);
        fs.fchmodSync(fd, mode);
        st = fs.fstatSync(fd);
      } catch (err) {
        fs.closeSync(fd);
        throw err;
      }
      // Kept for the commit's fsync: reopening by path would find nothing once a later entry renamed it.
      this.dirty.adopt(fd, st, target, this.by);
    });
  }

  private writeAt(target: string, at: number, data: Data): void {
    this.withFd(target, O_WRONLY | O_CREAT, 'file', (fd) => {
      if (data.buf !== undefined) writeAll(this.write, fd, data.buf, at);
      else copyInto(this.write, data.file, fd, at);
    }, true);
    if (data.file !== undefined) fs.rmSync(data.file, { force: true });
  }

  private mkdir(target: string, mode: number): void {
    const st = lstatOrUndefined(target);
    if (st !== undefined && !st.isDirectory()) fs.rmSync(target, { recursive: true, force: true });
    if (st === undefined || !st.isDirectory()) {
      fs.mkdirSync(target, { mode });
      this.touched.directory(path.dirname(target), this.by);
    }
    this.withFd(target, O_RDONLY, 'directory', (fd) => fs.fchmodSync(fd, mode));
  }

  private rename(h: Extract<EntryHeader, { op: 'rename' }>): void {
    const from = this.find(h, h.r, h.p);
    if (from === undefined || lstatOrUndefined(from) === undefined) {
      // Re-applied after a crash between applying and recording it: the move already happened.
      const done = this.find(h, h.toRoot, h.to);
      if (done !== undefined && lstatOrUndefined(done) !== undefined) return;
      if (from === undefined) throw new ApplyError(`rename of ${h.r}/${h.p}: a directory above it does not exist on the standby`);
      throw new ApplyError(`rename source ${from} does not exist on the standby`);
    }
    const to = this.place(h, h.toRoot, h.to);
    try {
      this.renameOver(from, to);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!RENAME_BLOCKED.has(code)) throw err;
      // The primary's rename succeeded, so at this point of its history nothing blocked it. What does
      // here was most often made by later entries applied before a crash or a failed fsync sent the
      // replayer back to its last good commit; but it may also be a standby that differs (changed by
      // hand, or an entry passed over). Either way the primary's state after the rename has `to` as
      // `from` was, so that is what the standby gets, and status says it is in doubt until a later
      // change or verify settles it: which of the two it was cannot be told from here.
      fs.rmSync(to, { recursive: true, force: true });
      this.renameOver(from, to);
      this.found = { r: h.toRoot, p: h.to, why: `${positionLabel(h)} (rename ${h.r}/${h.p} → ${h.toRoot}/${h.to}) found ${code} at its target on the standby, which it replaced` };
    }
    this.touched.directory(path.dirname(from), this.by);
    this.touched.directory(path.dirname(to), this.by);
  }

  private link(h: Extract<EntryHeader, { op: 'link' }>): void {
    const from = this.find(h, h.fromRoot, h.from);
    const src = from === undefined ? undefined : lstatOrUndefined(from);
    if (from === undefined || src === undefined) throw new ApplyError(`link source ${h.fromRoot}/${h.from} does not exist on the standby`);
    // Only files and symlinks can have hard links; anything else is not what a primary journals.
    if (!src.isFile() && !src.isSymbolicLink()) throw new BadEntryError(`link source ${path.basename(from)} is ${kindOf(src)} on the standby, not a file or a symlink`);
    const to = this.place(h, h.r, h.p);
    const dst = lstatOrUndefined(to);
    if (dst !== undefined && dst.ino === src.ino && dst.dev === src.dev) return;
    this.replaceWith(to, (tmp) => {
      try {
        fs.linkSync(from, tmp); // link(2) does not follow a symlink at `from`: the link itself gets the new name
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        // Roots on different filesystems: a copy, made without following a symlink at `from`.
        if (src.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from), tmp);
        else copyFile(this.write, from, tmp);
      }
    });
  }

  /** Builds the new object under a temporary name beside `target`, then renames it over. */
  private replaceWith(target: string, build: (tmp: string) => void): void {
    const tmp = tempBeside(target);
    try {
      build(tmp);
      // One lstat for both questions about what is at the target (a put asked two, back to back).
      let old = lstatOrUndefined(target);
      // A directory where the primary now has a file or a link (a repair of a type difference): it goes.
      if (old?.isDirectory() === true) {
        fs.rmSync(target, { recursive: true, force: true });
        old = undefined;
      }
      this.renameOver(tmp, target, old);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    this.touched.directory(path.dirname(target), this.by);
  }

  /**
   * rename(2) of `from` over `to`; a held file whose only name `to` was has nothing left to fsync.
   * `old`: what is at `to` now, when the caller has just looked.
   */
  private renameOver(from: string, to: string, old = lstatOrUndefined(to)): void {
    fs.renameSync(from, to);
    if (old !== undefined && old.isFile() && old.nlink === 1) this.dirty.orphaned(old);
  }

  /**
   * Opens what is at `target` without following a symlink and without blocking (a FIFO planted
   * there would otherwise hold the replayer for ever), and acts on it only when it is what the
   * entry expects: an in-place write must not reach a FIFO, a socket or a device.
   */
  private withFd(target: string, flags: number, want: 'file' | 'directory' | 'file or directory', fn: (fd: number) => void, hold = false): void {
    let fd: number;
    try {
      fd = fs.openSync(target, flags | O_NOFOLLOW | O_NONBLOCK, DEFAULTS.apply.createdFileMode);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // O_NOFOLLOW met a symlink where the entry names a file or directory.
      if (code === 'ELOOP') throw new ConfinementError(`${path.basename(target)} is a symlink on the standby; refusing to act through it`);
      // A FIFO without a reader, a socket, a device without a driver: not a file the replayer made.
      if (code === 'ENXIO') throw new BadEntryError(`${path.basename(target)} is a FIFO, socket or device on the standby, not a ${want}; refusing to write to it`);
      throw err;
    }
    let st: fs.Stats;
    try {
      st = fs.fstatSync(fd);
      if (!((want !== 'directory' && st.isFile()) || (want !== 'file' && st.isDirectory()))) {
        throw new BadEntryError(`${path.basename(target)} is ${kindOf(st)} on the standby, not a ${want}; refusing to act on it`);
      }
      fn(fd);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
    // Held for the commit's fsync, which then needs no path and finds the inode whatever it is called by then.
    if (hold) this.dirty.adopt(fd, st, target, this.by);
    else fs.closeSync(fd);
  }
}

/** A file where the entry needs a directory above its path: the trees differ (verify --repair mends it). */
function mismatch(h: EntryHeader, root: string, rel: string, err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENOTDIR') return err;
  return new ApplyError(`${h.op} of ${root}/${rel}: ${(err as Error).message}`, { cause: err });
}
