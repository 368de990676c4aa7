import { realFs } from './real-fs';

/**
 * Closing any descriptor of a file drops every POSIX lock the process holds on it, whoever took
 * the lock (fcntl's rule): SQLite's, LevelDB's LOCK, LMDB's lock.mdb. The agent's reads of files
 * it did not see written (the in-process watcher) must never do that to the application. Linux
 * lists in /proc/locks the inodes each process holds POSIX locks on; elsewhere nothing is known.
 */

/** A file as stat(2) names it. */
export interface FileId {
  dev: number;
  ino: number;
}

const RETRY_MS = 1000;
/** Descriptors kept open because a lock appeared on their file while they were: each one's file and how to close it. */
const parked: { key: string; close: () => void }[] = [];
let retry: NodeJS.Timeout | undefined;

/** The file as /proc/locks prints it: the kernel's major and minor in hex, then the inode. */
export function lockKey(id: FileId): string {
  const dev = BigInt(id.dev);
  // glibc's makedev encoding, which libuv's stat gives.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}:${id.ino}`;
}

/** The files this process holds POSIX locks on, as lockKeys; undefined where the system does not say. */
function heldKeys(): Set<string> | undefined {
  let text: string;
  try {
    text = realFs.readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  const pid = String(process.pid);
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    // "1: POSIX  ADVISORY  READ 13825 fe:00:2383933 0 EOF". A waiter's line has "->" in the
    // second field and holds nothing; FLOCK and OFDLCK locks belong to an open file description,
    // which no close of another descriptor drops.
    const f = line.trim().split(/\s+/);
    if (f[1] === 'POSIX' && f[4] === pid && f[5] !== undefined) out.add(f[5]);
  }
  return out;
}

/** Whether this process holds a POSIX lock on any of `ids` now; undefined where the system does not say. */
export function lockedHere(...ids: FileId[]): boolean | undefined {
  const held = heldKeys();
  if (held === undefined) return undefined;
  return ids.some((id) => held.has(lockKey(id)) || parked.some((p) => p.key === lockKey(id)));
}

/**
 * Closes what `close` closes (a descriptor of the file `id`, or a connection holding one) unless
 * this process holds a POSIX lock on the file now: then it stays open, and is closed once none is
 * held. A lock taken by another thread while the agent read the file is so kept.
 */
export function closeKeepingLocks(id: FileId, close: () => void): void {
  const held = heldKeys();
  if (held === undefined || !held.has(lockKey(id))) return close();
  parked.push({ key: lockKey(id), close });
  retry ??= setInterval(closeParked, RETRY_MS).unref();
}

/** How many descriptors are kept open for a lock on their file. */
export function parkedCount(): number {
  return parked.length;
}

function closeParked(): void {
  const held = heldKeys() ?? new Set<string>();
  for (let i = parked.length - 1; i >= 0; i--) {
    if (held.has(parked[i].key)) continue;
    const [p] = parked.splice(i, 1);
    try {
      p.close();
    } catch {
      // closed already by its owner's end: nothing is left to keep
    }
  }
  if (parked.length === 0 && retry !== undefined) {
    clearInterval(retry);
    retry = undefined;
  }
}
