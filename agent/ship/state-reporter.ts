/**
 * What the shipper tells the state bucket and hears from it: its heartbeat (the agent's
 * position, for `status` and for a standby deciding whether it is in sync), the standby's
 * applied position (strong mode waits on it), how far the spool may be trimmed, and a fence left
 * by a promotion of the standby.
 */
import * as os from 'node:os';
import { pause } from '../../lib/retry';
import { DEFAULTS } from '../../lib/settings';
import type { AgentHeartbeat } from '../../lib/state-bucket';
import type { AppliedRecord } from '../../lib/state/applied';
import { promotedBy } from '../../lib/state/fence';
import type { StateStore } from '../../lib/transport/journal-transport';
import { APPLIED, DROPPED, REPORTED, publishPosition, readPosition } from '../shared-state';
import { warnOnce } from '../log';
import type { ShippingJournal } from './shipping-journal';

/** The waits the reporter keeps (DEFAULTS). */
export interface ReporterPace {
  heartbeatMs: number;
  beatSoonMs: number;
  beatSoonHurriedMs: number;
  appliedRewatchMs: number;
}

const PACE: ReporterPace = { ...DEFAULTS.ship, heartbeatMs: DEFAULTS.heartbeatMs };

/** Reports one journal's position to the state bucket and follows what the standby reports. */
export class StateReporter {
  private bucket: StateStore | undefined;
  private beatTimer: NodeJS.Timeout | undefined;
  /** No standby has left a trim record for this journal (read once, false once one comes). */
  private trimless = false;

  /** `signal` ends its loops (tests; the worker reports until it is terminated). */
  constructor(private readonly j: ShippingJournal, private readonly pace: ReporterPace = PACE, private readonly signal?: AbortSignal) {}

  /** The state bucket, once it is open: shipping never waits for it. */
  get store(): StateStore | undefined {
    return this.bucket;
  }

  /** Begins reporting into `store`: heartbeats, the standby's applied position, the fence. */
  start(store: StateStore): void {
    this.bucket = store;
    void this.followApplied(store);
    void this.followTrim(store);
    void this.watchFence(store);
    void this.heartbeats();
  }

  /** Leaves the agent's position in the state bucket (its heartbeat) and saves the acked position. */
  async beat(): Promise<void> {
    const store = this.bucket;
    if (store === undefined) return;
    const { j } = this;
    const appended = j.appended();
    j.acked.save();
    const value: AgentHeartbeat = {
      name: j.name, epoch: j.epoch, mode: j.mode, pid: process.pid, host: os.hostname(), appended, acked: j.acked.current, time: Date.now(),
      dropped: readPosition(j.shared, DROPPED), origin: j.origin,
      ...(j.lost.length > 0 ? { lost: j.lost } : {}),
      ...(j.unclean !== undefined ? { unclean: j.unclean } : {}),
      ...(j.refused !== undefined ? { refused: j.refused } : {}),
    };
    try {
      await store.write('agent', j.name, value);
      publishPosition(j.shared, REPORTED, appended);
    } catch (err) {
      warnOnce('heartbeat', `journal "${j.name}" cannot report its position: ${(err as Error).message}`);
    }
  }

  /**
   * The shipper caught up with `appended`: report it soon, so `status` and an exiting
   * application see the truth; not at once, because a sync-mode writer's next entry is likely
   * on its way and must not wait for it.
   */
  caughtUp(appended: number): void {
    if (this.bucket !== undefined && readPosition(this.j.shared, REPORTED) < appended) this.beatSoon();
  }

  /** Stops a pending report (tests). */
  stop(): void {
    clearTimeout(this.beatTimer);
    this.beatTimer = undefined;
  }

  /**
   * Reports the position soon: within 20 ms when the application waits for it (HURRY: a flush,
   * an exit), else within 200 ms, so a steady writer (one sync-mode call after another) costs a
   * state-bucket put and a save five times a second, not fifty.
   */
  private beatSoon(): void {
    const waitedFor = this.j.hurried();
    this.beatTimer ??= setTimeout(() => {
      this.beatTimer = undefined;
      void this.beat();
    }, waitedFor ? this.pace.beatSoonHurriedMs : this.pace.beatSoonMs);
  }

  private async heartbeats(): Promise<void> {
    while (this.signal?.aborted !== true) {
      await this.beat();
      await pause(this.pace.heartbeatMs, this.signal);
    }
  }

  /** The standby's applied position: a strong-mode caller waits for it. */
  private async followApplied(store: StateStore): Promise<void> {
    const { j } = this;
    while (this.signal?.aborted !== true) {
      try {
        for await (const applied of store.watch('applied', j.name)) {
          this.tookApplied(applied);
          // No standby leaves trim records (one of an earlier version, or not allowed to): trimmed as before, at
          // what the standby applied, rather than left to grow until changes are dropped.
          if (this.trimless) j.acked.trimApplied(j.dir, applied);
        }
      } catch (err) {
        warnOnce('applied-watch', `journal "${j.name}" cannot follow the standby's applied position: ${(err as Error).message}`);
      }
      await pause(this.pace.appliedRewatchMs, this.signal);
    }
  }

  /**
   * Strong mode's fast way: the standbys' applied notices, one hop after their commit, where the
   * state bucket's record takes a put and a watch. Either source may be first; the position only
   * moves forward. A refused subscription (a permission) leaves the bucket's way, said once.
   */
  async followNotices(notices: AsyncIterable<AppliedRecord>): Promise<void> {
    try {
      for await (const applied of notices) this.tookApplied(applied);
    } catch (err) {
      warnOnce('applied-notices', `journal "${this.j.name}" cannot hear the standby's applied notices (${(err as Error).message}); strong-mode calls wait for the state bucket's applied record instead, a round trip or two later (SECURITY.md lists the subscription)`);
    }
  }

  /**
   * What a standby applied becomes what strong-mode calls wait on. A position of an earlier epoch
   * covers none of this process's entries, whatever its seq (the spool may have been lost and
   * numbering begun again).
   */
  private tookApplied(applied: AppliedRecord): void {
    const { j } = this;
    const seq = applied.e >= j.epoch ? applied.s : Math.min(applied.s, j.firstSeq - 1);
    if (seq > readPosition(j.shared, APPLIED)) publishPosition(j.shared, APPLIED, seq);
  }

  /**
   * The spool is trimmed only below what every standby that counts committed (`trim`, which the
   * standbys compute from each other's records), never below what one of them applied: a
   * second, slower standby may still need it.
   */
  private async followTrim(store: StateStore): Promise<void> {
    const { j } = this;
    // Known before the applied position may trim anything: a trim record, once there is one, is the only word.
    this.trimless = (await store.read('trim', j.name).catch(() => null)) === undefined;
    while (this.signal?.aborted !== true) {
      try {
        for await (const trim of store.watch('trim', j.name)) {
          this.trimless = false;
          j.acked.trimApplied(j.dir, trim);
        }
      } catch (err) {
        warnOnce('trim-watch', `journal "${j.name}" cannot follow how far its spool may be trimmed: ${(err as Error).message}`);
      }
      await pause(this.pace.appliedRewatchMs, this.signal);
    }
  }

  /** A promotion of the standby fences this journal: say so, once, so the split brain is seen on this side too. */
  private async watchFence(store: StateStore): Promise<void> {
    try {
      for await (const f of store.watch('fence', this.j.name)) {
        warnOnce('fenced', `journal "${this.j.name}" was fenced at ${f.e}.${f.s} by the promotion of ${promotedBy(f)} at ${f.at}: the standby is the primary now and refuses what this process journals (split brain)`);
      }
    } catch {
      // Reporting only; shipping goes on without it.
    }
  }
}
