import type { EntryHeader } from '../../lib/entry';
import { Versions } from '../../replayer/order/versions';
import type { Recorded } from './memory-sink';
import { tempDir } from './temp-dir';

/** The recorded snapshots, in order, that a standby applying them all would skip as stale (Versions.stale), as `op path`. */
export function staleOnStandby(t: { teardown(fn: () => void): void }, changes: readonly Recorded[]): string[] {
  const versions = new Versions(tempDir(t, 'versions'), 0);
  try {
    return changes.filter((c) => {
      const stale = c.at !== undefined && versions.stale(c.root, c.path, c.at);
      if (!stale) versions.note(header(c));
      return stale;
    }).map((c) => `${c.op.op} ${c.path}`);
  } finally {
    versions.close();
  }
}

/** The entry header a journal would give a recorded change (what Versions looks at). */
function header(c: Recorded): EntryHeader {
  return { j: 'watch', e: 1, s: c.first, t: c.at ?? Date.now(), r: c.root, p: c.path, b: c.at, ...c.op } as EntryHeader;
}
