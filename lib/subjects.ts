/**
 * Subject and identifier names. One stream holds every journal; each journal
 * publishes on its own subject so a replayer (or a permission) can select it.
 */

const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

/** True when `name` can be a journal name (one NATS subject token). */
export function validJournalName(name: string): boolean {
  return TOKEN.test(name);
}

/** Subject prefix of every journal in a stream. */
export function journalPrefix(stream: string): string {
  return `understudy.${stream.toLowerCase()}.journal`;
}

/** Subject a journal's entries are published on. */
export function journalSubject(stream: string, name: string): string {
  return `${journalPrefix(stream)}.${name}`;
}

/** Subject filter of every journal in the stream. */
export function allJournalsSubject(stream: string): string {
  return `${journalPrefix(stream)}.*`;
}

/** The Nats-Msg-Id that makes a re-publish of the same entry a duplicate. */
export function msgId(name: string, epoch: number, seq: number): string {
  return `${name}.${epoch}.${seq}`;
}

/** Key-value bucket where agents and replayers leave their positions for `status`. */
export function stateBucket(stream: string): string {
  return `${stream}_STATE`;
}

/** KV key of what an agent last journaled and shipped. */
export function agentKey(name: string): string {
  return `agent.${name}`;
}

/** KV key of what the replayer last applied. */
export function appliedKey(name: string): string {
  return `applied.${name}`;
}

/** KV key where `understudy watch --name NAME` says what it has done. */
export function watchKey(name: string): string {
  return `watch.${name}`;
}

/** What a watcher leaves under watchKey: its counts and its last full reconciliation. */
export interface WatchStatus {
  name: string;
  journaled: number;
  polled: number;
  lastPass?: { startedAt: number; finishedAt: number; objects: number; mended: number; examples: string[] };
  /** Mended by all its full passes since it started (absent from watchers older than this field). */
  mendedTotal?: number;
  time: number;
}

/** KV key where a standby says which objects it cannot be sure equal the primary's. */
export function doubtsKey(standby: string): string {
  return `doubts.${standby}`;
}

/** What a standby leaves under doubtsKey: objects it may hold differently from the primary, and why. */
export interface DoubtsReport {
  standby: string;
  count: number;
  /** The first few, for the status line; `count` says how many in all. */
  objects: { root: string; path: string; why: string; at: number }[];
  time: number;
}

/** KV key where a promotion leaves the fence of a journal, for its old primary to see. */
export function fenceKey(name: string): string {
  return `fence.${name}`;
}

/** Request subject on which a journal's agent resends entries from its spool (pull catch-up). */
export function resendSubject(stream: string, name: string): string {
  return `understudy.${stream.toLowerCase()}.resend.${name}`;
}

/** What the replayer asks for: entries `from`..`to` of a journal, by seq. */
export interface ResendRequest { from: number; to: number }
/** What the agent answers: how many it published again, or why it could not. */
export interface ResendReply {
  resent: number;
  error?: string;
  /**
   * The first entry the agent's spool still holds, when the request began before it: what
   * is older was trimmed after a standby applied it (or the spool was replaced) and can never
   * be resent.
   */
  oldest?: { e: number; s: number };
}

/** KV key where `understudy baseline` leaves how its last run went. */
export function baselineKey(name: string): string {
  return `baseline.${name}`;
}

/** KV key where `understudy verify` leaves how its last run went. */
export function verifyKey(name: string): string {
  return `verify.${name}`;
}

/** Request subject on which a running replayer describes its tree to `understudy verify`. */
export function verifySubject(stream: string): string {
  return `understudy.${stream.toLowerCase()}.verify`;
}

/** The last baseline, as `status` and the metrics show it. */
export interface BaselineReport {
  state: 'running' | 'done' | 'failed';
  started: number;
  finished?: number;
  roots: string[];
  objects: number;
  bytes: number;
  error?: string;
}

/** The last verify, as `status` and the metrics show it. */
export interface VerifyReport {
  time: number;
  roots: string[];
  equal: boolean;
  differences: number;
  repaired: number;
  /** Objects that kept changing throughout and so could not be compared. */
  unsettled: number;
}
