import { pause } from '../lib/retry';
import { DEFAULTS } from '../lib/settings';

/**
 * Drain versus follow, decided once: `understudy replay --drain` applies what the stream holds
 * and returns, failing on the first error; without it the replayer runs until stopped and
 * waits out whatever comes and goes (NATS, the stream, the standby's disk).
 */
export interface RunPolicy {
  /** Until when NATS and JetStream are waited for (ms since the epoch); for ever when undefined. */
  deadline(): number | undefined;
  /** A pass stops at the stream's last message, and does not begin when nothing is ahead. */
  readonly toEnd: boolean;
  /** How often catch-up runs during a pass; only between passes when undefined. */
  readonly catchUpEveryMs: number | undefined;
  /** A full or failing standby disk, a failed commit or a stream gone away is waited out, rather than thrown. */
  readonly waitsOut: boolean;
  /** Missing entries still held at the end are an error. */
  readonly refusesGaps: boolean;
  /** After a pass that ended cleanly (`round` counts from 0): whether to read again. */
  again(round: number, steps: { catchUp: () => Promise<boolean>; ensure: () => Promise<void>; signal?: AbortSignal }): Promise<boolean>;
}

/** Applies what the stream holds, asks the agents for what it lacks, and stops. */
export const drain: RunPolicy = {
  deadline: () => Date.now() + DEFAULTS.replay.patienceMs,
  toEnd: true,
  catchUpEveryMs: undefined,
  waitsOut: false,
  refusesGaps: true,
  // An empty fetch is not "caught up": the agents may have shipped more than the stream still holds.
  again: async (round, { catchUp }) => round < DEFAULTS.replay.drainCatchUpRounds && (await catchUp()),
};

/** Follows the stream until stopped; a pass that ended is begun again after a pause, on a stream made again if need be. */
export const follow: RunPolicy = {
  deadline: () => undefined,
  toEnd: false,
  catchUpEveryMs: DEFAULTS.replay.catchUpEveryMs,
  waitsOut: true,
  refusesGaps: false,
  async again(_round, { ensure, signal }) {
    await pause(DEFAULTS.replay.passPauseMs, signal);
    await ensure().catch(() => undefined);
    return true;
  },
};

/** The policy of a replayer that drains (`--drain`) or follows. */
export function policyFor(draining: boolean): RunPolicy {
  return draining ? drain : follow;
}
