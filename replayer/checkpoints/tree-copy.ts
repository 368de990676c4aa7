import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Copies of files and trees, as `cp -a` makes them: modes and link targets kept, symlinks
 * never followed, files cloned where the filesystem can (FICLONE: btrfs, xfs) and copied
 * otherwise. Used to keep an object that is changed in place, and by restore.
 */

export interface CopyOptions {
  /** Names (not paths) passed over: the replayer's temporary files. */
  skip?: (name: string) => boolean;
  /** fsync every file and directory made (what the checkpoint store keeps must be durable). */
  durable?: boolean;
  /** Told after each object copied, with its bytes. */
  progress?: (bytes: number) => void;
  /** Hard links within the tree stay hard links in the copy (by inode, as `cp -a`). */
  links?: Map<string, string>;
}

/** Copies the file at `from` (a regular file, not followed if a symlink: the caller looked) to the new path `to`, with its mode. */
export function copyOne(from: string, to: string, durable: boolean): number {
  fs.copyFileSync(from, to, fs.constants.COPYFILE_EXCL | fs.constants.COPYFILE_FICLONE);
  const st = fs.lstatSync(from);
  fs.chmodSync(to, st.mode & 0o7777);
  if (durable) fsyncPath(to);
  return st.size;
}

/** Copies the object at `from` (file, symlink or directory with everything below) to the new path `to`; returns the bytes of its files. */
export function copyTree(from: string, to: string, opts: CopyOptions = {}): number {
  const st = fs.lstatSync(from);
  if (st.isSymbolicLink()) {
    fs.symlinkSync(fs.readlinkSync(from), to);
    opts.progress?.(0);
    return 0;
  }
  if (st.isFile()) {
    const key = `${st.dev}:${st.ino}`;
    const first = st.nlink > 1 ? opts.links?.get(key) : undefined;
    if (first !== undefined) {
      fs.linkSync(first, to);
      opts.progress?.(0);
      return 0;
    }
    const n = copyOne(from, to, opts.durable === true);
    if (st.nlink > 1) opts.links?.set(key, to);
    opts.progress?.(n);
    return n;
  }
  if (!st.isDirectory()) return 0; // FIFOs, sockets, devices: nothing the replayer makes
  fs.mkdirSync(to, { mode: 0o700 });
  let bytes = 0;
  for (const name of fs.readdirSync(from)) {
    if (opts.skip?.(name) === true) continue;
    bytes += copyTree(path.join(from, name), path.join(to, name), opts);
  }
  fs.chmodSync(to, st.mode & 0o7777);
  if (opts.durable === true) fsyncPath(to);
  opts.progress?.(0);
  return bytes;
}

/** Objects and bytes under `dir` (not following links): what a copy of it will do, for progress. */
export function measure(dir: string, skip?: (name: string) => boolean): { objects: number; bytes: number } {
  const out = { objects: 0, bytes: 0 };
  const walk = (p: string): void => {
    const st = fs.lstatSync(p);
    out.objects++;
    if (st.isFile()) out.bytes += st.size;
    if (!st.isDirectory()) return;
    for (const name of fs.readdirSync(p)) if (skip?.(name) !== true) walk(path.join(p, name));
  };
  if (fs.existsSync(dir)) walk(dir);
  return out;
}

/** fsync by path (a file or a directory). */
export function fsyncPath(p: string): void {
  const fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
