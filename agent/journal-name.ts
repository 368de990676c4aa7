/**
 * Which journal a process or thread takes. Every process of a tree inherits the same
 * UNDERSTUDY_NAME (or runs the same script: a cluster, a PM2 app, a fork pool), so the name
 * is a base and each process takes the first free slot under it: `base`, `base-1`,
 * `base-2`… A worker thread takes `<its process's journal>-t1`, `-t2`… The lock decides
 * (agent/spool-lock): a slot is free when no live process holds it, so a restarted pool
 * takes the same names again, and the process that takes a slot ships what its last
 * holder left spooled.
 *
 * Why not the cluster worker id or PM2's NODE_APP_INSTANCE: a respawned cluster worker gets
 * a new id, and any id some processes have and others lack could pick a name a free slot
 * already took; one rule for every process cannot collide with itself.
 */
import { DEFAULTS } from '../lib/settings';
import { JournalError } from '../lib/errors';
import { Journal, JournalInUseError, type JournalOptions, type OpenReport } from './journal';

/** What a claim found: the open journal and what its recovery said. */
export interface Claimed { journal: Journal; opened: OpenReport }

/** Names are one subject token of at most this many characters (lib/subjects). */
const MAX_NAME = 128;

/** Name of process slot `n` (0 is the base itself) or thread slot `n` (from 1) under `base`. */
export function slotName(base: string, kind: 'process' | 'thread', n: number): string {
  const suffix = kind === 'thread' ? `-t${n}` : n === 0 ? '' : `-${n}`;
  return base.slice(0, MAX_NAME - suffix.length) + suffix;
}

/**
 * Opens the first free journal under `base` in `spoolDir`; throws JournalError when every
 * slot is taken, or the spool cannot be used.
 */
export function claimJournal(spoolDir: string, base: string, kind: 'process' | 'thread', opts: JournalOptions): Claimed {
  const first = kind === 'thread' ? 1 : 0;
  for (let n = first; n < first + DEFAULTS.journalSlots; n++) {
    const journal = new Journal(spoolDir, slotName(base, kind, n), opts);
    try {
      return { journal, opened: journal.open() };
    } catch (err) {
      journal.close();
      if (!(err instanceof JournalInUseError)) throw err;
    }
  }
  throw new JournalError(`every journal from "${slotName(base, kind, first)}" to "${slotName(base, kind, first + DEFAULTS.journalSlots - 1)}" is in use by a live process`);
}

/**
 * True when `name` is a slot under `base` (a process's or one of its threads'), which an
 * agent of the same base may adopt when no live process holds it.
 */
export function isSlotOf(base: string, name: string): boolean {
  if (!name.startsWith(base)) return false;
  return /^(?:-\d+)?(?:-t\d+)*$/.test(name.slice(base.length));
}
