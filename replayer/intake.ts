import { decodeEntry, entryPlace } from '../lib/codec';
import { splitMessage } from '../lib/batch';
import { OBJECT_ROOT, positionLabel, type EntryHeader } from '../lib/entry';
import { BadEntryError, ApplyError } from '../lib/errors';
import { pause } from '../lib/retry';
import { DEFAULTS } from '../lib/settings';
import type { Verifier } from '../lib/signing';
import { journalSubject } from '../lib/subjects';
import { isDiskFailure, type StandbyDiskError } from './disk-error';
import { isOutOfSpace, isPassable } from './errno-policy';
import type { FenceStore } from './fence';
import type { Barriers, Step } from './order/barriers';
import { CheckpointEvents } from './checkpoint-events';
import type { Sequencer } from './order/sequencer';
import type { CheckpointKeeper } from './checkpoints/keeper';
import type { Quarantine } from './quarantine';
import type { ReplaySummary } from './summary';
import type { SourceMessage } from './source/journal-source';
import type { PositionStore } from './state';

/** Where an entry came from: its stream message and, in a batch, its index there (for the quarantine). */
export interface Place { seq: number; subject: string; part?: number }
/**
 * A verified entry: header, data, its raw bytes, and where it came from. `refused`: why an entry
 * that did not decode is refused; its header then says only its place in its journal.
 */
export interface Held { h: EntryHeader; data: Buffer; raw: Buffer; at: Place; refused?: string }

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
  /** Checkpoints and transactions (replayer/order/barriers), built with the sequencer by makeOrder. */
  barriers: Barriers<Held>;
  /** Told of each checkpoint reached, pending or failed (NO_CHECKPOINTS when absent). */
  keeper?: CheckpointKeeper;
  /** Makes what was applied durable now (the replayer's commit); before a checkpoint is reached, and after a transaction. */
  commit?: () => Promise<void>;
  /** Resolves once no commit runs: nothing is applied while one does. */
  idle?: () => Promise<void>;
  quarantine: Quarantine;
  fences: FenceStore;
  summary: ReplaySummary;
  /** Journals whose positions moved since the last commit. */
  changed: Set<string>;
  /** Applies one entry through the appliers; BadEntryError when the entry is refused, ApplyError when applying failed. */
  apply: (h: EntryHeader, data: Buffer, streamSeq: number) => void;
  /** An object (or, with root '' and path "journal <name>", a journal) the standby may now hold differently, and why. */
  doubt: (root: string, path: string, why: string) => void;
  /** Forgets everything since the last good commit after a failed write or fsync; returns the error to throw. */
  distrust: (err: unknown) => StandbyDiskError;
}

/**
 * From a stream message to applied entries: verifies and decodes it, refuses what is bad
 * (quarantined; stop or pass over), puts each entry in its journal's order, applies what is
 * next, and records where each journal and the stream are.
 */
export class Intake {
  /** Steps handed over by the order and not yet all applied; `next` is how far into a group. */
  private backlog: { step: Step<Held>; next: number; streamSeq: number; resumeSeq: number }[] = [];
  /** A transaction was applied since the last commit this intake asked for. */
  private groupDone = false;
  private chain: Promise<void> = Promise.resolve();
  private readonly checkpoints: CheckpointEvents;
  /** The stream position after the last entry taken in this pass. */
  private lastResume = 0;

  constructor(private readonly o: IntakeParts) {
    this.checkpoints = new CheckpointEvents(o);
  }

  /**
   * Takes one message. A full standby disk stops applying with a clear error; when following
   * (not draining) the replayer retries the same entry until space is freed, so nothing is lost.
   */
  take(m: SourceMessage, signal?: AbortSignal): Promise<void> {
    return this.serially(async () => {
      await this.retrying(() => this.handle(m), signal);
      await this.reachDue(signal);
    });
  }

  /**
   * What time and the end of the stream decide: fails the checkpoints waited for too long (or all
   * still waiting, at `endOfStream`), applies what that releases, and reaches what became complete.
   */
  settle(now: number, endOfStream = false, signal?: AbortSignal): Promise<void> {
    return this.serially(async () => {
      await this.o.idle?.();
      await this.retrying(() => {
        this.finishBacklog();
        const { barriers } = this.o;
        this.run(endOfStream ? barriers.endOfStream(now) : barriers.expire(now), this.summaryResume(), this.summaryResume());
      }, signal);
      await this.reachDue(signal);
    });
  }

  /** Applies the entries of journal `name` held behind a hole that is now closed (or passed). */
  release(name: string, streamSeq: number, resumeSeq: number): void {
    this.o.sequencer.release(name, (next) => this.route(next, streamSeq, resumeSeq));
  }

  /** Forgets what waits in the order (the replayer reads again from its last good commit), and holds again what that commit holds. */
  forget(): void {
    this.o.sequencer.clear();
    this.o.barriers.clear();
    this.backlog = [];
    this.checkpoints.forget();
    this.lastResume = 0;
    this.restoreHolds();
  }

  /** The stream was made again and numbers from 1: the last message taken means nothing in it. */
  streamRestarted(): void {
    this.lastResume = 0;
  }

  /** Holds again each journal the positions say is held at a checkpoint (a restart while held). */
  restoreHolds(): void {
    const now = Date.now();
    for (const [j, hold] of Object.entries(this.o.store.positions.holds ?? {})) this.o.barriers.restore(j, hold.mark, now);
    this.checkpoints.take();
  }

  /** Runs `fn` after whatever runs already: a message, a settle. */
  private serially(fn: () => Promise<void>): Promise<void> {
    const next = this.chain.then(fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  /** A full standby disk stops applying with a clear error; when following, the same work is tried again every second until space is freed. */
  private async retrying(fn: () => void, signal?: AbortSignal): Promise<void> {
    for (let said = false; ; said = true) {
      try {
        fn();
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

  /** Where released entries leave the stream position: past the last message taken, once nothing waits any more. */
  private summaryResume(): number {
    return Math.max(this.lastResume, this.o.store.streamSeq);
  }

  private handle(m: SourceMessage): void {
    // What a failure stopped halfway (a transaction, entries a checkpoint released) is finished first.
    this.finishBacklog();
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
    let refused: string | undefined;
    try {
      ({ header: h, data } = decodeEntry(raw));
    } catch (err) {
      const place = this.o.onBadEntry === 'skip' ? entryPlace(raw) : undefined;
      if (place === undefined) return bad((err as Error).message);
      // Its place in its journal is as trustworthy as any entry's here (it verified, or nothing
      // is signed): passed over, with what it changed in doubt. Without it every later entry of
      // the journal would wait for ever behind a gap its agent can fill only with these bytes.
      h = { ...place, r: OBJECT_ROOT, p: '', op: 'rm' };
      data = Buffer.alloc(0);
      refused = `stream message ${m.seq} (${m.subject}): ${(err as Error).message}`;
    }
    // A journal speaks only on its own subject; a header claiming another journal is refused.
    if (m.subject !== journalSubject(this.o.stream, h.j)) bad(`entry of journal "${h.j}" arrived on another journal's subject`);
    const fenced = this.o.fences.check(h);
    if (fenced !== undefined) bad(fenced);
    summary.streamSeq = m.seq;
    this.lastResume = Math.max(this.lastResume, resumeSeq);
    const entry: Held = { h, data, raw, at, refused };
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
        this.route(entry, m.seq, resumeSeq);
        sequencer.applied(entry, (next) => this.route(next, m.seq, resumeSeq));
    }
  }

  /** Hands the next entry of its journal to the barriers and applies what they let through. */
  private route(e: Held, streamSeq: number, resumeSeq: number): void {
    this.run(this.o.barriers.take(e, Date.now()), streamSeq, resumeSeq);
  }

  /** Applies `steps` in order; what a failure leaves is kept and finished before anything else. */
  private run(steps: Step<Held>[], streamSeq: number, resumeSeq: number): void {
    for (const step of steps) this.backlog.push({ step, next: 0, streamSeq, resumeSeq });
    this.finishBacklog();
  }

  private finishBacklog(): void {
    const touched = new Set<string>();
    while (this.backlog.length > 0) {
      const b = this.backlog[0];
      const { step } = b;
      if (step.kind === 'apply') {
        const { h } = step.entry;
        // The journal is held at its checkpoint entry from the same write that records it.
        if (h.op === 'checkpoint') this.o.store.hold(h.j, this.o.barriers.holdOf(h.j));
        this.applyVerified(step.entry, b.streamSeq, b.resumeSeq);
        touched.add(h.j);
      } else {
        // Applied one after another, the journal's position recorded once at the end; the progress
        // inside it is kept apart, so a replayer killed here goes on from the entry it was applying.
        const first = step.entries[0].h;
        if (b.next === 0) b.next = this.appliedBefore(step.journal, first, step.entries);
        for (; b.next < step.entries.length; b.next++) {
          const e = step.entries[b.next];
          if (this.applyOne(e, b.streamSeq)) this.o.summary.applied++;
          this.o.store.applying(step.journal, { e: first.e, s: first.s }, { e: e.h.e, s: e.h.s });
        }
        this.done(step.entries[step.entries.length - 1].h, b.resumeSeq);
        this.groupDone = true;
        touched.add(step.journal);
      }
      this.backlog.shift();
      this.checkpoints.take();
    }
    // A journal whose entries were applied here may have held ones behind a gap that now follow.
    for (const j of touched) this.o.sequencer.release(j, (next) => this.route(next, this.summaryResume(), this.summaryResume()));
  }

  /** How many of a transaction's entries a killed replayer had applied already (the positions say), so as not to apply them twice. */
  private appliedBefore(journal: string, first: EntryHeader, entries: Held[]): number {
    const a = this.o.store.positions.applying?.[journal];
    if (a === undefined || a.from.e !== first.e || a.from.s !== first.s) return 0;
    const i = entries.findIndex((e) => e.h.e === a.through.e && e.h.s === a.through.s);
    if (i >= 0) this.o.log(`journal ${journal}: going on with the transaction a stopped replayer was applying, after ${positionLabel(a.through)} (${i + 1} of ${entries.length} entries applied before)`);
    return i + 1;
  }

  /** After a transaction, one commit; then every checkpoint whose journals all arrived is reached (committed first), and its journals go on. */
  private async reachDue(signal?: AbortSignal): Promise<void> {
    const commit = this.o.commit ?? (() => Promise.resolve());
    if (this.groupDone && !this.checkpoints.hasDue) await commit();
    this.groupDone = false;
    await this.checkpoints.reach(commit, (mark) => this.retrying(() => this.run(this.o.barriers.resolve(mark.id, Date.now()), this.summaryResume(), this.summaryResume()), signal));
  }

  /**
   * Applies an entry that decoded, verified and belongs to its journal. In skip mode, one
   * refused after that (a path outside the roots, an operation this tree cannot take) is
   * quarantined on its own and its place in the journal passed: it is authentic, so its
   * position can be trusted, and the entries after it in the same message still apply.
   */
  private applyVerified(e: Held, streamSeq: number, resumeSeq: number): void {
    const applied = this.applyOne(e, streamSeq);
    this.done(e.h, resumeSeq);
    // Counted once recorded: an entry applied again after its position could not be written is one entry.
    if (applied) this.o.summary.applied++;
  }

  /** Applies `e` without recording it; false when it was quarantined and passed over (skip mode). */
  private applyOne(e: Held, streamSeq: number): boolean {
    if (e.refused !== undefined) {
      this.passRefused(e, e.refused, '', `journal ${e.h.j}`, `its entry ${positionLabel(e.h)} could not be read (${e.refused}), and what it changed is not on the standby`);
      return false;
    }
    try {
      this.o.apply(e.h, e.data, streamSeq);
      return true;
    } catch (err) {
      if (this.o.onBadEntry !== 'skip' || !isPassable(err)) throw err;
      this.passRefused(e, (err as Error).message, e.h.r, e.h.p, `${positionLabel(e.h)} (${e.h.op}) was refused and passed over: ${(err as Error).message}`);
      return false;
    }
  }

  /** Quarantines a refused entry whose place is passed (skip mode): what it would have changed is then in doubt. */
  private passRefused(e: Held, reason: string, root: string, path: string, why: string): void {
    const where = this.o.quarantine.put(e.at.seq, e.at.subject, e.raw, reason, e.at.part);
    this.o.log(`skipped: ${reason}; quarantined in ${where}`);
    this.o.summary.skipped++;
    this.o.doubt(root, path, `${why}; quarantined in ${where}`);
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
