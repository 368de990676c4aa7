/** Public API of understudy: what an application, or a tool built on it, may use. */
import * as path from 'node:path';
import { runningAgent } from './agent/agent';
import { setQueueName } from './agent/shims/queue-name';
import { loadConfig, loadPendingJobs, type PendingJob } from './replayer/replicas';
import { DEFAULTS } from './lib/settings';
import { SettingsError } from './lib/errors';

export type { Entry, EntryHeader, Op, OpName } from './lib/entry';
export { decodeEntry, encodeEntry } from './lib/codec';
export { UnderstudyError, SettingsError, DecodeError, ConfinementError, TransportError, JournalError, ApplyError } from './lib/errors';

/** Positions of this process's journal: last spooled, last in JetStream, last applied on the standby. */
export interface JournalPosition {
  name: string;
  epoch: number;
  appended: number;
  acked: number;
  applied: number;
}

/** Where this process's journal stands, or undefined when the agent is not running. */
export function journalPosition(): JournalPosition | undefined {
  const a = runningAgent();
  if (a === undefined) return undefined;
  return { name: a.settings.name, epoch: a.journal.epoch, ...a.shipper.positions() };
}

/**
 * Blocks until every change journaled so far is in JetStream, or `timeoutMs` passes.
 * Returns true when all of it was shipped (true as well when no agent runs).
 */
export function flush(timeoutMs = 5000): boolean {
  const a = runningAgent();
  return a === undefined ? true : a.shipper.flush(timeoutMs);
}

/**
 * Runs `fn` as one transaction: every change it makes (fs, config, queue, sync or async) is
 * journaled with the transaction's id, between a begin and an end entry, and the standby applies
 * them together once the end arrives, or none of them if the primary dies first. The end is
 * journaled whether `fn` resolves or throws; its result or error passes through unchanged. Inside
 * another transaction it joins that one. Without the agent it just runs `fn`. No rollback on the
 * primary and no isolation: see README, "Transactions".
 */
export async function transaction<T>(fn: () => T | Promise<T>): Promise<T> {
  const t = runningAgent()?.transactions;
  return t === undefined ? fn() : t.run(fn);
}

export type { PendingJob };

/** The standby's state directory: `stateDir` if given, else UNDERSTUDY_STATE_DIR, else the default. */
function stateDirOf(stateDir: string | undefined): string {
  const dir = stateDir ?? process.env.UNDERSTUDY_STATE_DIR ?? DEFAULTS.stateDir;
  if (!path.isAbsolute(dir)) throw new SettingsError(`state directory ${dir} is not an absolute path`);
  return dir;
}

/**
 * On the standby: configuration store `store` (`env`, `nconf`, `convict`, `conf`) as
 * the replayer last committed it, for the application to load at promotion ({} if none).
 */
export function readConfigReplica(store: string, stateDir?: string): unknown {
  return loadConfig(stateDirOf(stateDir), store);
}

/**
 * On the standby: the jobs of queue `name` enqueued on the primary and not finished
 * there, in order, with their payloads, for the application to run again after promotion.
 */
export function pendingJobs(name: string, stateDir?: string): PendingJob[] {
  return loadPendingJobs(stateDirOf(stateDir), name);
}

/**
 * On the primary: names queue `q` (fastq, p-queue, better-queue) in the journal, so
 * the standby finds its jobs under `name` rather than under the file and line that
 * created it. Throws on a name that is not 1-128 of letters, digits and `_ - . : @`.
 */
export function nameQueue<Q extends object>(q: Q, name: string): Q {
  setQueueName(q, name);
  return q;
}
