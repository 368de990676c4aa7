import { define, numbers, strings } from './record';

/**
 * A lost standby's request to be made whole again, under `rebase.<standby key>`: an agent on the
 * primary takes it (state `requested` → `running`, by a compare-and-set on the record's revision,
 * so only one does), journals a baseline of its roots and then runs `verify --repair` against
 * that standby, and says how it ended. The standby clears its lost mark once it is `done`.
 */
export interface RebaseRecord {
  standby: string;
  state: 'requested' | 'running' | 'done' | 'failed';
  /** When the standby asked (ms). */
  requested: number;
  /** The agent that took it: journal and host. */
  by?: string;
  /** When the agent began, and ended (ms). */
  started?: number;
  finished?: number;
  /** What it is doing now, for status (e.g. "baseline: 1200 of 5000 objects", "verify"). */
  step?: string;
  /** The verify's outcome, once it ran: the standby is whole only when equal (or all repaired). */
  differences?: number;
  repaired?: number;
  error?: string;
}

export const rebase = define<RebaseRecord>((v) => strings(v, 'standby', 'state') && numbers(v, 'requested'));
