/**
 * The application thread's part of a checkpoint's commit: only its journal allocates sequence
 * numbers, so the checkpoint entry is written here, at the position the worker promised, or
 * refused when that position is no longer free. The worker sends the order on the control port
 * before it thaws the gate, and the gate makes whoever passes next write it first
 * (agent/freeze, COMMIT_PENDING); an idle thread writes it from the port's message event.
 */
import type { MessagePort } from 'node:worker_threads';
import { OBJECT_ROOT, type CheckpointCut } from '../lib/entry';
import type { JournalSink } from './sink';

/** Worker → application thread: write checkpoint `name`'s entry at `e`.`s`. */
export interface CommitOrder { kind: 'commit'; id: string; name: string; cut: CheckpointCut[]; e: number; s: number }

/** Application thread → worker: what became of a CommitOrder. */
export type CommitAnswer = { kind: 'written'; id: string; s: number } | { kind: 'refused'; id: string; why: string };

/** True for a CommitOrder (the port carries nothing else now; a later kind is ignored). */
function isCommitOrder(m: unknown): m is CommitOrder {
  const o = m as Partial<CommitOrder> | null;
  return typeof o === 'object' && o !== null && o.kind === 'commit' && typeof o.id === 'string' && typeof o.name === 'string'
    && Array.isArray(o.cut) && typeof o.e === 'number' && typeof o.s === 'number';
}

/** What the journal says of its position. */
export interface JournalPlace { readonly epoch: number; readonly lastSeq: number }

/** The handler of the control port: writes each checkpoint entry ordered, and answers on `port`. */
export function checkpointEntryWriter(journal: JournalPlace, sink: JournalSink, port: MessagePort): (m: unknown) => void {
  return (m) => {
    if (!isCommitOrder(m)) return;
    port.postMessage(writeEntry(journal, sink, m) satisfies CommitAnswer);
  };
}

/** Writes the entry of `order` when the journal stands where it was frozen. */
export function writeEntry(journal: JournalPlace, sink: JournalSink, order: CommitOrder): CommitAnswer {
  const { id, name, cut, e, s } = order;
  if (journal.epoch !== e || journal.lastSeq + 1 !== s) {
    return { kind: 'refused', id, why: `the journal is at ${journal.epoch}.${journal.lastSeq}, not at ${e}.${s - 1} where it was frozen: a change was journaled after the freeze ended (its deadline passed first)` };
  }
  try {
    const seq = sink.record({ root: OBJECT_ROOT, path: name, op: { op: 'checkpoint', name, id, cut } });
    if (seq === s) return { kind: 'written', id, s };
    return { kind: 'refused', id, why: seq === s - 1 ? 'the spool is full: the checkpoint entry was dropped' : `the entry went to seq ${seq}, not ${s}` };
  } catch (err) {
    return { kind: 'refused', id, why: `the checkpoint entry could not be journaled: ${(err as Error).message}` };
  }
}
