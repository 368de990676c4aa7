import type { KV } from '@nats-io/kv';
import { ApplyError, UnderstudyError } from '../lib/errors';
import { pause } from '../lib/retry';
import * as os from 'node:os';
import { DEFAULTS } from '../lib/settings';
import { standbyKey, writeState, type DoubtsReport, type StandbyRecord } from '../lib/state-bucket';
import { StandbyDiskError } from './disk-error';
import type { StagedTransaction } from './order/barriers';
import type { PositionStore } from './state';
import type { ReplaySummary } from './summary';
import type { Versions } from './order/versions';
import type { AppliedRecord } from '../lib/state/applied';

/** What a commit makes durable and reports; the replayer owns each. */
export interface CommitParts {
  /** This standby's name in the state bucket (replay --standby, UNDERSTUDY_STANDBY, or the host's). */
  standby: string;
  /** The one journal this replayer applies (--name), if it applies one. */
  journal?: string;
  log: (line: string) => void;
  store: PositionStore;
  versions: Versions;
  /** What waits in the order (gaps, checkpoints, transactions): forgotten when the replayer reads again from its last good commit. */
  order: { forget(): void };
  /** Transactions being staged, for this standby's record (status). */
  staging?: () => StagedTransaction[];
  summary: ReplaySummary;
  /** Journals whose positions moved since the last commit. */
  changed: Set<string>;
  /** fsyncs what the appliers wrote since the last commit. */
  syncApplied: () => Promise<void>;
  /** Stops the consumer of the running pass (a commit failed on the disk). */
  stopPass: () => void;
  /** Whether the reader reached the stream's end: streaming, not catching up (status). */
  caughtUp: () => boolean;
  /** This standby's --max-standby-lag, left in its record for whoever judges it. */
  maxLag?: { bytes?: number; ms?: number };
  /** This standby's --keep-stream, left in its record. */
  keepBytes?: number;
}

/**
 * The commit: makes what was applied durable (the appliers' files, then the positions), then
 * reports it to the agents, whose spools may drop what is below. After a failed write or
 * fsync nothing since the last good commit is trusted: it is rolled back, said, published as
 * failing, and applied again.
 */
export class Committer {
  /** The state bucket, once open: reports go there. */
  kv: KV | undefined;
  /** When applied changes were last made durable (ms). */
  lastCommitAt = 0;
  /** Set when a write or fsync failed since the last good commit: nothing since it may be committed. */
  distrusted: StandbyDiskError | undefined;
  /** The put that tells `understudy status` the standby's disk failed (awaited before disconnecting). */
  failurePut: Promise<void> = Promise.resolve();
  private committing: Promise<void> = Promise.resolve();
  /** A commit that fails while following is tried again at the next tick, said once. */
  private commitFailing = false;
  /** A commit failed on the disk while the consumer ran: it must start again from the last good commit. */
  private rewind: StandbyDiskError | undefined;
  /** Entries applied as of the last good commit (a rollback applies the later ones again). */
  private appliedAtCommit = 0;
  private lastDiskFailure: string | undefined;
  /** Journals published as failing, to be published again without the mark once a commit succeeds. */
  private failingJournals: string[] = [];
  /** What was last said of the doubts in the state bucket. */
  private doubtsSaid = '';
  /** When the standby's record was last written. */
  private standbySaidAt = 0;
  /** Journals committed and not yet reported to the state bucket. */
  private readonly unreported = new Set<string>();
  /** The report running, if any. */
  private reporting: Promise<void> | undefined;
  /** Tells the journal's agents at once what a commit made durable (lib/subjects' appliedSubject); set with kv. */
  announce: ((journal: string, applied: AppliedRecord) => void) | undefined;

  constructor(private readonly o: CommitParts) {}

  /** Resolves once the commit running (if any) has ended: no entry is applied while one runs. */
  idle(): Promise<void> {
    return this.committing;
  }

  /** Whether a commit failed on the disk since the pass began: the consumer must stop and read again. */
  get mustRewind(): boolean {
    return this.rewind !== undefined;
  }

  /** The disk failure that made the pass stop, once, or undefined. */
  takeRewind(): StandbyDiskError | undefined {
    const rewind = this.rewind;
    this.rewind = undefined;
    return rewind;
  }

  /**
   * A write or fsync on the standby failed: everything applied since the last good commit is
   * forgotten (positions, version marks, entries held), so none of it is committed or reported,
   * and the consumer reads it again from there. Returns the error to throw, in one line.
   */
  distrust(err: unknown): StandbyDiskError {
    const why = err instanceof UnderstudyError ? err.message : `${(err as Error).message}`;
    const seen = Object.keys(this.o.store.positions.journals);
    try {
      this.o.store.rollback();
      this.o.versions.rollback();
    } catch (again) {
      // Not even the way back can be written: stop, and let a restart resume from committed.json.
      this.distrusted = new StandbyDiskError(why, { cause: err });
      throw new ApplyError(`${why}; then rolling back to the last good commit failed too (${(again as Error).message}); stopping`, { cause: err });
    }
    this.o.order.forget();
    this.o.summary.applied = this.appliedAtCommit;
    this.o.summary.streamSeq = this.o.store.streamSeq;
    // Until something is applied again there is nothing to commit: a commit now would fsync
    // the same failed pages (which may read as clean) and say the standby recovered.
    this.o.changed.clear();
    const failure = new StandbyDiskError(`${why}; nothing applied since the last good commit (stream position ${this.o.store.streamSeq}) is reported applied`, { cause: err });
    this.distrusted = failure;
    this.failingJournals = [...new Set([...this.failingJournals, ...seen])];
    this.failurePut = this.failurePut.then(() => this.publishFailure(seen, why));
    return failure;
  }

  /**
   * Republishes each journal's last good commit with the reason the standby's disk failed, so
   * `understudy status` says the standby is failing rather than merely behind. The position
   * stays that of the last good commit: strong mode and spool trimming see nothing new.
   */
  private async publishFailure(journals: string[], why: string): Promise<void> {
    const kv = this.kv;
    if (kv === undefined) return;
    for (const name of journals) {
      // A journal first applied after the last good commit has nothing there: position 0.0 covers no entry.
      const pos = this.o.store.positions.journals[name] ?? { e: 0, s: 0, t: 0 };
      await writeState(kv, 'applied', name, { ...pos, appliedAt: this.lastCommitAt, failing: why }).catch(() => undefined);
    }
  }

  /** Following: says what failed, and applies again from the last good commit after a pause. */
  async afterDiskFailure(err: StandbyDiskError, signal?: AbortSignal): Promise<void> {
    // A disk that keeps failing is said once, not every second.
    if (err.message !== this.lastDiskFailure) this.o.log(`${err.message}; applying it again from there, every second until it succeeds`);
    this.lastDiskFailure = err.message;
    await pause(DEFAULTS.replay.diskRetryMs, signal);
  }

  /**
   * One commit at a time, and no entry applied while one makes things durable: what it records
   * as applied is exactly what was applied when it began. Its report (the state bucket's puts)
   * runs after, while entries are applied again; the promise resolves once that is done too.
   */
  commit(): Promise<void> {
    const durable = this.committing.then(() => this.makeDurable());
    this.committing = durable.then(() => undefined, () => undefined);
    return durable.then((names) => this.report(names));
  }

  /**
   * A commit that fails while following (a full disk under --state) is tried again at the
   * next tick, said once; nothing it covers is reported applied until it succeeds.
   */
  tryCommit(): Promise<void> {
    return this.commit().then(() => {
      if (this.commitFailing) this.o.log('applied positions are recorded again');
      this.commitFailing = false;
    }, (err: Error) => {
      if (err instanceof StandbyDiskError) return; // the consumer applies again from the last good commit
      if (!this.commitFailing) this.o.log(`cannot record the applied positions (${err.message}); retrying`);
      this.commitFailing = true;
    });
  }

  /**
   * Makes applied changes and positions durable, then announces them to the agents at once
   * (strong mode's callers wait on that); returns the journals whose positions are to be reported.
   */
  private async makeDurable(): Promise<string[]> {
    if (this.o.changed.size === 0) return [];
    try {
      await this.o.syncApplied();
    } catch (err) {
      // Not the position file: what it would cover may be lost. Apply again from the last good commit.
      const failure = this.distrust(err);
      this.rewind = failure;
      this.o.stopPass();
      throw failure;
    }
    try {
      this.o.store.sync();
    } catch (err) {
      // What it covers is on disk: trying again rewrites the whole file, so it is safe to retry.
      throw new ApplyError(`${(err as Error).message} in ${this.o.store.committedFile}`, { cause: err });
    }
    this.lastCommitAt = Date.now();
    this.appliedAtCommit = this.o.summary.applied;
    let names = [...this.o.changed];
    if (this.distrusted !== undefined) {
      this.o.log(`applied and fsynced again; positions are recorded from stream position ${this.o.store.streamSeq} on`);
      this.distrusted = undefined;
      this.lastDiskFailure = undefined;
      // Every journal marked failing is published again, without the mark (after the put that marked it: reportAll).
      names = [...new Set([...names, ...this.failingJournals])];
      this.failingJournals = [];
    }
    this.o.changed.clear();
    for (const name of names) {
      const pos = this.o.store.lastCommit.journals[name];
      if (pos !== undefined) this.announce?.(name, { ...pos, appliedAt: this.lastCommitAt });
    }
    return names;
  }

  /**
   * Reports committed positions to the state bucket: those of `names`, with any still waiting from
   * commits that ended while a report ran (one report at a time, so a put never goes back), then
   * this standby's record and its doubts. A put that fails is tried again with the next commit.
   */
  private report(names: string[]): Promise<void> {
    for (const name of names) this.unreported.add(name);
    this.reporting ??= this.reportAll().finally(() => (this.reporting = undefined));
    return this.reporting;
  }

  private async reportAll(): Promise<void> {
    const kv = this.kv;
    if (kv === undefined) {
      this.unreported.clear();
      return;
    }
    while (this.unreported.size > 0) {
      const names = [...this.unreported];
      this.unreported.clear();
      // A put that marked a journal failing goes before the one that takes the mark away.
      await this.failurePut;
      await Promise.all(names.map((name) => {
        // Marked failing, not applied again yet: published once it is.
        const pos = this.o.store.lastCommit.journals[name];
        return pos === undefined ? undefined : writeState(kv, 'applied', name, { ...pos, appliedAt: this.lastCommitAt }).catch(() => this.o.changed.add(name));
      }));
      await this.publishStandby(kv);
    }
    await this.publishDoubts(kv);
    // Idle, it still says it is there: "last active" is the record's time.
    if (Date.now() - this.standbySaidAt >= DEFAULTS.heartbeatMs) await this.publishStandby(kv);
  }

  /** The replayer stops cleanly: its record says so, so status calls it stopped at once. */
  async sayStopped(): Promise<void> {
    // After any report still running, or its record would overwrite this one.
    await this.reporting;
    if (this.kv !== undefined) await this.publishStandby(this.kv, Date.now());
  }

  /**
   * Leaves this standby's committed position (what its last good commit made durable, never
   * what is only recorded since) and when it was last active. Reporting only: a put that fails is tried again with the next commit.
   */
  private async publishStandby(kv: KV, stoppedAt?: number): Promise<void> {
    const committed = this.o.store.lastCommit;
    const staging = (this.o.staging?.() ?? []).map((x) => ({ journal: x.journal, ids: x.ids, since: x.since, entries: x.entries }));
    const journals: StandbyRecord['journals'] = {};
    for (const [name, p] of Object.entries(committed.journals)) journals[name] = { e: p.e, s: p.s };
    const record: StandbyRecord = {
      name: this.o.standby, ...(this.o.journal !== undefined ? { journal: this.o.journal } : {}), host: os.hostname(), pid: process.pid,
      streamSeq: committed.streamSeq, journals, committedAt: this.lastCommitAt, time: Date.now(), caughtUp: this.o.caughtUp(),
      ...(this.o.store.positions.streamCreated === undefined ? {} : { streamCreated: this.o.store.positions.streamCreated }),
      ...(this.o.maxLag === undefined ? {} : { maxLag: this.o.maxLag }),
      ...(this.o.keepBytes === undefined ? {} : { keepBytes: this.o.keepBytes }),
      ...(stoppedAt === undefined ? {} : { stoppedAt }),
      ...(staging.length === 0 ? {} : { staging }),
    };
    await writeState(kv, 'standby', standbyKey(this.o.standby, this.o.journal), record).then(() => (this.standbySaidAt = record.time), () => undefined);
  }

  /** Tells `status` which objects this standby cannot be sure of, whenever that changes (and once at start). */
  private async publishDoubts(kv: KV): Promise<void> {
    const objects = this.o.versions.inDoubt(DEFAULTS.replay.doubtsListed);
    const said = JSON.stringify([this.o.versions.doubtCount, objects]);
    if (said === this.doubtsSaid) return;
    const report: DoubtsReport = { standby: this.o.standby, count: this.o.versions.doubtCount, objects, time: Date.now() };
    await writeState(kv, 'doubts', this.o.standby, report).then(() => (this.doubtsSaid = said), () => undefined);
  }
}
