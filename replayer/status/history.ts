import type { StatusReport } from './collect';

/** One point of the status page's lag chart: what status said at `t`. */
export interface Sample {
  /** When it was read (ms since the epoch). */
  t: number;
  journals: Record<string, { lag_entries?: number; lag_seconds?: number }>;
  standbys: Record<string, { lag_entries?: number; lag_bytes?: number }>;
  stream_bytes: number;
}

/** The samples of the last `windowMs`, oldest first; older ones are forgotten as new ones come. */
export class History {
  private readonly kept: Sample[] = [];

  constructor(private readonly windowMs: number) {}

  /** Adds what `report` says at `t`. */
  add(report: StatusReport, t: number): void {
    const journals: Sample['journals'] = {};
    for (const j of report.journals) journals[j.journal] = { lag_entries: j.lag_entries, lag_seconds: j.lag_seconds };
    const standbys: Sample['standbys'] = {};
    for (const s of report.standbys) standbys[s.name] = { lag_entries: s.lag_entries, lag_bytes: s.lag_bytes };
    this.kept.push({ t, journals, standbys, stream_bytes: report.stream.bytes });
    while (this.kept.length > 0 && this.kept[0].t < t - this.windowMs) this.kept.shift();
  }

  /** The samples kept, oldest first. */
  samples(): readonly Sample[] {
    return this.kept;
  }
}
