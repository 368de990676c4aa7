/**
 * What `understudy checkpoint` and each agent's shipper say to each other: request/reply on one
 * subject per journal. Modelled on storage consistency groups: prepare every member (each
 * freezes its application's changes and names the position its checkpoint entry will take),
 * then commit with the full cut (each writes its entry there and thaws), or abort (each thaws).
 * An agent thaws by itself `thawAfterMs` after a prepare, whatever comes.
 */
import type { CheckpointCut } from './entry';
import { isJobId, isObjectName } from './objects';
import { validJournalName } from './subjects';

/** Request subject of journal `name`'s agent for checkpoints. */
export function checkpointSubject(stream: string, name: string): string {
  return `understudy.${stream.toLowerCase()}.checkpoint.${name}`;
}

/**
 * Freeze, once no transaction is open and every call in flight is journaled; answer where the entry will go.
 * `sentAt`: when the command sent it, wall clock ms (it runs on the primary's host, as the agents do).
 * A prepare that reaches an agent after `sentAt + thawAfterMs` (the agent was stopped, or the
 * connection held it) is one whose checkpoint has failed already: the agent refuses it rather than freeze.
 */
export interface PrepareRequest { op: 'prepare'; name: string; id: string; thawAfterMs: number; sentAt: number }
/** Write the checkpoint entry at the position prepared, with the whole cut in it; thaw. */
export interface CommitRequest { op: 'commit'; name: string; id: string; cut: CheckpointCut[] }
/** Thaw without writing anything. */
export interface AbortRequest { op: 'abort'; name: string; id: string }
export type CheckpointRequest = PrepareRequest | CommitRequest | AbortRequest;

/**
 * The agent's answer. Prepared: `j`, `e`, `s` is where its entry will go (last appended + 1).
 * Committed: the entry is there and in JetStream (acked); `frozenMs` is how long the application's
 * changes were held. Aborted: thawed. `ok: false` says why not; `notMember` when the journal is
 * not an application's (a command's session, a dead process's journal adopted for its backlog):
 * it has no calls to freeze, and the checkpoint goes on without it.
 */
export type CheckpointReply =
  | { ok: true; j: string; e: number; s: number; frozenMs?: number }
  | { ok: false; why: string; notMember?: true };

/** The longest freeze a request may ask for: a hostile or mistaken one must not stop an application for long. */
export const MAX_THAW_AFTER_MS = 60_000;

/** The request in `text`, or a string saying what is wrong with it. */
export function parseCheckpointRequest(text: string): CheckpointRequest | string {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return 'not JSON';
  }
  if (typeof v !== 'object' || v === null) return 'not an object';
  if (!isObjectName(v.name)) return 'bad name';
  if (!isJobId(v.id)) return 'bad id';
  const { name, id } = v;
  switch (v.op) {
    case 'prepare': {
      const t = v.thawAfterMs;
      if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 1 || t > MAX_THAW_AFTER_MS) return `bad thawAfterMs (1..${MAX_THAW_AFTER_MS})`;
      if (!nat(v.sentAt) || v.sentAt === 0) return 'bad sentAt (when the prepare was sent, wall clock ms; an understudy checkpoint older than this agent sends none)';
      return { op: 'prepare', name, id, thawAfterMs: t, sentAt: v.sentAt };
    }
    case 'commit': {
      const cut = v.cut;
      if (!Array.isArray(cut) || cut.length === 0) return 'bad cut';
      for (const c of cut as Record<string, unknown>[]) {
        if (typeof c !== 'object' || c === null || typeof c.j !== 'string' || !validJournalName(c.j) || !nat(c.e) || !nat(c.s) || c.s === 0) return 'bad cut';
      }
      return { op: 'commit', name, id, cut: (cut as CheckpointCut[]).map(({ j, e, s }) => ({ j, e, s })) };
    }
    case 'abort':
      return { op: 'abort', name, id };
    default:
      return `unknown op ${JSON.stringify(v.op)}`;
  }
}

/** The reply in `text`; a reply that cannot be read is one that refuses. */
export function parseCheckpointReply(text: string): CheckpointReply {
  try {
    const v = JSON.parse(text) as Record<string, unknown>;
    if (v.ok === true && typeof v.j === 'string' && nat(v.e) && nat(v.s)) {
      return { ok: true, j: v.j, e: v.e, s: v.s, ...(nat(v.frozenMs) ? { frozenMs: v.frozenMs } : {}) };
    }
    if (v.ok === false && typeof v.why === 'string') return { ok: false, why: v.why, ...(v.notMember === true ? { notMember: true as const } : {}) };
  } catch {
    // fall through
  }
  return { ok: false, why: `unreadable reply ${JSON.stringify(text.slice(0, 80))}` };
}

function nat(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}
