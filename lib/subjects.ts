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

/**
 * Subject on which a standby announces, as each commit ends, what it applied and fsynced of a
 * journal: strong mode's callers wait on it (one hop), the state bucket's `applied` record being
 * the lasting copy (a put, then a watch: two or more). Core NATS, so a notice nobody hears is lost.
 */
export function appliedSubject(stream: string, name: string): string {
  return `understudy.${stream.toLowerCase()}.applied.${name}`;
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

/**
 * Request subject on which the running replayer of standby `standby` (its key: name, or
 * name.journal) describes its tree to `understudy verify`: one per standby, so that a verify
 * compares against the standby it means, not whichever answers first.
 */
export function verifySubject(stream: string, standby: string): string {
  return `understudy.${stream.toLowerCase()}.verify.${standby}`;
}

/** True when `key` can be a standby's key: its name, or name.journal, each one subject token. */
export function validStandbyKey(key: string): boolean {
  const parts = key.split('.');
  return parts.length <= 2 && parts.every((p) => TOKEN.test(p));
}
