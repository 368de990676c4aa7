import { define, numbers, strings } from './record';

/**
 * A standby's committed position, under `standby.<name>` (`standby.<name>.<journal>` for a
 * replayer that applies one journal): written after each fsynced commit, and again while it is
 * idle so that `time` says when it was last active.
 */
export interface StandbyRecord {
  name: string;
  /** The one journal it applies (replay --name), when it applies one. */
  journal?: string;
  host: string;
  pid: number;
  /** The stream sequence it resumes after: everything up to it is applied and fsynced there. */
  streamSeq: number;
  /** Per journal, the last entry applied and fsynced. */
  journals: Record<string, { e: number; s: number }>;
  /** When it last committed applied entries (ms; 0 before its first). */
  committedAt: number;
  /** When it last said so. */
  time: number;
  /** When the stream its streamSeq counts in was created: a position in a stream made again since means nothing. */
  streamCreated?: string;
  /** Set by a replayer that stopped cleanly, when it did (ms): it is stopped at once, not once its record is old. */
  stoppedAt?: number;
  /** Whether its reader had reached the stream's end (streaming) rather than reading what was there (catching up). */
  caughtUp?: boolean;
  /** Its --keep-stream, when given: bytes of the newest entries the stream keeps whatever the standbys committed (the largest of all standbys' wins). */
  keepBytes?: number;
  /** Its --max-standby-lag, when given: past either it is lost (the defaults in DEFAULTS.slots otherwise). */
  maxLag?: { bytes?: number; ms?: number };
  /** Transactions it stages (none of their entries applied yet): per journal, the ids open, when the first began on the primary (ms), how many entries. */
  staging?: { journal: string; ids: string[]; since: number; entries: number }[];
}

export const standby = define<StandbyRecord>((v) =>
  strings(v, 'name') && numbers(v, 'streamSeq', 'committedAt', 'time') && typeof v.journals === 'object' && v.journals !== null);

/** The key of a standby's records: its name, or name.journal for a replayer of one journal. */
export function standbyKey(name: string, journal?: string): string {
  return journal === undefined ? name : `${name}.${journal}`;
}
