/**
 * This standby's side of being lost: it says so loudly and is in doubt (never "in sync"), asks
 * the primary's agents for a rebase (a baseline of their roots, then `verify --repair` against
 * this standby), follows it, and once it ended whole clears its lost mark, so that it counts
 * again for trimming.
 */
import type { KV } from '@nats-io/kv';
import { comparePosition } from '../../lib/entry';
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
  /** How many other doubts arose since `at` (ms): a rebase that began before them does not cover them. */
  doubtsSince: (at: number) => number;
  /** What this standby applied, by journal. */
  positions: () => Readonly<Record<string, { e: number; s: number }>>;
}

/** Where this standby stands as a slot. */
export type SlotState = 'counted' | 'lost' | 'recovered';

/** Follows this standby's lost mark and its rebase. */
export class Recovery {
  /** The lost mark last said (its `since`), so it is said once. */
  private said: number | undefined;
  private step = '';

  constructor(private readonly o: RecoveryParts) {}

  /**
   * One look: says, asks, follows and clears as the records stand. `journals`: those in the
   * stream; a rebase is asked for only once this standby read past what was trimmed of each
   * (found gone, and in doubt), so that its verify, which settles older doubts, covers that too.
   */
  async check(journals: readonly string[], now = Date.now()): Promise<SlotState> {
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
    if (rebase === undefined || rebase.requested < lost.since) {
      const behind = await this.behindTrim(journals);
      if (behind !== undefined) {
        if (this.step !== `behind ${behind}`) log(`reading past what was trimmed of journal ${behind} before asking for a rebase`);
        this.step = `behind ${behind}`;
        return 'lost';
      }
      return this.ask(lost, now, 'asked the primary\'s agents for a rebase (a baseline of their roots, then verify --repair against this standby)');
    }
    if (rebase.state === 'done') {
      const unrepaired = (rebase.differences ?? 0) - (rebase.repaired ?? 0);
      if (unrepaired > 0) return this.ask(lost, now, `the rebase by ${rebase.by ?? 'an agent'} left ${unrepaired} difference(s) unrepaired; asked for another`);
      // Entries found gone while it ran (this standby reading past the trimmed stretch) came after its verify began.
      const later = this.o.doubtsSince(rebase.started ?? rebase.requested);
      if (later > 0) return this.ask(lost, now, `${later} object(s) came in doubt while the rebase by ${rebase.by ?? 'an agent'} ran; asked for another, which covers them`);
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

  /** The first journal whose spools were trimmed past what this standby applied of it, if any. */
  private async behindTrim(journals: readonly string[]): Promise<string | undefined> {
    const applied = this.o.positions();
    // A journal trimmed away whole has no subject left in the stream: this standby's own positions name it.
    for (const j of new Set([...journals, ...Object.keys(applied)])) {
      const trim = await readState(this.o.kv, 'trim', j);
      const pos = applied[j];
      if (trim !== undefined && (pos === undefined || comparePosition(pos, trim) < 0)) return j;
    }
    return undefined;
  }

  private async ask(lost: LostRecord, now: number, said: string): Promise<SlotState> {
    const request: RebaseRecord = { standby: this.o.key, state: 'requested', requested: Math.max(now, lost.since) };
    await writeState(this.o.kv, 'rebase', this.o.key, request);
    this.o.log(said);
    this.step = '';
    return 'lost';
  }
}
