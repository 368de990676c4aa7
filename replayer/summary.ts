/** What a run of the replayer did: the counts `understudy replay` and promote report. */
export interface ReplaySummary {
  applied: number;
  duplicates: number;
  /** Bad entries quarantined and passed over (--on-bad-entry=skip). */
  skipped: number;
  /** Snapshots (baseline, watch, repair) not applied because the standby had a newer version. */
  stale: number;
  /** Entries another journal's later change had made irrelevant when they arrived (host order, EntryHead.o). */
  superseded: number;
  /** Objects the standby cannot be sure equal the primary's: changed by several journals in an order it could not reproduce. */
  inDoubt: number;
  streamSeq: number;
}

/** A summary with nothing done yet. */
export function emptySummary(): ReplaySummary {
  return { applied: 0, duplicates: 0, skipped: 0, stale: 0, superseded: 0, inDoubt: 0, streamSeq: 0 };
}
