import { comparePosition } from '../../lib/entry';
import { Barriers, type Barriered, type BarrierLimits } from './barriers';
import { Sequencer, type Applied, type Sequenced } from './sequencer';

/** The standby's order of one replayer: the per-journal Sequencer, then the checkpoint and transaction Barriers after it. */
export interface Order<T extends Sequenced & Barriered> {
  sequencer: Sequencer<T>;
  barriers: Barriers<T>;
}

/**
 * Builds the two so that they agree on where each journal stands: the sequencer orders against
 * the last entry the barriers were given (held or staged there, not yet applied) or the applied
 * position, whichever is further; and what the barriers hold keeps the stream position back.
 */
export function makeOrder<T extends Sequenced & Barriered>(applied: (journal: string) => Applied | undefined, limits: BarrierLimits): Order<T> {
  const barriers: Barriers<T> = new Barriers<T>(limits, applied);
  const position = (j: string): Applied | undefined => {
    const a = barriers.taken(j);
    const b = applied(j);
    if (a === undefined) return b;
    return b === undefined || comparePosition(a, b) >= 0 ? a : b;
  };
  return { sequencer: new Sequencer<T>(position, limits.maxHeld, () => barriers.holding), barriers };
}
