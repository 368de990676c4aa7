/**
 * The wall-clock stamps (EntryHead.b) one Snapshotter gives its reads. The standby skips a
 * snapshot stamped at or before a change it applied to the object, or a removal of it or of a
 * directory above it (replayer/order/versions: Versions.stale): two entries of one millisecond
 * cannot be told apart, and the later is taken as the older. A watcher journals such pairs
 * back to back (a directory removed, then the one made at its name and what it holds; an
 * object journaled again at once because it changed again), so a read that would share its
 * millisecond with such an entry of its own waits for the next one. Other reads never wait.
 */
export class ReadStamps {
  private ms = -1;
  /** Objects journaled with stamp `ms`. */
  private readonly objects = new Set<string>();
  /** Objects journaled removed with stamp `ms` (what is below them went too). */
  private readonly removed = new Set<string>();

  /** The stamp for a read of (root, rel) about to begin: now, or the next millisecond when now would be taken as older than an entry already journaled. */
  stamp(root: string, rel: string): number {
    let now = Date.now();
    if (now === this.ms && this.clashes(root, rel)) {
      while ((now = Date.now()) <= this.ms) Atomics.wait(PAUSE, 0, 0, 1);
    }
    return now;
  }

  /** Notes an entry journaled with stamp `at`. */
  journaled(root: string, rel: string, at: number, removal: boolean): void {
    if (at !== this.ms) {
      if (at < this.ms) return; // a read stamped before a newer one was journaled: the newer one's millisecond is what later reads meet
      this.ms = at;
      this.objects.clear();
      this.removed.clear();
    }
    this.objects.add(key(root, rel));
    if (removal) this.removed.add(key(root, rel));
  }

  private clashes(root: string, rel: string): boolean {
    if (this.objects.has(key(root, rel))) return true;
    if (this.removed.size === 0) return false;
    for (let q = rel; q.includes('/'); ) {
      q = q.slice(0, q.lastIndexOf('/'));
      if (this.removed.has(key(root, q))) return true;
    }
    return false;
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));
const key = (root: string, rel: string): string => `${root}\0${rel}`;
