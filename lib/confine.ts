import { ConfinementError } from './errors';

/** Longest relative path an entry may name, and longest single name (Linux NAME_MAX). */
export const MAX_PATH_BYTES = 4096;
export const MAX_NAME_BYTES = 255;

/**
 * Checks a relative path from an entry before anything touches the disk and
 * returns its segments. Refuses absolute paths, `.` and `..`, empty segments,
 * NUL, backslashes and over-long names: the shapes of Zip Slip and of the tar
 * and rsync path CVEs.
 */
export function checkRelPath(rel: string, what = 'path'): string[] {
  if (typeof rel !== 'string' || rel === '') throw new ConfinementError(`${what} is empty`);
  if (Buffer.byteLength(rel) > MAX_PATH_BYTES) throw new ConfinementError(`${what} is longer than ${MAX_PATH_BYTES} bytes`);
  if (rel.includes('\0')) throw new ConfinementError(`${what} ${JSON.stringify(rel)} contains NUL`);
  if (rel.includes('\\')) throw new ConfinementError(`${what} ${JSON.stringify(rel)} contains a backslash`);
  if (rel.startsWith('/')) throw new ConfinementError(`${what} ${JSON.stringify(rel)} is absolute`);
  const segs = rel.split('/');
  for (const s of segs) {
    if (s === '') throw new ConfinementError(`${what} ${JSON.stringify(rel)} has an empty segment`);
    if (s === '.' || s === '..') throw new ConfinementError(`${what} ${JSON.stringify(rel)} has a "${s}" segment`);
    if (Buffer.byteLength(s) > MAX_NAME_BYTES) throw new ConfinementError(`${what} ${JSON.stringify(rel)} has a name longer than ${MAX_NAME_BYTES} bytes`);
  }
  return segs;
}
