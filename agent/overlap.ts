import { realFs } from './real-fs';

/** The file a content-changing call works on, named at its start: its real absolute path. */
export interface Target {
  abs: string;
  /** The call only adds at the end (appendFile, a write on an O_APPEND descriptor, an open that cannot truncate). */
  append: boolean;
}

/**
 * Asynchronous calls in flight on one file, as one group from the first call's
 * start to the last one's end. Once two calls of a group overlap, the order
 * in which their writes reached the file is known only to the kernel, and
 * what a call's arguments say it did ("appended at size-after minus length",
 * "wrote this whole content") may be false: each call of a tainted group is
 * journaled from what the file holds when it completes, which is always a
 * state the file really had.
 */
export interface Overlap {
  inflight: number;
  tainted: boolean;
  /** Every call of the group only appended: the file before `end` is as it was journaled, and only bytes past it are new. */
  onlyAppends: boolean;
  /** The file's size as far as the journal has it: at the group's start, then after each entry journaled from disk. */
  end: number | undefined;
  /** The entry that holds the bytes journaled from disk last; a call whose bytes it took waits for that one in sync modes. */
  lastSeq: number;
}

/** Groups of calls in flight, by file. Small: one record per file with a call running, removed when the last ends. */
export class OverlapTable {
  private readonly byFile = new Map<string, Overlap>();

  /** An asynchronous call on `t` starts; call `end` with the result once it completed, whatever the outcome. */
  begin(t: Target): Overlap {
    const live = this.byFile.get(t.abs);
    if (live !== undefined) {
      live.inflight++;
      live.tainted = true;
      if (!t.append) live.onlyAppends = false;
      return live;
    }
    // The size now is where this group's appends begin: nothing of ours can land in between.
    const g: Overlap = { inflight: 1, tainted: false, onlyAppends: t.append, end: t.append ? sizeOf(t.abs) : undefined, lastSeq: 0 };
    this.byFile.set(t.abs, g);
    return g;
  }

  /** The call of `g` on `t` completed. */
  end(t: Target, g: Overlap): void {
    g.inflight--;
    if (g.inflight === 0 && this.byFile.get(t.abs) === g) this.byFile.delete(t.abs);
  }

  /** Whether any asynchronous call is in flight: when none is, a synchronous call need not even name its file. */
  get idle(): boolean {
    return this.byFile.size === 0;
  }

  /** A synchronous call on `t` runs now: it overlaps whatever is in flight there (the thread pool may be writing the file meanwhile). */
  during(t: Target): Overlap | undefined {
    const live = this.byFile.get(t.abs);
    if (live === undefined) return undefined;
    live.tainted = true;
    if (!t.append) live.onlyAppends = false;
    return live;
  }
}

function sizeOf(abs: string): number {
  return realFs.statSync(abs, { throwIfNoEntry: false })?.size ?? 0;
}
