import * as fs from 'node:fs';
import * as path from 'node:path';
import { checkRelPath } from '../lib/confine';
import { ConfinementError } from '../lib/errors';

/**
 * Resolves (root, relative path) to an absolute path on the standby without
 * following any symlink on the way: every directory above the object is checked
 * with lstat, and made when missing. The object itself is never followed either;
 * callers act on it with rename, O_NOFOLLOW or lstat.
 *
 * What remains: between our lstat of a directory and the call that uses it,
 * another process on the standby could swap that directory for a link. Only
 * the replayer should write under a standby root; see SECURITY notes in README.
 */
export function resolveInRoot(rootDir: string, rel: string, makeParents: boolean): string {
  const segs = checkRelPath(rel);
  let dir = rootDir;
  for (const seg of segs.slice(0, -1)) {
    dir = path.join(dir, seg);
    let st: fs.Stats | undefined;
    try {
      st = fs.lstatSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !makeParents) throw err;
    }
    if (st === undefined) {
      fs.mkdirSync(dir, { mode: 0o755 });
    } else if (st.isSymbolicLink()) {
      throw new ConfinementError(`${rel}: "${path.relative(rootDir, dir)}" is a symlink on the standby; refusing to write through it`);
    } else if (!st.isDirectory()) {
      // Not an escape, a mismatch: the standby has a file where the primary has a directory.
      throw Object.assign(new Error(`${rel}: "${path.relative(rootDir, dir)}" is not a directory on the standby`), { code: 'ENOTDIR' });
    }
  }
  return path.join(dir, segs[segs.length - 1]);
}
