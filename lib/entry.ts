/**
 * The journal's vocabulary: one Entry per change to one object, addressed as
 * (root name, relative POSIX path). Every field is checked by the codec on decode.
 */

/** Whole content replaced; `mode` is the permission bits the primary has after the change. */
export interface PutOp { op: 'put'; mode: number }
/** Bytes appended; `at` is the offset they landed at on the primary, so a re-apply is idempotent. */
export interface AppendOp { op: 'append'; at: number }
/** Bytes written at an offset through a descriptor. */
export interface PwriteOp { op: 'pwrite'; at: number }
export interface TruncateOp { op: 'truncate'; size: number }
export interface MkdirOp { op: 'mkdir'; mode: number }
/** Remove whatever is at the path, recursively for a directory. */
export interface RmOp { op: 'rm' }
export interface RenameOp { op: 'rename'; toRoot: string; to: string }
/** A symbolic link; the target is kept verbatim and never followed on the standby. */
export interface SymlinkOp { op: 'symlink'; target: string }
/** A hard link at `path` to the existing object `fromRoot`/`from`. */
export interface LinkOp { op: 'link'; fromRoot: string; from: string }
export interface ChmodOp { op: 'chmod'; mode: number }

/**
 * A configuration change at key level in store `p` (root `OBJECT_ROOT`): `key` is the path
 * below the store's top (empty: the whole store); the data is the JSON of the new value,
 * or nothing when `del` says the key was removed.
 */
export interface ConfigOp { op: 'config'; key: string[]; del?: true }

/** What happened to a job: its life on the primary's queue. */
export type JobEvent = 'enqueued' | 'started' | 'completed' | 'failed';

/**
 * One event in the life of job `id` of queue `p` (root `OBJECT_ROOT`). An `enqueued` entry
 * carries the payload as v8.serialize bytes when `captured`; `front` when it jumped the line
 * (unshift); `label` names a task that is code, not data (a p-queue function).
 */
export interface JobOp { op: 'job'; id: string; ev: JobEvent; captured?: boolean; front?: true; label?: string }

/** One journal's checkpoint entry in a checkpoint: the entry at `e`.`s` of journal `j` is where that journal is cut. */
export interface CheckpointCut { j: string; e: number; s: number }

/**
 * The cut of consistent checkpoint `name` (take `id`) in this journal: everything before this
 * entry is in the checkpoint, nothing after it. `cut` lists every journal of the checkpoint
 * with the position of its own checkpoint entry; the checkpoint is reached on a standby once
 * every one of them is applied through that entry and no further. Root OBJECT_ROOT, `p` the name.
 */
export interface CheckpointOp { op: 'checkpoint'; name: string; id: string; cut: CheckpointCut[] }

/**
 * The beginning or end of transaction `id` in this journal (root OBJECT_ROOT, `p` "tx"). Entries
 * made inside it carry `x: id` in their header; the standby applies them only once `end` came.
 */
export interface TxOp { op: 'tx'; id: string; ev: 'begin' | 'end' }

/**
 * Committed transactions of SQLite database `p`, or its whole content, as pages (lib/sqlite-pages).
 * `w` names the generation positions count in: a WAL's salts (16 hex digits), or `r` in
 * rollback-journal mode; `k` is the position after the entry (a WAL frame, or the file change
 * counter). A change (`wal`, `rollback`) builds on position `bk` of generation `bw`; an `image`
 * on nothing. `ps` is the page size.
 */
export interface SqliteOp { op: 'sqlite'; kind: 'wal' | 'rollback' | 'image'; w: string; k: number; bw?: string; bk?: number; ps: number }

export type FileOp = PutOp | AppendOp | PwriteOp | TruncateOp | MkdirOp | RmOp | RenameOp | SymlinkOp | LinkOp | ChmodOp;
/** Entries that change no object: they order the others (checkpoints, transactions), and no applier takes them. */
export type ControlOp = CheckpointOp | TxOp;
export type Op = FileOp | SqliteOp | ConfigOp | JobOp | ControlOp;
export type OpName = Op['op'];
/** Operations an applier takes. */
export type ApplyOpName = Exclude<OpName, ControlOp['op']>;

/** Operations that carry bytes. */
export const DATA_OPS: ReadonlySet<OpName> = new Set<OpName>(['put', 'append', 'pwrite', 'sqlite', 'config', 'job']);

/**
 * Root name of entries that are not files (configuration, jobs): no root can be named so,
 * so such an entry can never be written into a root; `p` is then the store or queue name.
 */
export const OBJECT_ROOT = '';
/** Operations on configuration and queue objects rather than files. */
export const OBJECT_OPS: ReadonlySet<OpName> = new Set<OpName>(['config', 'job']);
/** Operations the replayer's order takes itself (ControlOp); they are not objects and never reach an applier. */
export const CONTROL_OPS: ReadonlySet<OpName> = new Set<OpName>(['checkpoint', 'tx']);

/** Where one chunk of a large entry's data goes: chunk `i` of `n`, at byte `off` of `total`, begun by entry `first`. */
export interface Chunk { first: number; i: number; n: number; off: number; total: number }

/** Identity and position of an entry in its journal. */
export interface EntryHead {
  /** Journal name (one per process). */
  j: string;
  /** Epoch: one per process start; grows across restarts. */
  e: number;
  /** Sequence: grows by one per entry and never goes back within a journal. */
  s: number;
  /** Wall clock of the change on the primary, ms since 1970. */
  t: number;
  /** Root name. */
  r: string;
  /** Path relative to the root, POSIX separators, no `.` or `..` segments. */
  p: string;
  /** Present when the entry is one chunk of a larger change. */
  c?: Chunk;
  /**
   * Present on snapshots (baseline, watch, repair): when the primary read the object,
   * ms since 1970. The standby skips a snapshot older than a change it already applied.
   */
  b?: number;
  /**
   * The host's order of the change (lib/host-clock: microseconds, shared by every process on
   * the primary). Two journals' entries on one object are ordered by it on the standby.
   * Absent from agents older than it.
   */
  o?: number;
  /** Present on entries made inside a transaction: its id (see TxOp). */
  x?: string;
}

export type EntryHeader = EntryHead & Op;

/** A decoded entry: header plus its bytes (empty for operations without data). */
export interface Entry {
  header: EntryHeader;
  data: Buffer;
}

/** Orders positions: negative when a is before b. */
export function comparePosition(a: { e: number; s: number }, b: { e: number; s: number }): number {
  return a.e !== b.e ? a.e - b.e : a.s - b.s;
}

/** `epoch.seq`, the form positions are shown and de-duplicated in. */
export function positionLabel(h: { j?: string; e: number; s: number }): string {
  return h.j === undefined ? `${h.e}.${h.s}` : `${h.j}.${h.e}.${h.s}`;
}
