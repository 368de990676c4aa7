import { decodeEntry } from '../lib/codec';
import { lastEntry } from '../lib/batch';
import { comparePosition } from '../lib/entry';
import type { AgentHeartbeat } from '../lib/state-bucket';
import type { OriginState } from '../lib/spool';
import type { ResendRequest } from '../lib/subjects';
import { knownJournals, type Agents } from './agents';
import type { Gap } from './order/sequencer';
import type { JournalSource } from './source/journal-source';
import type { JournalPos } from './state';

/** What catch-up reads of the standby and how it moves a journal past entries that can never come. */
export interface CatchUpTarget {
  /** Positions applied so far, by journal. */
  positions(): Readonly<Record<string, JournalPos>>;
  /** The entries journal `name` waits for behind a gap, if any. */
  gap(name: string): Gap | undefined;
  /** Whether the last message read was the stream's last: only then can "behind the agent" mean "missing". */
  caughtUp(): boolean;
  /** Journal `name` goes on after `pos` (the epoch and seq before what comes next); its time stays. */
  skipTo(name: string, pos: { e: number; s: number }): void;
  /** Journal `name` lacks entries for good: the standby says so (in doubt) and releases what it held. */
  lacks(name: string, why: string): void;
  /** Entries it needs are gone from the stream and every spool: the standby is lost, and heals by a rebase. */
  lost(why: string): void;
}

/**
 * Pull catch-up: compares each journal's applied position with what its agent last reported
 * acknowledged (and with entries held after a hole); asks the agent to resend what the stream
 * lacks, and passes what neither the stream nor the agent can ever bring.
 */
export class CatchUp {
  private running = false;

  constructor(private readonly o: { stream: string; journal?: string; log: (line: string) => void; source: JournalSource; agents: Agents; target: CatchUpTarget }) {}

  /** One round (none while another runs). True when anything was resent or passed. */
  async run(): Promise<boolean> {
    if (this.running) return false;
    this.running = true;
    try {
      return await this.askForMissing();
    } finally {
      this.running = false;
    }
  }

  /**
   * Asks agents to resend what is missing from the stream: entries held behind a gap, or
   * entries an agent had acknowledged that the stream no longer holds (purged, a server
   * that lost its store). Never what is merely still ahead of us in the stream: a lagging
   * replayer asking for that would have it published again and fall further behind.
   */
  private async askForMissing(): Promise<boolean> {
    const { target, log } = this.o;
    let any = false;
    for (const name of await knownJournals(Object.keys(target.positions()), this.o.agents, this.o.journal)) {
      const beat = await this.o.agents.heartbeat(name);
      const acked = beat?.acked;
      const pos = target.positions()[name];
      const gap = target.gap(name);
      let from = (pos?.s ?? 0) + 1;
      let to: number;
      if (gap !== undefined) to = gap.to;
      // Behind the agent while the stream still has messages for us is lag, not loss.
      else if (!target.caughtUp()) continue;
      else if (acked !== undefined && acked.seq > 0 && (pos === undefined || comparePosition({ e: acked.epoch, s: acked.seq }, pos) > 0)) {
        if (await this.streamHolds(name, { e: acked.epoch, s: acked.seq })) continue;
        to = acked.seq;
      } else continue;
      if (pos !== undefined && acked !== undefined && acked.epoch > pos.e && acked.seq < from) from = 1; // numbering began again
      if (to < from) continue;
      const origin = beat?.origin;
      if (origin !== undefined && from < origin.seq && (await this.isThisStream(origin))) {
        this.passOrigin(name, from, origin);
        any = true;
        continue;
      }
      const lost = knownLost(beat, from);
      if (lost !== undefined) {
        // Its agent said these are gone from its spool: asking it (or waiting for it) cannot bring them.
        this.passGone(name, from, { e: gap === undefined ? pos?.e ?? 0 : gap.epoch, s: lost.to + 1 });
        any = true;
        continue;
      }
      try {
        const r = await this.o.agents.resend(name, { from, to } satisfies ResendRequest);
        if (r.error !== undefined) log(`journal ${name}: entries ${from}..${to} are missing from the stream and its agent cannot resend them: ${r.error}`);
        else log(`journal ${name}: entries ${from}..${to} were missing from the stream; the agent resent ${r.resent}`);
        if (r.oldest !== undefined && r.error === undefined) this.passGone(name, from, r.oldest);
        any ||= r.resent > 0;
      } catch (err) {
        log(`journal ${name}: entries ${from}..${to} are missing from the stream and its agent does not answer (${(err as Error).message})`);
      }
    }
    return any;
  }

  /**
   * Entries `from`..oldest-1 are in neither the stream nor the agent's spool: they can never
   * come, and waiting for them would stop this journal for good. Said loudly, and the journal
   * goes on from the agent's oldest entry (resent with the reply); `verify --repair` mends
   * what the standby lacks.
   */
  private passGone(name: string, from: number, oldest: { e: number; s: number }): void {
    const pos = this.o.target.positions()[name];
    if (!Number.isSafeInteger(oldest.e) || !Number.isSafeInteger(oldest.s) || oldest.s <= from) return;
    if (pos !== undefined && pos.s >= oldest.s - 1) return; // applied meanwhile
    const why = `journal ${name}: entries ${from}..${oldest.s - 1} are gone: neither the stream nor its agent's spool (which begins at ${oldest.s}) holds them; this standby lacks them until \`understudy verify --repair\` runs on the primary`;
    this.o.log(why);
    this.o.target.skipTo(name, { e: oldest.e, s: oldest.s - 1 });
    // In doubt, not only said: status and promote must not call this standby in sync; and lost, so that a rebase heals it.
    this.o.target.lacks(name, why);
    this.o.target.lost(why);
  }

  /**
   * Entries `from`..origin-1 went to a stream before this one (a new server, a stream deleted
   * and made again): they will never be in it. Waiting for them would stop this journal for
   * good, so it goes on from where its history here begins, and the standby says that it
   * lacks them and needs a baseline, in status too, until one is taken.
   */
  private passOrigin(name: string, from: number, origin: OriginState): void {
    const why = `journal ${name}'s entries ${from}..${origin.seq - 1} went to an earlier stream ${origin.stream}, before the one created ${origin.created}; this standby never applied them: run \`understudy baseline\` on the primary`;
    this.o.log(why);
    this.o.target.skipTo(name, { e: origin.epoch, s: origin.seq - 1 });
    this.o.target.lacks(name, why);
  }

  /** Whether the agent's word on where its history begins is about the stream we read (not one deleted since). */
  private async isThisStream(origin: OriginState): Promise<boolean> {
    if (origin.stream !== this.o.stream) return false;
    const info = await this.o.source.info().catch(() => undefined);
    return info !== undefined && info.created === origin.created;
  }

  /** Whether the stream's last message of journal `name` reaches `pos`: then nothing before it is lost. */
  private async streamHolds(name: string, pos: { e: number; s: number }): Promise<boolean> {
    const last = await this.o.source.lastOf(name);
    if (last === undefined) return false;
    try {
      return comparePosition(decodeEntry(lastEntry(last.data)).header, pos) >= 0;
    } catch {
      return false; // unreadable: the replayer quarantines it when it gets there; asking costs a resend at most
    }
  }
}

/**
 * The range the agent's heartbeat reports lost from its spool before it was shipped (see
 * agent/spool-gap) that holds `seq`, if any.
 */
function knownLost(heartbeat: AgentHeartbeat | undefined, seq: number): { from: number; to: number } | undefined {
  return heartbeat?.lost?.find((l) => Number.isSafeInteger(l.from) && Number.isSafeInteger(l.to) && l.from <= seq && seq <= l.to);
}
