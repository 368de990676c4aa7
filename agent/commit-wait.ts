import type { Mode, OnTimeout } from '../lib/settings';
import { UnderstudyError } from '../lib/errors';
import { ACKED, APPLIED, readPosition, waitForPosition } from './shared-state';
import { warnOnce } from './log';

/** A sync or strong call whose change was made and journaled, but not confirmed in time. */
export class CommitTimeoutError extends UnderstudyError {
  readonly code = 'EUNDERSTUDYTIMEOUT';
}

/**
 * Holds a call until its entry is confirmed: by JetStream's ack (sync, "logged
 * on the secondary") or by the standby's applied-and-fsynced position (strong,
 * "committed on the secondary"). Bounded by UNDERSTUDY_SYNC_TIMEOUT_MS; then
 * the call fails, or the agent falls back to async for the rest of the process.
 */
export class CommitWait {
  private degraded = false;
  private readonly slot: number;

  constructor(
    private readonly shared: BigInt64Array,
    private readonly mode: Exclude<Mode, 'async'>,
    private readonly timeoutMs: number,
    private readonly onTimeout: OnTimeout,
    /** Whether the call is inside a transaction: the standby applies none of it before its end, so strong mode waits for the end alone. */
    private readonly inTransaction: () => boolean = () => false,
  ) {
    this.slot = mode === 'sync' ? ACKED : APPLIED;
  }

  /** The confirmation a call waits for: inside a transaction, in strong mode, JetStream's (the transaction's end waits for the standby). */
  private slotNow(): number {
    return this.mode === 'strong' && this.inTransaction() ? ACKED : this.slot;
  }

  /** Blocks the calling thread (for *Sync functions); throws CommitTimeoutError in fail mode. */
  waitSync(seq: number, what: string): void {
    const slot = this.slotNow();
    if (this.degraded || readPosition(this.shared, slot) >= seq) return;
    if (!waitForPosition(this.shared, slot, seq, this.timeoutMs)) this.timedOut(seq, what, slot);
  }

  /** Resolves once confirmed; rejects with CommitTimeoutError in fail mode. Never blocks the event loop. */
  async waitAsync(seq: number, what: string): Promise<void> {
    if (this.degraded) return;
    const slot = this.slotNow();
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const now = Atomics.load(this.shared, slot);
      if (Number(now) >= seq || this.degraded) return;
      const left = deadline - Date.now();
      if (left <= 0) return this.timedOut(seq, what, slot);
      // Atomics.waitAsync holds no handle on the event loop; without this timer the
      // process could exit with the caller's callback still waiting.
      const keepAlive = setTimeout(() => undefined, left);
      try {
        await Atomics.waitAsync(this.shared, slot, now, left).value;
      } finally {
        clearTimeout(keepAlive);
      }
    }
  }

  private timedOut(seq: number, what: string, slot: number): void {
    const by = slot === ACKED ? 'JetStream did not acknowledge it' : 'the standby did not confirm it applied';
    if (this.onTimeout === 'degrade') {
      this.degraded = true;
      warnOnce('degraded', `UNDERSTUDY_MODE=${this.mode}: ${by} within ${this.timeoutMs} ms; falling back to async mode for the rest of this process (UNDERSTUDY_ON_TIMEOUT=degrade)`);
      return;
    }
    throw new CommitTimeoutError(`UNDERSTUDY_MODE=${this.mode}: ${what} was made here and journaled as seq ${seq}, but ${by} within ${this.timeoutMs} ms`);
  }
}
