import * as os from 'node:os';
import { jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { comparePosition, positionLabel } from '../lib/entry';
import { stateKeys } from '../lib/nats';
import { stateBucket, validJournalName } from '../lib/subjects';
import { pause } from '../lib/retry';
import { DEFAULTS } from '../lib/settings';
import { watchKind, type KindWatch } from '../lib/state-bucket';
import { promotedBy } from '../lib/state/fence';
import type { Fence, FenceStore } from './fence';

/** What the fence watch works with; the replayer owns each. */
export interface FenceWatchParts {
  nc: NatsConnection;
  kv: KV;
  stream: string;
  /** This standby's name: fences of its own promotion are not news to it. */
  standby: string;
  /** The one journal this replayer applies (--name), if it applies one. */
  journal?: string;
  fences: FenceStore;
  /** Where each journal stands here. */
  positions: () => Readonly<Record<string, { e: number; s: number }>>;
  log: (line: string) => void;
}

/**
 * A promotion of another standby, learned from the state bucket's `fence.*` records: the
 * fences are taken into this standby's own (FenceStore), so the intake refuses the old
 * primary's entries past them as it would after a promotion here, and said once, loudly,
 * with where this standby stands against each: behind (it goes on up to the fence), at it,
 * or ahead (it holds changes the new primary lacks, and keeps them).
 */
export class FenceWatch {
  private watch: KindWatch<'fence'> | undefined;
  private readonly fresh: [string, Fence][] = [];
  private sayTimer: NodeJS.Timeout | undefined;
  private readonly stopped = new AbortController();
  /** Journals whose bucket fence differs from the one held here, said once each. */
  private readonly saidOther = new Set<string>();

  constructor(private readonly o: FenceWatchParts) {}

  /**
   * Reads the fences there are before anything is applied (a standby started after a
   * promotion must not apply what the old primary sent since), says those of other standbys'
   * promotions, then follows new ones until `stop()`. A bucket this user may not watch is
   * said once: promotions elsewhere then do not reach this standby.
   */
  async start(): Promise<void> {
    const { o } = this;
    let listed: Set<string>;
    try {
      listed = new Set((await stateKeys(await jetstreamManager(o.nc), o.stream)).filter((k) => k.startsWith('fence.')).map((k) => k.slice('fence.'.length)).filter((n) => this.concerns(n)));
      this.watch = await watchKind(o.kv, 'fence');
    } catch (err) {
      o.log(`cannot follow promotions in the state bucket (${(err as Error).message}): a promotion of another standby will not stop this one from applying what the old primary sends; allow this user to watch $KV.${stateBucket(o.stream)}.fence.> (SECURITY.md)`);
      return;
    }
    const loaded = new Promise<void>((resolve) => {
      if (listed.size === 0) resolve();
      // A first watch that ended (said by follow) has nothing more to tell.
      void this.follow((name) => {
        listed.delete(name);
        if (listed.size === 0) resolve();
      }, resolve);
    });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), DEFAULTS.replay.fenceLoadMs)));
    if (await Promise.race([loaded.then(() => false), late])) {
      o.log(`the state bucket has not told all its fences after ${DEFAULTS.replay.fenceLoadMs / 1000} s (${[...listed].join(', ')} missing); applying meanwhile, and refusing past each fence as soon as it arrives`);
    }
    clearTimeout(timer);
    clearTimeout(this.sayTimer);
    // Said at every start, not only when first learned: an operator restarting a standby that follows a fenced primary sees why it stops.
    const theirs = Object.entries(o.fences.fences).filter(([name, f]) => this.concerns(name) && !this.ours(f));
    this.fresh.length = 0;
    if (theirs.length > 0) this.say(theirs);
  }

  /** Stops following; a promotion heard and not yet said is said now. */
  stop(): void {
    this.stopped.abort();
    this.watch?.stop();
    clearTimeout(this.sayTimer);
    this.sayTimer = undefined;
    this.flush();
  }

  /**
   * Takes each fence as it is written; `seen` hears every journal whose record arrived, and
   * `firstEnded` when the first watch ends. A watch that ends before `stop()` is begun again
   * (a broken one said once): fences held here refuse meanwhile.
   */
  private async follow(seen: (name: string) => void, firstEnded: () => void): Promise<void> {
    let said = false;
    while (!this.stopped.signal.aborted) {
      try {
        this.watch ??= await watchKind(this.o.kv, 'fence');
        for await (const { name, record } of this.watch.records) {
          if (!this.concerns(name)) continue;
          if (record !== undefined) this.take(name, record);
          seen(name);
        }
      } catch (err) {
        if (!said && !this.stopped.signal.aborted) this.o.log(`the watch of promotions in the state bucket broke (${(err as Error).message}); fences already held here still refuse; watching again every ${DEFAULTS.replay.fenceRewatchMs / 1000} s`);
        said = true;
      }
      this.watch = undefined;
      firstEnded();
      await pause(DEFAULTS.replay.fenceRewatchMs, this.stopped.signal);
    }
  }

  private take(name: string, f: Fence): void {
    const got = this.o.fences.adopt(name, f);
    if (got === 'new') {
      if (this.ours(f)) return;
      this.fresh.push([name, f]);
      clearTimeout(this.sayTimer);
      this.sayTimer = setTimeout(() => this.flush(), DEFAULTS.replay.fenceSayMs);
    } else if (got === 'other' && !this.saidOther.has(name)) {
      this.saidOther.add(name);
      const held = this.o.fences.fences[name];
      this.o.log(`the state bucket fences journal ${name} at ${positionLabel(f)} (promotion of ${promotedBy(f)} at ${f.at}); this standby holds the fence at ${positionLabel(held)} (promotion of ${promotedBy(held)} at ${held.at}) and keeps it: a fence that moved would change what was already refused here`);
    }
  }

  private flush(): void {
    if (this.fresh.length === 0) return;
    this.say(this.fresh.splice(0));
  }

  /** One loud line per promotion, and one more for each journal this standby is ahead on. */
  private say(fences: [string, Fence][]): void {
    const here = this.o.positions();
    const byPromotion = new Map<string, [string, Fence][]>();
    for (const [name, f] of fences) byPromotion.set(promotedBy(f), [...(byPromotion.get(promotedBy(f)) ?? []), [name, f]]);
    for (const [who, group] of byPromotion) {
      group.sort(([a], [b]) => a.localeCompare(b));
      const at = group.map(([, f]) => f.at).sort()[0];
      const stands = group.map(([name, f]) => {
        const pos = here[name];
        const c = pos === undefined ? -1 : comparePosition(pos, f);
        return `${name} at ${pos === undefined ? 'nothing' : positionLabel(pos)} (${c < 0 ? 'behind the fence: it goes on applying up to it' : c === 0 ? 'at the fence' : 'AHEAD of the fence'})`;
      });
      this.o.log(`THE PRIMARY WAS FENCED: ${who} was promoted to primary at ${at}: ${group.map(([name, f]) => `journal ${name} fenced at ${positionLabel(f)}`).join(', ')}. ` +
        `This standby (${this.o.standby}) follows a fenced primary: it applies the old primary's entries up to each fence and refuses every later one (split brain, quarantined). ` +
        `Here: ${stands.join(', ')}. Point this standby at the new primary (README, "Several standbys").`);
      for (const [name, f] of group) {
        const pos = here[name];
        if (pos === undefined || comparePosition(pos, f) <= 0) continue;
        // Numbering goes on across a journal's epochs unless its spool was lost: then only "later" is known.
        const past = pos.s > f.s ? `${pos.s - f.s} entries` : 'entries of a later epoch';
        this.o.log(`THIS STANDBY HOLDS CHANGES THE NEW PRIMARY DOES NOT HAVE: journal ${name} was applied here up to ${positionLabel(pos)}, ${past} past the fence at ${positionLabel(f)}. ` +
          `They are kept, not rolled back: copy what the new primary needs from this standby's tree before pointing it at the new primary, whose baseline then makes it equal.`);
      }
    }
  }

  /** Whether journal `name` is one this replayer applies (a key that is no journal's name, written by hand or by malice, is none). */
  private concerns(name: string): boolean {
    return validJournalName(name) && (this.o.journal === undefined || name === this.o.journal);
  }

  /** A fence of this standby's own promotion (one of an older version names only the host). */
  private ours(f: Fence): boolean {
    return f.standby !== undefined ? f.standby === this.o.standby : f.by === os.hostname();
  }
}
