import { ApplyError, BadEntryError } from '../lib/errors';

/**
 * Which failures of applying are the entry's fault and which the standby's: the first may be
 * passed over in skip mode, the second never (its agent would drop an entry not applied).
 */

/** The errno of `err` or of an error it wraps (an ApplyError carries the system error as its cause). */
export function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** A full disk, whether applying (an ApplyError with the system error as its cause) or recording (the bare error). */
export function isOutOfSpace(err: unknown): boolean {
  const code = errnoOf(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Failures of applying that come from what the entry asks for, not from the standby:
 * a rename into itself or over a non-empty directory, a path through a file, an offset
 * past the largest file, too many links. In skip mode such an entry is passed over like
 * a refused one. Everything else (ENOSPC, EIO, EROFS, EACCES, EPERM, ENOENT, …) says
 * something about the standby, and stops the replayer in both modes: passing over it
 * would report as applied an entry that is not, and its agent would drop it.
 */
export const CONTENT_ERRNO: ReadonlySet<string> = new Set(['ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EEXIST', 'EINVAL', 'ENAMETOOLONG', 'EFBIG', 'EMLINK']);

/** Whether an error applying a verified entry lets skip mode pass over the entry. */
export function isPassable(err: unknown): boolean {
  if (err instanceof BadEntryError) return true;
  const code = errnoOf(err);
  return err instanceof ApplyError && code !== undefined && CONTENT_ERRNO.has(code);
}
