import { define, numbers, strings } from './record';

/** What `understudy watch --name NAME` has done, under `watch.<name>`. */
export interface WatchStatus {
  name: string;
  journaled: number;
  polled: number;
  lastPass?: { startedAt: number; finishedAt: number; objects: number; mended: number; examples: string[] };
  /** Mended by all its full passes since it started (absent from watchers older than this field). */
  mendedTotal?: number;
  /**
   * Its first look had no saved state: directories whose entries changed after the baseline
   * (`since`) and that were there before it, so what was removed from them before the watch
   * began (at `at`) is not known, and the standby may still have it, until a verify mends it.
   */
  unsure?: { dirs: number; examples: string[]; since: number; at: number };
  time: number;
}

export const watch = define<WatchStatus>((v) => strings(v, 'name') && numbers(v, 'journaled', 'polled', 'time'));

/** What a first look without a saved state could not know, in words (status says it too). */
export function describeUnsure(u: NonNullable<WatchStatus['unsure']>): string {
  return `with no saved state, ${u.dirs} director${u.dirs === 1 ? 'y' : 'ies'} changed after ${new Date(u.since).toISOString()} and existed before it (${u.examples.join(', ')}${u.dirs > u.examples.length ? ', …' : ''}): what was removed from them before this watch began is not known to it, and the standby may still have it`;
}
