import { UnderstudyError } from '../lib/errors';

/**
 * A write or fsync on the standby failed. After a failed fsync the kernel may have dropped
 * the pages it could not write and report success on the next fsync (PostgreSQL's
 * "fsyncgate"), so nothing applied since the last good commit can be trusted: it is
 * never reported applied, and it is written again from that commit.
 */
export class StandbyDiskError extends UnderstudyError {}

/** Errors that say the standby's disk (not the entry, not a full disk) failed a write. */
const DISK_ERRNO: ReadonlySet<string> = new Set(['EIO', 'EROFS', 'EUCLEAN']);

/** Whether `err`, or an error it wraps, is a failure of the standby's disk. */
export function isDiskFailure(err: unknown): boolean {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof StandbyDiskError) return true;
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return DISK_ERRNO.has(code);
  }
  return false;
}
