import { define, numbers, strings } from './record';

/** What `understudy watch --name NAME` has done, under `watch.<name>`. */
export interface WatchStatus {
  name: string;
  journaled: number;
  polled: number;
  lastPass?: { startedAt: number; finishedAt: number; objects: number; mended: number; examples: string[] };
  /** Mended by all its full passes since it started (absent from watchers older than this field). */
  mendedTotal?: number;
  time: number;
}

export const watch = define<WatchStatus>((v) => strings(v, 'name') && numbers(v, 'journaled', 'polled', 'time'));
