import { CommitTimeoutError } from '../../commit-wait';
import { objectJournal } from '../../objects';
import { warnOnce } from '../../log';
import type { Fn } from './types';

/**
 * Wraps a configuration library's method so `journal` runs after the real call returns.
 * A problem journaling is said once and never thrown (the change was made), except a
 * sync or strong mode timeout under UNDERSTUDY_ON_TIMEOUT=fail, which fails the call as
 * it fails a file write. `what` names the change in the warning ("an nconf change").
 */
export function journalAfter<Self>(orig: Fn, what: string, journal: (self: Self, args: unknown[]) => void): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const oj = objectJournal();
    if (oj === undefined) return orig.apply(this, args);
    // The freeze gate holds the change before it is made (agent/freeze).
    return oj.gated(() => {
      const result = orig.apply(this, args);
      try {
        journal(this as Self, args);
      } catch (err) {
        if (err instanceof CommitTimeoutError) throw err;
        warnOnce(`${what}:${(err as Error).message}`, `${what} was made but could not be journaled: ${(err as Error).message}`);
      }
      return result;
    });
  };
}

/**
 * A queue's method that changes it (push, add, kill, clear) run through the freeze gate
 * (agent/freeze): a checkpoint's freeze holds it, with everything it journals, until the thaw.
 */
export function gatedCall(method: Fn): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const oj = objectJournal();
    return oj === undefined ? method.apply(this, args) : oj.gated(() => method.apply(this, args));
  };
}
