import * as path from 'node:path';
import { readJsonIfExists, replaceFile } from '../lib/durable-file';
import { comparePosition, positionLabel, type EntryHead } from '../lib/entry';
import { promotedBy } from '../lib/state/fence';
import type { FenceRecord } from '../lib/state-bucket';

/** A journal closed by a promotion: nothing after `e.s` is accepted from it any more. */
export type Fence = FenceRecord;

/**
 * The fences a standby holds, kept under --state: those of its own promotion, and those it
 * learned from the state bucket when another standby was promoted. An entry of a fenced
 * journal beyond its fence came from the old primary after a standby took over: split
 * brain, refused and quarantined, never merged.
 */
export class FenceStore {
  readonly file: string;
  fences: Record<string, Fence>;

  constructor(stateDir: string) {
    this.file = path.join(stateDir, 'fence.json');
    this.fences = readJsonIfExists<Record<string, Fence>>(this.file) ?? {};
  }

  /** Why the entry is refused, or undefined when its journal is not fenced past it. */
  check(h: EntryHead): string | undefined {
    const f = this.fences[h.j];
    if (f === undefined || comparePosition(h, f) <= 0) return undefined;
    return `split brain: journal ${h.j} was fenced at ${positionLabel(f)} by the promotion of ${promotedBy(f)} at ${f.at}; entry ${positionLabel(h)} came from the old primary afterwards`;
  }

  /** Fences `name` at `pos` for the promotion of this standby (`standby`, on host `by`) and makes it durable. */
  fence(name: string, pos: { e: number; s: number }, by: string, standby: string): Fence {
    const f: Fence = { e: pos.e, s: pos.s, at: new Date().toISOString(), by, standby };
    this.fences[name] = f;
    this.save();
    return f;
  }

  /**
   * Takes a fence another standby's promotion left in the state bucket, durably, so that a
   * restart without NATS still refuses. A fence already held is kept as it is: one that moved
   * would make entries already applied here, or refused, mean something else. Says whether it
   * was new here, the one held, or another than the one held.
   */
  adopt(name: string, f: Fence): 'new' | 'held' | 'other' {
    const held = this.fences[name];
    if (held !== undefined) return held.e === f.e && held.s === f.s && held.at === f.at ? 'held' : 'other';
    this.fences[name] = { e: f.e, s: f.s, at: f.at, by: f.by, ...(f.standby !== undefined ? { standby: f.standby } : {}) };
    this.save();
    return 'new';
  }

  private save(): void {
    replaceFile(this.file, JSON.stringify(this.fences, null, 2) + '\n');
  }
}
