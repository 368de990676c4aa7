import type * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { excludeMatcher } from '../lib/exclude';
import { isInside, type Root } from '../lib/roots';
import { realFs } from './real-fs';
import { DEFAULTS } from '../lib/settings';

/** A primary path mapped into the journal's address space. */
export interface Located {
  root: string;
  rel: string;
  /** Absolute real path on the primary (symlinks resolved as far as the operation follows them). */
  abs: string;
}

/**
 * Maps paths the application uses to (root, relative path), by where they
 * really are: a path under a root that reaches outside it through a symlink is
 * not journaled, nor is anything excluded.
 */
export class Locator {
  private readonly excluded: (rel: string) => boolean;
  private readonly dirs = new Map<string, DirMemo>();
  private readonly files = new Map<string, FileMemo>();
  /** Within locateMove: the directory its first end resolved, reused by the second. */
  private moving = false;
  private movedIn: { dir: string; real: string } | undefined;

  constructor(private readonly roots: readonly Root[], exclude: readonly string[]) {
    this.excluded = excludeMatcher(exclude);
  }

  /** The absolute form of a PathLike, or undefined for a descriptor or something unusable. */
  absolute(p: unknown): string | undefined {
    let s: string;
    if (typeof p === 'string') s = p;
    else if (Buffer.isBuffer(p)) s = p.toString('utf8');
    else if (p instanceof URL) {
      if (p.protocol !== 'file:') return undefined;
      s = fileURLToPath(p);
    } else return undefined;
    if (s === '' || s.includes('\0')) return undefined;
    return path.resolve(s);
  }

  /**
   * Where `p` really is. `follow` resolves a final symlink (a write through a link
   * changes its target); without it the link itself is the object (unlink, rename).
   */
  locate(p: unknown, follow: boolean): Located | undefined {
    return this.find(p, follow)?.at;
  }

  /** Where both ends of a rename are (a final link not followed): a directory they share is looked at once. */
  locateMove(from: unknown, to: unknown): [Located | undefined, Located | undefined] {
    this.moving = true;
    try {
      return [this.locate(from, false), this.locate(to, false)];
    } finally {
      this.moving = false;
      this.movedIn = undefined;
    }
  }

  /**
   * Where the file `p` a write just went to really is, with its stat (links followed) as
   * read on the way, taken right now: the recorder needs its mode or size anyway.
   */
  locateFile(p: unknown): { at: Located; st: fs.Stats | undefined } | undefined {
    return this.find(p, true);
  }

  /** Forgets the directories and files it resolved: the agent journaled a change that can move them (a directory renamed or removed, a link made). */
  forget(): void {
    this.dirs.clear();
    this.files.clear();
  }

  /**
   * `follow`: the file is looked at first, by the path the application used (the kernel resolves
   * its directories as it did for the call). A file written again soon after (appends to a log, a
   * file rewritten in place) is then found with that one lstat: a remembered answer stands while
   * the path leads to the same inode, a regular file, for at most DIR_MEMO_MS. A file replaced
   * (renamed over, removed and made again) is another inode and is looked up afresh, its lstat
   * kept. What remains is what remains for directories (see realDir): a directory above it moved
   * by another process and a symlink left under its old name within that second.
   */
  private find(p: unknown, follow: boolean): { at: Located; st: fs.Stats | undefined } | undefined {
    const abs = this.absolute(p);
    if (abs === undefined || !this.lexicallyUnderRoot(abs)) return undefined;
    const now = follow ? Date.now() : 0;
    let st: fs.Stats | undefined;
    if (follow) {
      st = realFs.lstatSync(abs, { throwIfNoEntry: false });
      const memo = this.files.get(abs);
      if (memo !== undefined) {
        if (st?.isFile() === true && st.ino === memo.ino && st.dev === memo.dev && now - memo.time < DIR_MEMO_MS) return { at: { ...memo.at }, st };
        this.files.delete(abs);
      }
    }
    let real: string;
    try {
      real = path.join(this.realDir(path.dirname(abs)), path.basename(abs));
    } catch {
      return undefined;
    }
    const linked = st?.isSymbolicLink() === true;
    if (linked) {
      try {
        real = realFs.realpathNative(abs);
        st = realFs.statSync(real);
      } catch {
        st = undefined; // a dangling link: the link is what there is
      }
    }
    for (const r of this.roots) {
      if (real !== r.realDir && isInside(real, r.realDir)) {
        const rel = real.slice(r.realDir.length + 1);
        if (this.excluded(rel)) return undefined;
        const at = { root: r.name, rel, abs: real };
        if (!linked && st?.isFile() === true) this.rememberFile(abs, at, st, now);
        return { at: { ...at }, st };
      }
    }
    return undefined;
  }

  private rememberFile(abs: string, at: Located, st: fs.Stats, now: number): void {
    if (this.files.size >= DIR_MEMO_MAX) this.files.clear();
    this.files.set(abs, { at, dev: st.dev, ino: st.ino, time: now });
  }

  /**
   * realpath of a directory, remembered: resolving every component costs a syscall each, on
   * every write. A remembered answer is used only while the directory the path leads to now
   * is the same one (device and inode, one stat) and for at most DIR_MEMO_MS, and all are
   * forgotten when the agent itself renames or removes a directory, or makes a link. What remains: another
   * process moving a directory and leaving a symlink to it under the old name, within that
   * second, makes a write there journaled under the old name.
   */
  private realDir(dir: string): string {
    if (this.movedIn?.dir === dir) return this.movedIn.real;
    const real = this.resolveDir(dir);
    if (this.moving) this.movedIn = { dir, real };
    return real;
  }

  private resolveDir(dir: string): string {
    const now = Date.now();
    const memo = this.dirs.get(dir);
    if (memo !== undefined && now - memo.at < DIR_MEMO_MS) {
      const st = realFs.statSync(dir, { throwIfNoEntry: false });
      if (st !== undefined && st.ino === memo.ino && st.dev === memo.dev) return memo.real;
    }
    const real = realFs.realpathNative(dir);
    const st = realFs.statSync(real);
    if (this.dirs.size >= DIR_MEMO_MAX) this.dirs.clear();
    this.dirs.set(dir, { real, dev: st.dev, ino: st.ino, at: now });
    return real;
  }

  private lexicallyUnderRoot(abs: string): boolean {
    for (const r of this.roots) if (isInside(abs, r.dir) || isInside(abs, r.realDir)) return true;
    return false;
  }
}

interface DirMemo { real: string; dev: number; ino: number; at: number }
interface FileMemo { at: Located; dev: number; ino: number; time: number }
const { dirMemoMs: DIR_MEMO_MS, dirMemoMax: DIR_MEMO_MAX } = DEFAULTS.locate;
