import { isMainThread } from 'node:worker_threads';
import { realFs } from '../real-fs';
import { closeKeepingLocks } from '../held-locks';

/**
 * How a capture gets descriptors of a database's files (the database, -wal, -shm). Closing any
 * descriptor of a file drops every POSIX lock the process holds on it, SQLite's own included,
 * so a capture never closes one while the file may be in use. The main thread opens its own and
 * keeps them. A worker thread cannot: Node closes the descriptors a worker opened when it exits
 * (trackUnmanagedFds, on by default), which would drop the locks of the process's other
 * connections. A worker thread borrows instead a descriptor the process already has open on the
 * file (SQLite's, or the main thread's capture's), found in /proc/self/fd, never closes it, and
 * checks before each use that it is still that file.
 */
export interface Descriptors {
  /** A descriptor of `file` to read through, or -1 when there is none. */
  open(file: string): number;
  /** Lets go of `fd` (a file deleted since): closed if it is this thread's own. */
  release(fd: number): void;
  /** Whether `fd` is still the file it was got for (always, for one's own). */
  valid(fd: number): boolean;
}

/**
 * The main thread's: its own descriptors, opened read-only, each closed only while the process
 * holds no POSIX lock on its file (agent/held-locks): a capture let go of while another
 * connection of the process still has the file open must not take that connection's locks.
 */
export class OwnDescriptors implements Descriptors {
  open(file: string): number {
    try {
      return realFs.openSync(file, 'r');
    } catch {
      return -1;
    }
  }

  release(fd: number): void {
    closeKeepingLocks(realFs.fstatSync(fd), () => realFs.closeSync(fd));
  }

  valid(): boolean {
    return true;
  }
}

/** A worker thread's: descriptors of the process's that it reads through and never closes. */
export class BorrowedDescriptors implements Descriptors {
  private readonly inode = new Map<number, string>();

  open(file: string): number {
    let want: string;
    try {
      const st = realFs.statSync(file);
      want = `${st.dev}:${st.ino}`;
    } catch {
      return -1;
    }
    let names: string[];
    try {
      names = realFs.readdirSync('/proc/self/fd');
    } catch {
      return -1;
    }
    for (const name of names) {
      const fd = Number(name);
      try {
        if (realFs.readlinkSync(`/proc/self/fd/${name}`) !== file) continue;
        const st = realFs.fstatSync(fd);
        if (`${st.dev}:${st.ino}` !== want) continue;
        this.inode.set(fd, want);
        return fd;
      } catch {
        // closed meanwhile, by its owner
      }
    }
    return -1;
  }

  release(fd: number): void {
    this.inode.delete(fd);
  }

  valid(fd: number): boolean {
    const want = this.inode.get(fd);
    try {
      const st = realFs.fstatSync(fd);
      return want === `${st.dev}:${st.ino}`;
    } catch {
      return false;
    }
  }
}

/** The descriptors a capture on this thread uses. */
export function threadDescriptors(): Descriptors {
  return isMainThread ? new OwnDescriptors() : new BorrowedDescriptors();
}
