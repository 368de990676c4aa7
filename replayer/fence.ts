import * as path from 'node:path';
import { readJsonIfExists, replaceFile } from '../lib/durable-file';
import { comparePosition, positionLabel, type EntryHead } from '../lib/entry';

/** A journal closed by a promotion: nothing after `e.s` is accepted from it any more. */
export interface Fence {
  e: number;
  s: number;
  at: string;
  by: string;
}

/**
 * The fences of a standby that was promoted, kept under --state. An entry of a
 * fenced journal beyond its fence came from the old primary after the standby
 * took over: split brain, refused and quarantined, never merged.
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
    return `split brain: journal ${h.j} was fenced at ${positionLabel(f)} by the promotion of ${f.by} at ${f.at}; entry ${positionLabel(h)} came from the old primary afterwards`;
  }

  /** Fences `name` at `pos` and makes it durable. */
  fence(name: string, pos: { e: number; s: number }, by: string): Fence {
    const f: Fence = { e: pos.e, s: pos.s, at: new Date().toISOString(), by };
    this.fences[name] = f;
    replaceFile(this.file, JSON.stringify(this.fences, null, 2) + '\n');
    return f;
  }
}
