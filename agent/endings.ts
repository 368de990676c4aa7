/**
 * How the agent ends with its process. A Node process ends in one of two ways the agent can see:
 *
 * - through 'exit' (the event loop ran dry, process.exit(), an uncaught exception): the flush must
 *   cover what the application's own exit handlers journal, whether they were registered before
 *   or after the agent's. process.emit is wrapped (as signal-exit does) because nothing else runs
 *   after every 'exit' listener: emit walks a copy of the listener list, so no listener can move
 *   itself to its end at exit time.
 * - through SIGTERM, SIGINT or SIGHUP with no handler of the application's, which ends the process
 *   without 'exit': the agent flushes, then raises the signal again with its own handler gone, so
 *   the process ends as it would have (killed by that signal), as pino does. While the application
 *   (or a library: signal-exit counts the listeners) has a handler of its own, the agent has none
 *   there at all, so it neither delays nor changes what that handler does.
 *
 * Once the process is ending, nothing batches: each change journaled later is shipped before the
 * call that made it returns, all of it within UNDERSTUDY_EXIT_TIMEOUT_MS from the start of the end.
 */
import { isMainThread } from 'node:worker_threads';
import { warnOnce } from './log';
import type { Journal } from './journal';
import type { Shipper } from './shipper';
import { DEFAULTS } from '../lib/settings';

/** What the endings need of a running agent. */
export interface EndingAgent {
  name: string;
  exitTimeoutMs: number;
  /** Journals what an ending must add before the flush (the end of transactions still open). */
  beforeFlush?: () => void;
  journal: Pick<Journal, 'dir' | 'onAppend' | 'markEnded'>;
  shipper: Pick<Shipper, 'flush' | 'positions' | 'waitReported'>;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
const REPORT_WAIT_MS = DEFAULTS.exitReportWaitMs;

type Emit = (this: NodeJS.Process, event: string | symbol, ...args: unknown[]) => boolean;

/** Makes every ending of this process flush `agent`'s journal; returns the undo. */
export function installEndings(agent: EndingAgent): () => void {
  let deadline: number | undefined;
  let ended = false;
  let raising = false;
  let steppingAside = false;
  const left = (): number => Math.max(0, (deadline ?? Date.now()) - Date.now());

  /** Ships what is spooled, waiting at most until the deadline; says once what stays behind. */
  const shipOut = (why: string): boolean => {
    if (agent.shipper.flush(left())) return true;
    const { appended, acked } = agent.shipper.positions();
    warnOnce('exit', `journal "${agent.name}": ${appended - acked} entries not yet in JetStream at ${why}; they stay in ${agent.journal.dir} and the next process named "${agent.name}" ships them`);
    return false;
  };

  const begin = (why: string): void => {
    if (deadline !== undefined) return;
    deadline = Date.now() + agent.exitTimeoutMs;
    if (agent.beforeFlush !== undefined) guarded(why, agent.beforeFlush);
    shipOut(why);
    const notify = agent.journal.onAppend;
    agent.journal.onAppend = (seq) => {
      notify(seq);
      shipOut(why);
    };
  };

  const end = (why: string): void => {
    if (ended) return;
    ended = true;
    if (shipOut(why)) agent.shipper.waitReported(Math.min(REPORT_WAIT_MS, left()));
    guarded('the lock', () => agent.journal.markEnded());
    // The lock and the spool stay ours until the process is gone: a library's exit callbacks that
    // run after ours (an outer process.emit wrapper) still journal, each change shipped on the
    // spot, and a process taking this slot meanwhile would write into the same spool. A dead
    // process's lock is taken over (agent/spool-lock).
  };

  const guarded = (what: string, fn: () => void): void => {
    try {
      fn();
    } catch (err) {
      warnOnce(`ending:${what}`, `journal "${agent.name}": the flush at ${what} failed: ${(err as Error).message}`);
    }
  };

  const original = process.emit as Emit;
  const emit: Emit = function (this: NodeJS.Process, event, ...args) {
    if (event !== 'exit') return Reflect.apply(original, this, [event, ...args]) as boolean;
    guarded('exit', () => begin('exit'));
    try {
      return Reflect.apply(original, this, [event, ...args]) as boolean;
    } finally {
      guarded('exit', () => end('exit'));
    }
  };
  process.emit = emit as typeof process.emit;

  const onSignal = (sig: NodeJS.Signals): void => {
    // An application handler added during this very emit: it decides, not us.
    if (process.listenerCount(sig) > 1) return;
    guarded(sig, () => {
      begin(sig);
      end(sig);
    });
    raising = true;
    process.removeListener(sig, onSignal);
    // With no listener left Node restores the default action, so this ends the process by `sig`.
    process.kill(process.pid, sig);
  };
  const isOurs = (event: string | symbol): event is NodeJS.Signals => (SIGNALS as readonly (string | symbol)[]).includes(event);
  const onNewListener = (event: string | symbol, listener: unknown): void => {
    if (!isOurs(event) || listener === onSignal) return;
    // Once the new listener is in: removed now, ours would be the last one, and Node would stop
    // catching the signal just before the application's handler is added.
    queueMicrotask(() => {
      if (process.listenerCount(event) < 2) return;
      steppingAside = true;
      process.removeListener(event, onSignal);
      steppingAside = false;
    });
  };
  const onRemoveListener = (event: string | symbol, listener: unknown): void => {
    if (!isOurs(event) || listener === onSignal || steppingAside || raising) return;
    if (process.listenerCount(event) === 0) process.on(event, onSignal);
  };
  // Signals reach the main thread only; a worker thread ends through 'exit' (or with its process).
  if (isMainThread) {
    for (const sig of SIGNALS) if (process.listenerCount(sig) === 0) process.on(sig, onSignal);
    process.on('newListener', onNewListener);
    process.on('removeListener', onRemoveListener);
  }

  return () => {
    process.removeListener('newListener', onNewListener);
    process.removeListener('removeListener', onRemoveListener);
    for (const sig of SIGNALS) process.removeListener(sig, onSignal);
    if (process.emit === emit) process.emit = original as typeof process.emit;
  };
}
