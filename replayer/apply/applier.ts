import type { EntryHeader } from '../../lib/entry';
import type { WriteFn } from '../write';
import type { OrderVerdict } from '../order/versions';

/**
 * The seam between the replayer's ordering and what an entry changes on the standby: each
 * kind of object (files under the roots, configuration stores, queues) has one Applier, and
 * the registry (./registry) hands every entry to the one that takes it.
 */

/** An entry's bytes: in memory, or staged in a file when they came in chunks. */
export type Data = { buf: Buffer; file?: undefined } | { file: string; buf?: undefined };

/**
 * What applying one entry came to: `stale` is a snapshot older than what the standby has,
 * `superseded` a change another journal's later change made irrelevant; both change nothing,
 * and the replayer counts them.
 */
export type Outcome = 'applied' | 'stale' | 'superseded';

/** Applies the entries of one kind of object, durably at each group commit. */
export interface Applier {
  /** Its name in the registry and in errors (fs, config, queue). */
  readonly name: string;
  /** True for the entries this applier takes (by operation). */
  handles(h: EntryHeader): boolean;
  /** Applies one entry; throws BadEntryError or ConfinementError for one it refuses, anything else when the standby fails. */
  apply(h: EntryHeader, data: Data): Outcome;
  /** Makes every change applied since the last call durable (before the positions that cover them are recorded). */
  sync(): Promise<void>;
  /** Releases its files; what was not synced is applied again from the last commit. */
  close(): void;
  /** Removes what a killed replayer left behind (temporary files); returns how many it removed. */
  cleanUp(): number;
  /**
   * Told before another applier applies `h`: an applier that stages what it applies (a
   * database's pages) writes what `h` would otherwise overtake, and forgets what `h` replaces.
   */
  beforeOther?(h: EntryHeader): void;
}

/** Where the last applied entry of each journal stands; the replayer's position store. */
export type AppliedPosition = (journal: string) => { e: number; s: number } | undefined;

/** When each object last changed on the standby, in the primary's time (replayer/versions). */
export interface SnapshotMarks {
  /** True when a snapshot of r/p read at `b` by journal `j` is older than what the standby has (or cannot be told apart from it); `j`'s own marks do not count. */
  stale(r: string, p: string, b: number, j: string): boolean;
  /** Whether a `stale` answer for `b` came from forgotten history rather than a known change. */
  undecided(b: number): boolean;
}

/**
 * The replayer's cross-journal order of one object (host order, EntryHead.o): asked before a
 * change that is not stale is applied, told once it is. The replayer owns it; an applier only
 * keeps the sequence "check, place, apply, note".
 */
export interface ChangeOrder {
  /** Whether `h` applies, is passed over (skip), or applies with its object in doubt. */
  place(h: EntryHeader): OrderVerdict;
  /** `h` was applied, with the verdict `place` gave it; `doubt`: what applying it found the standby could not match. */
  applied(h: EntryHeader, verdict: OrderVerdict, doubt?: ObjectDoubt): void;
}

/** An object the applier found it could not make certainly equal to the primary's, and why. */
export interface ObjectDoubt {
  r: string;
  p: string;
  why: string;
}

/** A standby with no history (a test of appliers alone): no snapshot is stale and every change is in order. */
export const NO_HISTORY: { readonly snapshots: SnapshotMarks; readonly order: ChangeOrder } = {
  snapshots: { stale: () => false, undecided: () => false },
  order: { place: () => 'apply', applied: () => undefined },
};

/**
 * How a change treats the object it is about to change, for whoever keeps what it was (the
 * checkpoint store): `replace` removes or replaces its name (rename over it, rm, a put renamed
 * in), `inPlace` changes its inode (append, pwrite, truncate, chmod), `move` gives its inode
 * another name (a rename's source).
 */
export type ChangeKind = 'replace' | 'inPlace' | 'move';

/**
 * Called before a change to (root, rel) is made: `root` is a root name, or OBJECT_ROOT for a
 * replica file under --state (`rel` relative to it). Returns once what it keeps is durable.
 */
export type KeepFn = (root: string, rel: string, how: ChangeKind) => void;

/** Keeps nothing: a standby without checkpoints. */
export const KEEP_NOTHING: KeepFn = () => undefined;

/** What an applier is built from: the standby's roots and state directory, and the replayer's collaborators. */
export interface ApplierContext {
  /** Root name to its real directory on the standby. */
  roots: ReadonlyMap<string, string>;
  /** --state: the replicas of configuration stores and queues live here. */
  stateDir: string;
  /** The write(2) the applied files go through (a test injects a full disk here). */
  write: WriteFn;
  log: (line: string) => void;
  snapshots: SnapshotMarks;
  order: ChangeOrder;
  applied: AppliedPosition;
  /** Told before each change (checkpoints keep what the object was); nothing by default. */
  keep?: KeepFn;
  /** Makes what `keep` kept durable; the group commit calls it before the appliers' fsyncs. */
  keepSync?: () => void;
}
