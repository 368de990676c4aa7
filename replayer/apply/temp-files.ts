import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';

/** Prefix of the replayer's temporary names; a crashed replayer's leftovers are found by it. */
export const TEMP_PREFIX = '.understudy-';
export const TEMP_SUFFIX = '.tmp';

/** A new temporary name beside `target`, for an object built there and then renamed over it. */
export function tempBeside(target: string): string {
  // Unguessable, so nothing planted on the standby can take the name first (O_EXCL would then
  // refuse the entry); randomUUID draws from a cache, randomBytes(6) cost 4 % of a drain.
  return path.join(path.dirname(target), `${TEMP_PREFIX}${randomUUID()}${TEMP_SUFFIX}`);
}

/** Whether a file name is one of the replayer's temporaries (verify leaves them out too). */
export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX) && name.endsWith(TEMP_SUFFIX);
}

/** Removes temporary files a killed replayer left beside the objects it was replacing. */
export function removeTemps(dirs: string[]): number {
  let n = 0;
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (isTempName(e.name)) {
        fs.rmSync(p, { force: true });
        n++;
      }
    }
  };
  dirs.forEach(walk);
  return n;
}
