import { define, numbers, strings } from './record';

/**
 * A standby that fell further behind than its limit allows, under `lost.<standby key>` (the key
 * of its `standby` record): the stream and the spools no longer keep what it lacks. Left by the
 * standby that trimmed past it; removed by the lost standby itself once a baseline and a verify
 * made it whole again. Like PostgreSQL's `wal_status = lost`.
 */
export interface LostRecord {
  /** The standby's key (`standby.<key>`). */
  standby: string;
  /** When it was marked lost (ms). */
  since: number;
  /** Why, in words: which limit it passed and by how much. */
  reason: string;
  /** The standby that marked it. */
  by: string;
  /** Its committed stream position when it was marked. */
  streamSeq: number;
}

export const lost = define<LostRecord>((v) => strings(v, 'standby', 'reason', 'by') && numbers(v, 'since', 'streamSeq'));
