import { define, numbers } from './record';

/** What a standby applied and fsynced of a journal, under `applied.<journal>`. */
export interface AppliedRecord {
  e: number;
  s: number;
  /** When the entry was written on the primary (ms). */
  t: number;
  appliedAt: number;
  /** Why the standby's disk failed a write or fsync: it holds nothing past (e, s) for sure. */
  failing?: string;
}

export const applied = define<AppliedRecord>((v) => numbers(v, 'e', 's'));
