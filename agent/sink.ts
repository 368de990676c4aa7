import type { Op } from '../lib/entry';

/**
 * Data too large to hold at once (a snapshot of a big file): its size, and a reader the sink
 * calls once per chunk, in order, as each is due, so one chunk is in memory at a time.
 */
export interface Pieces {
  readonly size: number;
  /** Bytes [offset, offset + length); shorter only when the source shrank meanwhile. */
  read(offset: number, length: number): Buffer;
}

/**
 * When a snapshot read its object, for changes journaled from what is on disk rather than
 * from a call's arguments. The host order is taken at the read, not at the journaling: a
 * change made in between must be placed after the snapshot on the standby.
 */
export interface ReadTime {
  /**
   * Wall clock of the read, ms since 1970 (EntryHead.b): set only on snapshots that may be
   * older than a change the standby already has (baseline, watch, repair), which it then skips.
   */
  readonly at?: number;
  /** The host's order stamp of the read (lib/host-clock, EntryHead.o). */
  readonly order: number;
}

/** One change to one object, as every producer hands it to the journal. */
export interface Change {
  /** Root name (OBJECT_ROOT for configuration and jobs). */
  root: string;
  /** Path relative to the root, POSIX separators (the store or queue name for objects). */
  path: string;
  /** What happened, with its header fields. */
  op: Op;
  /** The bytes the operation carries, when they are at hand. */
  data?: Buffer;
  /** Or the bytes read in pieces (a large file); not given with `data`. */
  pieces?: Pieces;
  /** Set by snapshots: when the object was read. */
  read?: ReadTime;
}

/**
 * Where changes go; every producer (the recorder, snapshots, the watcher, configuration and
 * queue objects, baseline, repair) sees only this. A sink reads the change before `record`
 * returns and keeps no reference to it or its buffers: a producer on the hot path may reuse
 * one object from call to call.
 */
export interface JournalSink {
  /** Journals one change; returns the last sequence number it used (unchanged when the change was dropped). */
  record(change: Change): number;
}
