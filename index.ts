/** Public API of understudy: what an application, or a tool built on it, may use. */
import { runningAgent } from './agent/agent';

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
