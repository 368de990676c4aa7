import { decodeEntry } from '../lib/codec';
import { splitMessage } from '../lib/batch';
import { positionLabel, type EntryHeader } from '../lib/entry';
import { BadEntryError, ApplyError } from '../lib/errors';
import { pause } from '../lib/retry';
import { DEFAULTS } from '../lib/settings';
import type { Verifier } from '../lib/signing';
import { journalSubject } from '../lib/subjects';
import { isDiskFailure, type StandbyDiskError } from './disk-error';
import { isOutOfSpace, isPassable } from './errno-policy';
import type { FenceStore } from './fence';
import type { Sequencer } from './order/sequencer';
import type { Quarantine } from './quarantine';
import type { ReplaySummary } from './summary';
import type { SourceMessage } from './source/journal-source';
import type { PositionStore } from './state';

/** Where an entry came from: its stream message and, in a batch, its index there (for the quarantine). */
export interface Place { seq: number; subject: string; part?: number }
/** A verified entry: header, data, its raw bytes, and where it came from. */
export interface Held { h: EntryHeader; data: Buffer; raw: Buffer; at: Place }

/** What the intake works with; the replayer owns each. */
export interface IntakeParts {
  stream: string;
  verifier?: Verifier;
  onBadEntry?: 'halt' | 'skip';
  /** A full standby disk is waited out (following) rather than thrown (draining). */
  waitsOut: boolean;
  log: (line: string) => void;
  store: PositionStore;
  sequencer: Sequencer<Held>;
  quarantine: Quarantine;
  fences: FenceStore;
  summary: ReplaySummary;
  /** Journals whose positions moved since the last commit. */
  changed: Set<string>;
  /** Applies one entry through the appliers; BadEntryError when the entry is refused, ApplyError when applying failed. */
  apply: (h: EntryHeader, data: Buffer, streamSeq: number) => void;
  /** Forgets everything since the last good commit after a failed write or fsync; returns the error to throw. */
  distrust: (err: unknown) => StandbyDiskError;
}

/**
 * From a stream message to applied entries: verifies and decodes it, refuses what is bad
 * (quarantined; stop or pass over), puts each entry in its journal's order, applies what is
 * next, and records where each journal and the stream are.
 */
export class Intake {
  constructor(private readonly o: IntakeParts) {}

  /**
   * Takes one message. A full standby disk stops applying with a clear error; when following
   * (not draining) the replayer retries the same entry until space is freed, so nothing is lost.
   */
  async take(m: SourceMessage, signal?: AbortSignal): Promise<void> {
    for (let said = false; ; said = true) {
      try {
        this.handle(m);
        if (said) this.o.log('space is available again; applying resumed');
        return;
      } catch (err) {
        if (isDiskFailure(err)) throw this.o.distrust(err);
        if (!this.o.waitsOut || !isOutOfSpace(err) || signal?.aborted === true) throw err;
        if (!said) this.o.log(`${(err as Error).message}; waiting for space on the standby, retrying every second`);
        await pause(DEFAULTS.replay.diskRetryMs);
      }
    }
  }

  /** Applies the entries of journal `name` held behind a hole that is now closed (or passed). */
  release(name: string, streamSeq: number, resumeSeq: number): void {
    this.o.sequencer.release(name, (next) => this.applyVerified(next, streamSeq, resumeSeq));
  }

  private handle(m: SourceMessage): void {
    try {
      this.accept(m);
    } catch (err) {
      if (!(err instanceof BadEntryError)) throw err;
      const where = this.o.quarantine.put(m.seq, m.subject, m.data, err.message);
      if (this.o.onBadEntry !== 'skip') throw new BadEntryError(`${err.message}; quarantined in ${where}; stopping (--on-bad-entry=skip passes over such entries)`);
      this.o.log(`skipped: ${err.message}; quarantined in ${where}`);
      this.passOver(m);
    }
  }

  /** Verifies, decodes and applies one stream message; BadEntryError for anything wrong with the entry itself. */
  private accept(m: SourceMessage): void {
    const bad = (why: string): never => {
      throw new BadEntryError(`stream message ${m.seq} (${m.subject}): ${why}`);
    };
    if (this.o.verifier !== undefined) {
      const why = this.o.verifier.check(m.data, m.signature);
      if (why !== undefined) bad(why);
    }
    let parts: Buffer[];
    try {
      parts = splitMessage(m.data);
    } catch (err) {
      return bad((err as Error).message);
    }
    // Until its last entry is applied, a message is not behind us: a restart reads it again.
    for (let i = 0; i < parts.length; i++) {
      const at: Place = { seq: m.seq, subject: m.subject, part: parts.length > 1 ? i : undefined };
      this.acceptEntry(m, parts[i], at, i === parts.length - 1 ? m.seq : m.seq - 1, bad);
    }
  }

  /** One entry of message `m`; `resumeSeq` is the stream position to record once it is applied. */
  private acceptEntry(m: SourceMessage, raw: Buffer, at: Place, resumeSeq: number, bad: (why: string) => never): void {
    const { store, sequencer, summary } = this.o;
    let h: EntryHeader;
    let data: Buffer;
    try {
      ({ header: h, data } = decodeEntry(raw));
    } catch (err) {
      return bad((err as Error).message);
    }
    // A journal speaks only on its own subject; a header claiming another journal is refused.
    if (m.subject !== journalSubject(this.o.stream, h.j)) bad(`entry of journal "${h.j}" arrived on another journal's subject`);
    const fenced = this.o.fences.check(h);
    if (fenced !== undefined) bad(fenced);
    summary.streamSeq = m.seq;
    const entry: Held = { h, data, raw, at };
    const decision = sequencer.offer(entry);
    switch (decision.kind) {
      case 'duplicate':
        summary.duplicates++;
        if (!sequencer.holding) store.skip(resumeSeq);
        return;
      case 'held':
        return;
      case 'refused':
        throw new ApplyError(decision.reason);
      case 'next':
        if (decision.restartsAfter !== undefined) {
          this.o.log(`journal ${h.j}: epoch ${h.e} restarts numbering at ${h.s} after ${positionLabel(decision.restartsAfter)} (its spool was lost or replaced)`);
        }
        this.applyVerified(entry, m.seq, resumeSeq);
        sequencer.applied(entry, (next) => this.applyVerified(next, m.seq, resumeSeq));
    }
  }

  /**
   * Applies an entry that decoded, verified and belongs to its journal. In skip mode, one
   * refused after that (a path outside the roots, an operation this tree cannot take) is
   * quarantined on its own and its place in the journal passed: it is authentic, so its
   * position can be trusted, and the entries after it in the same message still apply.
   */
  private applyVerified(e: Held, streamSeq: number, resumeSeq: number): void {
    let applied = true;
    try {
      this.o.apply(e.h, e.data, streamSeq);
    } catch (err) {
      if (this.o.onBadEntry !== 'skip' || !isPassable(err)) throw err;
      const where = this.o.quarantine.put(e.at.seq, e.at.subject, e.raw, (err as Error).message, e.at.part);
      this.o.log(`skipped: ${(err as Error).message}; quarantined in ${where}`);
      this.o.summary.skipped++;
      applied = false;
    }
    this.done(e.h, resumeSeq);
    // Counted once recorded: an entry applied again after its position could not be written is one entry.
    if (applied) this.o.summary.applied++;
  }

  /** Records that the journal is past `h`. */
  private done(h: EntryHeader, resumeSeq: number): void {
    const { store } = this.o;
    // While entries are held, resuming must start before them: the stream position stays put.
    store.record(h.j, { e: h.e, s: h.s, t: h.t }, this.o.sequencer.resumeAt(resumeSeq, store.streamSeq));
    this.o.changed.add(h.j);
  }

  /**
   * After a message that did not verify is quarantined in skip mode: consume it, and nothing
   * more. No journal position is taken from it: its bytes are not trusted, and its
   * Nats-Msg-Id is not even signed (a forged id "app.9999999999.1" would otherwise make every
   * genuine entry after it a duplicate, and agents would trim their spools to it). A genuine
   * entry lost this way leaves a gap: later entries are held and its agent asked to resend it.
   */
  private passOver(m: SourceMessage): void {
    this.o.summary.skipped++;
    this.o.summary.streamSeq = m.seq;
    if (!this.o.sequencer.holding) this.o.store.skip(m.seq);
  }
}
