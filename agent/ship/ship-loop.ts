/**
 * The ship loop: tails the spool and publishes each entry, in order, through the transport.
 * Under a steady trickle it lingers so that a message carries several entries; a backlog goes
 * out at full speed, pipelined; after a failure it probes with one message, then backs off.
 */
import { Abandonable } from './abandon';
import { pause } from '../../lib/retry';
import { DEFAULTS } from '../../lib/settings';
import { SpoolCursor, SpoolGapError } from '../../lib/spool-reader';
import type { SpoolRecord } from '../../lib/spool';
import { PublishTimeoutError, StreamRefusedError, type JournalTransport, type StreamIdentity } from '../../lib/transport/journal-transport';
import { APPENDED, HURRY } from '../shared-state';
import { warnOnce } from '../log';
import type { InFlight } from './acked-position';
import { batches, type MessageMaker } from './messages';
import type { ShippingJournal } from './shipping-journal';
import type { StateReporter } from './state-reporter';
import type { StreamAdoption } from './stream-adoption';

/** The loop's waits and limits (DEFAULTS.ship, DEFAULTS.maxInFlight; tests shorten them). */
export interface ShipPace {
  /** 0: never linger (sync and strong modes, where every entry has a caller waiting for it). */
  lingerMs: number;
  maxInFlight: number;
  probeFirstMs: number;
  probeMaxMs: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  corruptRetryMs: number;
  gapRetryMs: number;
  idleWakeMs: number;
  streamCheckTimeoutMs: number;
}

/** The pace of a journal in `mode`, from DEFAULTS. */
export function shipPace(mode: string): ShipPace {
  // In sync and strong modes every entry has a caller waiting for it: never linger there.
  return { ...DEFAULTS.ship, lingerMs: mode === 'async' ? DEFAULTS.shipLingerMs : 0, maxInFlight: DEFAULTS.maxInFlight };
}

/** What the loop works with. */
export interface ShipLoopParts {
  journal: ShippingJournal;
  transport: JournalTransport;
  messages: MessageMaker;
  adoption: StreamAdoption;
  reporter: StateReporter;
}

/** Ships one journal's spool, round after round. */
export class ShipLoop {
  /** Publishes in flight; a reconnect abandons them. */
  private readonly inFlight = new Abandonable();
  private readonly cursor: SpoolCursor;
  private failures = 0;
  private shippedAt = 0;
  private behind = false;

  constructor(private readonly p: ShipLoopParts, private readonly pace: ShipPace) {
    this.cursor = new SpoolCursor(p.journal.dir, p.journal.acked.current.seq + 1);
    // Each reconnect abandons what was in flight (re-published, de-duplicated by id).
    p.transport.onReconnect(() => this.inFlight.abandonAll(new Error('the connection to NATS moved to another server')));
  }

  /** Takes `info` as the stream shipped to (see StreamAdoption.adopt). */
  adopt(info: StreamIdentity): void {
    const back = this.p.adoption.adopt(info);
    if (back !== undefined) this.cursor.seek(back);
  }

  /** Runs rounds until `signal` aborts (the worker's never does). */
  async run(signal?: AbortSignal): Promise<void> {
    while (signal?.aborted !== true) await this.round(signal);
    this.cursor.close();
  }

  /** One round: wait for entries, read them, publish them and settle their acks (or back off). */
  async round(signal?: AbortSignal): Promise<void> {
    const { journal: j, reporter } = this.p;
    // A backlog (an outage, a large file) goes out at full speed; lingering is for a steady trickle.
    if (this.pace.lingerMs > 0 && !this.behind) await this.linger(this.shippedAt + this.pace.lingerMs - Date.now());
    const appended = j.appended();
    let records: SpoolRecord[];
    try {
      records = this.cursor.read(appended);
    } catch (err) {
      if (err instanceof SpoolGapError) {
        if (await this.p.adoption.passGap(err)) this.resume();
        else await pause(this.pace.gapRetryMs, signal);
        return;
      }
      // Corruption in the middle of the spool: say so loudly and keep everything; never skip.
      warnOnce('spool-corrupt', `shipping of journal "${j.name}" stopped: ${(err as Error).message}`);
      await pause(this.pace.corruptRetryMs, signal);
      this.resume();
      return;
    }
    this.behind = this.cursor.position <= appended;
    if (records.length === 0) {
      reporter.caughtUp(appended);
      await Atomics.waitAsync(j.shared, APPENDED, BigInt(appended), this.pace.idleWakeMs).value;
      return;
    }
    const probe = this.failures > 0 ? Math.min(this.pace.probeFirstMs * 2 ** (this.failures - 1), this.pace.probeMaxMs) : undefined;
    const error = await this.ship(records, probe);
    if (error === undefined) {
      this.failures = 0;
      j.refused = undefined;
      // Every message made of this read was acknowledged, so the transport has sent (and let go of) it.
      this.cursor.recycle();
      if (probe !== undefined) this.resume();
      return;
    }
    this.failures++;
    this.resume();
    if (error instanceof StreamRefusedError) this.refused(error);
    await pause(Math.min(this.pace.backoffBaseMs * 2 ** this.failures, this.pace.backoffMaxMs), signal);
    // Neither a slow answer nor a refusal means the stream is gone.
    if (error instanceof PublishTimeoutError || error instanceof StreamRefusedError) return;
    // No answer at all, or not from a stream: it may have been deleted. Make it again (the
    // standby pulls what it lost from our spool). Briefly: a cluster may be electing its leaders.
    const again = await this.p.transport.ensureStream({ timeoutMs: this.pace.streamCheckTimeoutMs }).catch(() => undefined);
    if (again !== undefined) this.adopt(again);
  }

  /**
   * Pipelined publishes; acknowledgements are taken in order, so acked never runs ahead of a hole.
   * After a failure one message goes first (`probe`: its timeout), to find out whether the way
   * is open again: a cluster electing a new stream leader is then noticed in a second, not five.
   * Returns the first failure.
   */
  private async ship(records: SpoolRecord[], probe: number | undefined): Promise<Error | undefined> {
    const { acked } = this.p.journal;
    const max = this.pace.maxInFlight;
    const pending: InFlight[] = [];
    let error: Error | undefined;
    this.shippedAt = Date.now();
    for (const batch of batches(records)) {
      const last = batch[batch.length - 1];
      const ack = this.inFlight.track(this.p.transport.publish(this.p.messages.make(batch), { timeoutMs: probe }));
      ack.catch(() => undefined);
      pending.push({ epoch: last.epoch, seq: last.seq, ack });
      if (probe !== undefined) break;
      if (pending.length >= max) {
        error = await acked.settle(pending.splice(0, pending.length - max / 2));
        if (error !== undefined) break;
      }
    }
    return error ?? acked.settle(pending);
  }

  /**
   * The stream refuses the journal's entries (full: nothing trims it yet): said once, with what
   * happens next, and reported in the heartbeat from now until it takes them again, so that
   * `status` says it in words rather than as a lag that only grows.
   */
  private refused(err: StreamRefusedError): void {
    const j = this.p.journal;
    j.refused ??= { reason: err.message, since: Date.now() };
    warnOnce('stream-refuses', `journal "${j.name}": stream ${j.stream} refuses its entries (${err.message}); they stay spooled, the standby falls behind, and they are shipped once the stream takes them again (the standbys trim it below what every one of them committed: one that holds it back, or none allowed to purge, fills it; see understudy status)`);
  }

  /** Goes on right after the acked position. */
  private resume(): void {
    this.cursor.seek(this.p.journal.acked.current.seq + 1);
  }

  /**
   * Waits up to `ms` before the next read, so that under a steady stream of changes each message
   * carries several entries: a publish and its ack cost the same for one entry as for a hundred.
   * The application's flush (at exit, or an explicit one) raises HURRY and ends the wait.
   */
  private async linger(ms: number): Promise<void> {
    if (ms <= 0) return;
    const { shared } = this.p.journal;
    const hurry = Atomics.load(shared, HURRY);
    if (Number(hurry) >= this.p.journal.appended()) return;
    await Atomics.waitAsync(shared, HURRY, hurry, ms).value;
  }
}
