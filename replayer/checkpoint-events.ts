import { positionLabel } from '../lib/entry';
import { NO_CHECKPOINTS, type CheckpointKeeper, type CheckpointMark } from './checkpoints/keeper';
import type { Barriers, BarrierEvent } from './order/barriers';
import type { Held } from './intake';
import type { PositionStore } from './state';

/** What the checkpoint side of the intake works with; the replayer owns each. */
export interface CheckpointParts {
  barriers: Barriers<Held>;
  store: PositionStore;
  keeper?: CheckpointKeeper;
  log: (line: string) => void;
  /** Journals whose positions moved since the last commit. */
  changed: Set<string>;
}

/**
 * What the standby does with what the order decides of checkpoints: says it (once per
 * checkpoint), tells the keeper, keeps each journal's hold in the positions, and reaches a
 * checkpoint whose journals all arrived: a commit makes the tree and the positions at the cut
 * durable, the keeper is told, and only then are the journals released.
 */
export class CheckpointEvents {
  /** Checkpoints whose journals all arrived, to be committed and reached. */
  private due: CheckpointMark[] = [];
  private readonly saidPending = new Set<string>();
  private saidSingle = false;

  constructor(private readonly o: CheckpointParts) {}

  /** Whether a checkpoint waits to be reached. */
  get hasDue(): boolean {
    return this.due.length > 0;
  }

  /** Forgets the checkpoints due (the replayer reads again from its last good commit). */
  forget(): void {
    this.due = [];
  }

  /** Takes what the barriers decided since the last call. */
  take(): void {
    for (const ev of this.o.barriers.drainEvents()) this.event(ev);
  }

  /** Reaches every checkpoint due: `commit` first, then the keeper, then `release` (which applies what the journals held). */
  async reach(commit: () => Promise<void>, release: (mark: CheckpointMark) => Promise<void>): Promise<void> {
    while (this.due.length > 0) {
      const mark = this.due[0];
      // Even with nothing applied since (holds found again after a restart): the cut is made durable before it is reached.
      for (const c of mark.cut) this.o.changed.add(c.j);
      await commit();
      this.due.shift();
      this.saidPending.delete(mark.id);
      this.tell(() => (this.o.keeper ?? NO_CHECKPOINTS).reached(mark));
      this.o.log(`checkpoint ${mark.name} (${mark.id}) reached: ${mark.cut.map((c) => positionLabel(c)).join(', ')}`);
      await release(mark);
    }
  }

  private event(ev: BarrierEvent): void {
    const keeper = this.o.keeper ?? NO_CHECKPOINTS;
    switch (ev.kind) {
      case 'pending':
        if (!this.saidPending.has(ev.mark.id)) this.o.log(`checkpoint ${ev.mark.name} (${ev.mark.id}): waiting for ${ev.waitingFor.join(', ')} to reach the cut`);
        this.saidPending.add(ev.mark.id);
        this.tell(() => keeper.pending(ev.mark, ev.waitingFor));
        return;
      case 'complete':
        this.due.push(ev.mark);
        return;
      case 'failed': {
        this.saidPending.delete(ev.mark.id);
        const single = ev.single === true;
        if (!single || !this.saidSingle) this.o.log(`checkpoint ${ev.mark.name} (${ev.mark.id}) cannot be reached on this standby: ${ev.why}`);
        this.saidSingle ||= single;
        this.tell(() => keeper.failed(ev.mark, ev.why));
        return;
      }
      case 'cut-short':
        this.o.log(`journal ${ev.journal}: transaction ${ev.ids.join(', ')} can never end: its process ended inside it (a new process of the journal began at ${ev.at}); its changes are on the primary's disk, which the journal goes on from, so its ${ev.entries} staged entries are applied as they are`);
        return;
      case 'never-ended':
        this.o.log(`journal ${ev.journal}: transaction ${ev.open.join(', ')} never ended on the primary: its ${ev.aside} entries are set aside${ev.applied > 0 ? `; the ${ev.applied} staged behind it that belong to no open transaction (one that ended meanwhile, calls outside any) are applied` : ''}`);
        return;
      case 'released':
        ev.journals.forEach((j, i) => this.o.store.hold(j, undefined, i === ev.journals.length - 1));
    }
  }

  /** Tells the keeper; a keeper that fails is said, and replication goes on: a checkpoint copy is not worth the standby. */
  private tell(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.o.log(`the checkpoint keeper failed: ${(err as Error).message}`);
    }
  }
}
