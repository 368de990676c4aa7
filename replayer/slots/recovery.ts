/**
 * This standby's side of being lost: it says so loudly and is in doubt (never "in sync"), asks
 * the primary's agents for a rebase (a baseline of their roots, then `verify --repair` against
 * this standby), follows it, and once it ended whole clears its lost mark, so that it counts
 * again for trimming.
 */
import type { KV } from '@nats-io/kv';
import { DEFAULTS } from '../../lib/settings';
import { readState, writeState, type LostRecord, type RebaseRecord } from '../../lib/state-bucket';

/** What recovery needs of the replayer. */
export interface RecoveryParts {
  /** This standby's key (`standby.<key>`). */
  key: string;
  kv: KV;
  log: (line: string) => void;
  /** The standby lacks what was trimmed past it: it is in doubt, in status and at promotion. */
  doubt: (why: string) => void;
  /** It is whole again: that doubt goes. */
  whole: () => void;
}

/** Where this standby stands as a slot. */
export type SlotState = 'counted' | 'lost' | 'recovered';

/** Follows this standby's lost mark and its rebase. */
export class Recovery {
  /** The lost mark last said (its `since`), so it is said once. */
  private said: number | undefined;
  private step = '';

  constructor(private readonly o: RecoveryParts) {}

  /** One look: says, asks, follows and clears as the records stand. */
  async check(now = Date.now()): Promise<SlotState> {
    const { kv, key, log } = this.o;
    const lost = await readState(kv, 'lost', key);
    if (lost === undefined) {
      this.said = undefined;
      return 'counted';
    }
    if (this.said !== lost.since) {
      log(`THIS STANDBY (${key}) IS LOST since ${new Date(lost.since).toISOString()}, marked by ${lost.by}: ${lost.reason}. The stream and the agents' spools no longer keep what it lacks, so it is NOT in sync with the primary and does not say it is (status, promote) until it is whole again. It asks the primary for a baseline and a verify`);
      this.o.doubt(`this standby was lost at ${new Date(lost.since).toISOString()} (${lost.reason}): the stream no longer keeps what it lacks; a rebase (baseline, then verify) makes it whole`);
      this.said = lost.since;
    }
    const rebase = await readState(kv, 'rebase', key);
    if (rebase === undefined || rebase.requested < lost.since) return this.ask(lost, now, 'asked the primary\'s agents for a rebase (a baseline of their roots, then verify --repair against this standby)');
    if (rebase.state === 'done') {
      const unrepaired = (rebase.differences ?? 0) - (rebase.repaired ?? 0);
      if (unrepaired > 0) return this.ask(lost, now, `the rebase by ${rebase.by ?? 'an agent'} left ${unrepaired} difference(s) unrepaired; asked for another`);
      await kv.delete(`lost.${key}`);
      this.o.whole();
      this.said = undefined;
      log(`this standby is whole again: the baseline and verify by ${rebase.by ?? 'an agent'} ended ${new Date(rebase.finished ?? now).toISOString()} (${rebase.differences ?? 0} difference(s), ${rebase.repaired ?? 0} repaired); it counts again for trimming`);
      return 'recovered';
    }
    if (rebase.state === 'failed') {
      if (now - (rebase.finished ?? rebase.requested) < DEFAULTS.slots.rebaseRetryMs) return 'lost';
      return this.ask(lost, now, `the rebase failed (${rebase.error ?? 'no reason given'}); asked again`);
    }
    const step = `${rebase.state}${rebase.step === undefined ? '' : `: ${rebase.step}`}${rebase.by === undefined ? '' : ` (by ${rebase.by})`}`;
    if (step !== this.step) log(`rebase of this standby: ${step}`);
    this.step = step;
    return 'lost';
  }

  private async ask(lost: LostRecord, now: number, said: string): Promise<SlotState> {
    const request: RebaseRecord = { standby: this.o.key, state: 'requested', requested: Math.max(now, lost.since) };
    await writeState(this.o.kv, 'rebase', this.o.key, request);
    this.o.log(said);
    this.step = '';
    return 'lost';
  }
}
