import { define, numbers, strings } from './record';

/**
 * How far a journal's spool may be trimmed, under `trim.<journal>`: the lowest position every
 * standby that still counts (registered, not lost) committed. Left by the standbys, which
 * compute it from each other's `standby` records; the agent trims its spool below it only.
 */
export interface TrimRecord {
  e: number;
  s: number;
  /** The standby that said so, and when (ms). */
  by: string;
  time: number;
}

export const trim = define<TrimRecord>((v) => numbers(v, 'e', 's', 'time') && strings(v, 'by'));
