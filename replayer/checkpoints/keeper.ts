import type { CheckpointCut } from '../../lib/entry';

/** A checkpoint as the standby's order sees it: from the checkpoint entries of its journals. */
export interface CheckpointMark {
  name: string;
  id: string;
  /** When it was taken on the primary (the entry's `t`), ms. */
  time: number;
  cut: CheckpointCut[];
}

/**
 * The seam between the replayer's order (replayer/order: it holds each journal at its
 * checkpoint entry until all are there) and what keeps point-in-time copies of the roots
 * (replayer/checkpoints/store). The order calls `reached` once every journal of a checkpoint
 * was applied through its cut and those positions are durably committed, and before anything
 * after the cut is applied: the standby's tree is the checkpoint's instant then.
 */
export interface CheckpointKeeper {
  /** `mark` is reached: from now on, the first change to each object keeps what it was. */
  reached(mark: CheckpointMark): void;
  /** Some journals of `mark` are at their cut, others not yet. */
  pending(mark: CheckpointMark, waitingFor: string[]): void;
  /** `mark` can never be reached on this standby, and why (a journal passed its cut without its entry, a wait too long). */
  failed(mark: CheckpointMark, why: string): void;
}

/** A keeper that keeps nothing: a standby run without checkpoints, or a test of the order alone. */
export const NO_CHECKPOINTS: CheckpointKeeper = { reached: () => undefined, pending: () => undefined, failed: () => undefined };
