import * as fs from 'node:fs';
import { promisify } from 'node:util';
import { DEFAULTS } from '../../lib/settings';
import { StandbyDiskError } from '../disk-error';
import { lstatOrUndefined } from './fs-stat';

/** The fs applier's group commit: fsyncs of what it changed since the last commit, many at once. */

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;
const fsync = promisify(fs.fsync);

interface Held { fd: number; path: string; by: string }

const inodeKey = (st: fs.Stats): string => `${st.dev}:${st.ino}`;

/**
 * Inodes changed since the last good commit, each held open until it is fsynced. By inode, not
 * by path: a file written and then renamed (the usual save), a directory renamed after a file was
 * made in it, or one name of a hard-linked file removed after a write through it, all still get
 * their fsync, where an fsync by the old path would find nothing and skip it.
 */
export class Unsynced {
  private readonly held = new Map<string, Held>();

  constructor(private readonly cap = DEFAULTS.apply.heldFds) {}

  /** How many files or directories wait for the next fsync. */
  get size(): number {
    return this.held.size;
  }

  /** Takes `fd` (open on `path`, whose fstat is `st`): held until synced, or closed now when its inode is held already. */
  adopt(fd: number, st: fs.Stats, path: string, by: string): void {
    const key = inodeKey(st);
    const known = this.held.get(key);
    if (known !== undefined) {
      fs.closeSync(fd);
      known.by = by;
      return;
    }
    this.held.set(key, { fd, path, by });
    if (this.held.size > this.cap) this.syncOldest();
  }

  /** Holds the directory `dir` (not following a symlink) unless it is held already; one gone since needs nothing. */
  directory(dir: string, by: string): void {
    let st: fs.Stats | undefined;
    try {
      st = lstatOrUndefined(dir);
    } catch {
      return; // a file above it now: it was removed, and what removed it is held
    }
    if (st === undefined || !st.isDirectory()) return;
    const known = this.held.get(inodeKey(st));
    if (known !== undefined) {
      known.by = by;
      return;
    }
    let fd: number;
    try {
      fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);
    } catch {
      return; // replaced by a symlink or removed since: whatever replaced it is held too
    }
    this.adopt(fd, fs.fstatSync(fd), dir, by);
  }

  /** The file `st` lost its last name: nothing reachable is left to make durable. */
  orphaned(st: fs.Stats): void {
    const key = inodeKey(st);
    const known = this.held.get(key);
    if (known === undefined) return;
    this.held.delete(key);
    fs.closeSync(known.fd);
  }

  /** fsyncs every held inode at once and lets go of those that succeeded; throws for the first that failed. */
  async syncAll(): Promise<void> {
    const list = [...this.held];
    const results = await Promise.allSettled(list.map(([, h]) => fsync(h.fd)));
    let failed: StandbyDiskError | undefined;
    results.forEach((r, i) => {
      const [key, h] = list[i];
      if (r.status === 'fulfilled') this.release(key, h);
      else failed ??= syncFailure(h, r.reason);
    });
    if (failed !== undefined) throw failed;
  }

  /** Closes every held file; what was not synced is applied again from the last commit. */
  close(): void {
    for (const [key, h] of this.held) this.release(key, h);
  }

  /** More held than the cap: the oldest are made durable now, on this thread, rather than run out of fds. */
  private syncOldest(): void {
    for (const [key, h] of this.held) {
      if (this.held.size <= this.cap / 2) return;
      try {
        fs.fsyncSync(h.fd);
      } catch (err) {
        throw syncFailure(h, err);
      }
      this.release(key, h);
    }
  }

  private release(key: string, h: Held): void {
    this.held.delete(key);
    fs.closeSync(h.fd);
  }
}

/** The failed fsync, naming the file by its name now (it may have been renamed since it was written) and the entry that changed it last. */
function syncFailure(h: Held, err: unknown): StandbyDiskError {
  return new StandbyDiskError(`fsync of ${nameNow(h)} (changed by entry ${h.by}) failed: ${(err as Error).message}`, { cause: err });
}

function nameNow(h: Held): string {
  try {
    const now = fs.readlinkSync(`/proc/self/fd/${h.fd}`);
    return now.endsWith(' (deleted)') ? h.path : now;
  } catch {
    return h.path;
  }
}

/** Sets the mode of the new file `file` and fsyncs it (a copy, before it is renamed into place). */
export function fsyncFile(file: string, mode: number): void {
  const fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  try {
    fs.fchmodSync(fd, mode);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
