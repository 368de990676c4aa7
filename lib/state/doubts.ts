import { define, numbers, strings } from './record';

/** Objects a standby may hold differently from the primary, and why, under `doubts.<standby>`. */
export interface DoubtsReport {
  standby: string;
  count: number;
  /** The first few, for the status line; `count` says how many in all. */
  objects: { root: string; path: string; why: string; at: number }[];
  time: number;
}

export const doubts = define<DoubtsReport>((v) => strings(v, 'standby') && numbers(v, 'count', 'time') && Array.isArray(v.objects));
