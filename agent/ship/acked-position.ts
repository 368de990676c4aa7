/**
 * The acked position: the last entry JetStream acknowledged, as far as every entry before it
 * was acknowledged too. It is announced to the application thread at once (a sync-mode caller
 * waits on it), saved to acked.json soon, and saved durably before the spool is trimmed.
 */
import * as fs from 'node:fs';
import { replaceJson } from '../../lib/durable-file';
import { DEFAULTS } from '../../lib/settings';
import { trimmableSegments, type AckedState } from '../../lib/spool';
import { ACKED, publishPosition } from '../shared-state';
import { warnOnce } from '../log';
import { StreamRefusedError } from '../../lib/transport/journal-transport';

/** A publish in flight and the last entry its message carries. */
export interface InFlight { epoch: number; seq: number; ack: Promise<unknown> }

/** The journal's acked position, in memory, for the application thread, and on disk. */
export class AckedPosition {
  private pos: AckedState;
  private savedSeq: number;
  /** The acked position as far as it is fsynced: segments are trimmed only below it. */
  private durableSeq = 0;
  private saveTimer: NodeJS.Timeout | undefined;

  /** `file`: acked.json of the journal's spool; `initial`: what it held. */
  constructor(private readonly name: string, private readonly file: string, private readonly shared: BigInt64Array, initial: AckedState, private readonly saveWithinMs: number = DEFAULTS.ship.saveAckedWithinMs) {
    this.pos = initial;
    this.savedSeq = initial.seq;
    publishPosition(shared, ACKED, initial.seq);
  }

  /** The position now. */
  get current(): AckedState {
    return this.pos;
  }

  /** Moves the position (back, when a stream new to the journal is shipped to again) and announces it. */
  set(pos: AckedState): void {
    this.pos = pos;
    publishPosition(this.shared, ACKED, pos.seq);
  }

  /** Awaits acks in order; the first failure (said once) stops it and is returned. */
  async settle(batch: InFlight[]): Promise<Error | undefined> {
    let error: Error | undefined;
    for (const p of batch) {
      try {
        await p.ack;
      } catch (err) {
        error = err as Error;
        // A refusal is the stream's answer, said by the ship loop; this is for a way that is not open.
        if (!(error instanceof StreamRefusedError)) warnOnce('publish', `journal "${this.name}" cannot reach JetStream (${error.message}); entries stay spooled and are shipped when it is back`);
        break;
      }
      this.pos = { epoch: p.epoch, seq: p.seq };
    }
    // Announced first: a sync-mode caller waits on it, and a rename on ext4 can take milliseconds.
    // Saving it later costs at most a re-send of entries the replayer already skips as duplicates.
    publishPosition(this.shared, ACKED, this.pos.seq);
    this.saveSoon();
    return error;
  }

  /**
   * Saves the position within a second: it only spares a restarted process re-sending what
   * the standby skips as duplicates, and each save is a rename, which on ext4 can block this
   * thread for milliseconds while acks wait (sync mode's slowest tenth was 20 % slower at 50 ms).
   */
  saveSoon(): void {
    this.saveTimer ??= setTimeout(() => {
      this.saveTimer = undefined;
      this.save();
    }, this.saveWithinMs);
  }

  /**
   * Saves the position (`durable`: fsynced, before segments below it are trimmed); true when
   * it is saved. A failure is said once and leaves the spool untrimmed, never the shipper stopped.
   */
  save(durable = false): boolean {
    if (this.pos.seq === (durable ? this.durableSeq : this.savedSeq)) return true;
    const pos = this.pos;
    try {
      replaceJson(this.file, pos, { durable });
    } catch (err) {
      warnOnce('acked-save', `journal "${this.name}" cannot save its shipped position in ${this.file} (${(err as Error).message}); its spool is not trimmed until it can`);
      return false;
    }
    this.savedSeq = pos.seq;
    if (durable) this.durableSeq = pos.seq;
    return true;
  }

  /**
   * Trims from spool `dir` what the standby applied, but never past the position on disk: the
   * next process with this name resumes right after it, so it must be saved (fsynced) before
   * what precedes it goes. Saving it only up to a second late, as saveSoon does, once let a
   * trim run ahead of it, and the next process found its resume position gone.
   */
  trimApplied(dir: string, applied: { e: number; s: number }): void {
    // Componentwise: a segment goes only when both its epoch and its seq are covered by both.
    const upTo = { e: Math.min(applied.e, this.pos.epoch), s: Math.min(applied.s, this.pos.seq) };
    const doomed = trimmableSegments(dir, upTo);
    if (doomed.length === 0 || !this.save(true) || this.durableSeq < upTo.s) return;
    for (const file of doomed) fs.rmSync(file, { force: true });
  }

  /** Saves what a pending saveSoon would have, now (tests, and a shipper that stops). */
  flush(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    this.save();
  }
}
