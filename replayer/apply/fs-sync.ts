import * as fs from 'node:fs';
import { StandbyDiskError } from '../disk-error';

/** The fs applier's group commit: fsyncs by path, many at once. */

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** fsyncs every path of `paths` at once and removes those that succeeded; throws for the first that failed. */
export async function syncAll(paths: Map<string, string>): Promise<void> {
  const list = [...paths];
  const results = await Promise.allSettled(list.map(([p]) => fsyncPath(p)));
  let failed: StandbyDiskError | undefined;
  results.forEach((r, i) => {
    const [p, by] = list[i];
    if (r.status === 'fulfilled') paths.delete(p);
    else failed ??= new StandbyDiskError(`fsync of ${p} (changed by entry ${by}) failed: ${(r.reason as Error).message}`, { cause: r.reason });
  });
  if (failed !== undefined) throw failed;
}

/** fsync by path, on the thread pool so several run at once; a path gone since needs none. */
async function fsyncPath(p: string): Promise<void> {
  let h: fs.promises.FileHandle;
  try {
    h = await fs.promises.open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK); // a FIFO swapped in must not block the commit
  } catch {
    return; // removed or replaced by a link since: whatever replaced it is dirty or touched too
  }
  try {
    await h.sync();
  } finally {
    await h.close();
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
