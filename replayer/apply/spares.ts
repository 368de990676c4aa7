import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

const { O_WRONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** Prefix and suffix of the replayer's temporary names; a crashed replayer's leftovers are found by them. */
export const TEMP_PREFIX = '.understudy-';
export const TEMP_SUFFIX = '.tmp';

/**
 * A new temporary name in `dir`: unguessable, so nothing planted on the standby can take it
 * first (O_EXCL would then refuse the entry). randomUUID draws from a cache; randomBytes(6)
 * cost 4 % of a drain.
 */
export function tempName(dir: string): string {
  return path.join(dir, `${TEMP_PREFIX}${randomUUID()}${TEMP_SUFFIX}`);
}

/** Replaced versions larger than this are let go: a spare holds its blocks until it is reused. */
const SPARE_MAX_BYTES = 1024 * 1024;
/** Directories that keep a spare; the least recently used gives its up. */
const MAX_SPARES = 256;

interface Spare { name: string; dev: number; ino: number }

/**
 * Versions of files the replayer replaced, kept under a temporary name in their directory
 * to be written again as the next temporary file there. Replacing a file by rename frees its
 * inode and the next replacement allocates one, and ext4 skips inodes freed in the last
 * minutes when it allocates (recently_deleted): under a steady stream of overwrites each new
 * temporary file cost 200-300 µs here. Reusing the replaced inode makes an overwrite 454 →
 * 192 µs. A spare is used only if it is still the very inode we kept (same device and inode,
 * one link, a regular file): anything swapped in under its name is left alone.
 */
export class Spares {
  private readonly byDir = new Map<string, Spare>();

  /** Opens the spare of `dir` for writing, emptied; undefined when there is none fit to use. */
  take(dir: string): { name: string; fd: number } | undefined {
    const spare = this.byDir.get(dir);
    if (spare === undefined) return undefined;
    this.byDir.delete(dir);
    let fd: number;
    try {
      fd = fs.openSync(spare.name, O_WRONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch {
      return undefined; // gone with its directory, or not a file any more: a fresh temporary file will do
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isFile() && st.nlink === 1 && st.dev === spare.dev && st.ino === spare.ino) {
        fs.ftruncateSync(fd, 0);
        return { name: spare.name, fd };
      }
    } catch {
      // fall through: not used
    }
    fs.closeSync(fd);
    return undefined;
  }

  /**
   * Before `target` is replaced: gives its current version a second name, so the rename that
   * replaces it does not free its inode. Returns that name, or undefined when the version is
   * not worth keeping (not a lone regular file, or large).
   */
  setAside(target: string, st: fs.Stats | undefined): string | undefined {
    if (st === undefined || !st.isFile() || st.nlink !== 1 || st.size > SPARE_MAX_BYTES) return undefined;
    const name = tempName(path.dirname(target));
    try {
      fs.linkSync(target, name);
    } catch {
      return undefined;
    }
    return name;
  }

  /** After the rename: `name` (from setAside) is its directory's spare, readable by no one else meanwhile. */
  keep(name: string, st: fs.Stats): void {
    const dir = path.dirname(name);
    try {
      fs.chmodSync(name, 0o600); // the old version's mode may have been wider than the new one's
    } catch {
      this.drop(name);
      return;
    }
    const old = this.byDir.get(dir);
    if (old !== undefined) this.drop(old.name);
    this.byDir.delete(dir);
    this.byDir.set(dir, { name, dev: st.dev, ino: st.ino });
    if (this.byDir.size > MAX_SPARES) {
      const [oldest, spare] = this.byDir.entries().next().value as [string, Spare];
      this.byDir.delete(oldest);
      this.drop(spare.name);
    }
  }

  /** Removes a name set aside that will not be used. */
  drop(name: string): void {
    try {
      fs.rmSync(name, { force: true });
    } catch {
      // Something else took the name (a directory): it is not ours to remove.
    }
  }

  /**
   * Removes the spares in `dir` and below it, before it is renamed or replaced: a spare must not
   * travel with its directory out of our sight, nor make a directory the primary emptied look full.
   */
  forgetUnder(dir: string): void {
    const prefix = dir.endsWith(path.sep) ? dir : dir + path.sep;
    for (const [d, spare] of this.byDir) {
      if (d !== dir && !d.startsWith(prefix)) continue;
      this.byDir.delete(d);
      this.drop(spare.name);
    }
  }

  /** Removes every spare: on the replayer's way out nothing of ours stays in the roots. */
  clear(): void {
    for (const spare of this.byDir.values()) this.drop(spare.name);
    this.byDir.clear();
  }
}
