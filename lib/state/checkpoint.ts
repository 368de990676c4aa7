import type { CheckpointCut } from '../entry';
import { define, numbers, strings } from './record';

/** A consistent checkpoint as its taker (`understudy checkpoint`) left it, under `checkpoint.<name>`: the latest take of that name. */
export interface CheckpointRecord {
  name: string;
  /** One per take: the id its checkpoint entries carry. */
  id: string;
  state: 'preparing' | 'taken' | 'failed';
  /** When it was begun and ended, ms. */
  started: number;
  finished?: number;
  /** Each journal's checkpoint entry (taken), or the ones that had answered (failed). */
  cut: CheckpointCut[];
  /** Live agents that did not answer or refused, each with why. */
  missing?: { journal: string; why: string }[];
  /** The longest any agent held its application's changes, ms. */
  frozenMs?: number;
  error?: string;
}

export const checkpoint = define<CheckpointRecord>((v) => strings(v, 'name', 'id', 'state') && numbers(v, 'started') && Array.isArray(v.cut));

/** One checkpoint as one standby holds it. */
export interface StandbyCheckpoint {
  name: string;
  id: string;
  /** When it was taken on the primary, ms. */
  time: number;
  cut: CheckpointCut[];
  /** When the standby reached it (every journal applied through its cut), ms; absent while pending. */
  reachedAt?: number;
  /** Journals not yet at their cut, while pending. */
  waitingFor?: string[];
  /** What keeping it costs on the standby so far. */
  bytes?: number;
  /** Why it can never be reached (a journal passed its cut without its entry, a wait too long). */
  failed?: string;
}

/** What one standby holds of checkpoints, under `checkpoints.<standby>`: status and the status page read it. */
export interface StandbyCheckpoints {
  standby: string;
  time: number;
  checkpoints: StandbyCheckpoint[];
}

export const checkpoints = define<StandbyCheckpoints>((v) => strings(v, 'standby') && numbers(v, 'time') && Array.isArray(v.checkpoints));
