/**
 * The seam between a journal's shipper and where its entries go (Litestream's ReplicaClient):
 * everything the shipper asks of the other side, and nothing of how it is done. The JetStream
 * implementation is lib/transport/jetstream.ts; lib/transport/memory.ts is one for unit tests.
 * test/journal-transport.test.ts runs one list of cases against both.
 */
import type { CheckpointReply } from '../checkpoint-protocol';
import { TransportError } from '../errors';
import type { StateEntry, StateKind, StateRecords } from '../state-bucket';
import type { ResendReply, ResendRequest } from '../subjects';

/** One message of a journal: spool frames (lib/batch), its Nats-Msg-Id, and its signature header's value when signed. */
export interface JournalMessage {
  /** name.epoch.seq[-last], plus `.again.<time>` on a resend (lib/subjects). */
  id: string;
  body: Uint8Array;
  /** `<key id>:<base64>` (lib/signing), carried in SIGNATURE_HEADER. */
  signature?: string;
}

/** What the stream answered for a message it holds. */
export interface PublishAck {
  /** The stream's sequence of the message. */
  seq: number;
  /** The stream already held a message with this id (within its de-duplication window). */
  duplicate: boolean;
}

/**
 * Which stream the journal ships to. A stream is known by its creation time: one deleted and
 * made again (or a new server) is another stream, which holds nothing of what went to the old one.
 */
export interface StreamIdentity {
  created: string;
}

/** The state bucket's records (lib/state-bucket) as a journal's shipper reads and writes them. */
export interface StateStore {
  /** The record `kind.name`; undefined when absent or not a record of `kind`; rejects when the bucket cannot be read. */
  read<K extends StateKind>(kind: K, name: string): Promise<StateRecords[K] | undefined>;
  /** Writes `kind.name`; rejects as the put does. */
  write<K extends StateKind>(kind: K, name: string, value: StateRecords[K]): Promise<void>;
  /** Each record `kind.name` as it is written, from the current one on; ends when the transport closes. */
  watch<K extends StateKind>(kind: K, name: string): AsyncIterable<StateRecords[K]>;
  /** Every record of `kind`, whatever its name, with its revision, from the current ones on (a deletion too); ends when the transport closes. */
  watchEach<K extends StateKind>(kind: K): AsyncIterable<StateEntry<K>>;
  /** Writes `kind.name` only if its revision is still `revision`: the new revision, or undefined when another write came first. */
  update<K extends StateKind>(kind: K, name: string, value: StateRecords[K], revision: number): Promise<number | undefined>;
}

/** What the shipper does with a standby's request to publish entries again (pull catch-up). */
export type ResendHandler = (req: ResendRequest) => Promise<ResendReply>;

/** What the shipper does with `understudy checkpoint`'s requests (lib/checkpoint-protocol); it reads the request itself. */
export type CheckpointHandler = (request: string) => Promise<CheckpointReply>;

/** Answers one checkpoint request with `handler`, as the JSON to send back; a handler's failure is an answer that refuses. */
export async function answerCheckpoint(handler: CheckpointHandler, request: string): Promise<string> {
  const reply = await (async () => handler(request))().catch((e: Error): CheckpointReply => ({ ok: false, why: e.message }));
  return JSON.stringify(reply);
}

/** Where one journal's entries go, and how its shipper talks to the standby. */
export interface JournalTransport {
  /** Publishes one message on the journal's subject; resolves with the stream's ack, rejects (PublishTimeoutError when `timeoutMs` ran out first). */
  publish(msg: JournalMessage, opts?: { timeoutMs?: number }): Promise<PublishAck>;
  /** The stream's identity, creating the stream when it is missing; rejects when it can do neither. */
  ensureStream(opts?: { timeoutMs?: number }): Promise<StreamIdentity>;
  /** The body of the journal's newest message in the stream, undefined when it holds none; rejects when it cannot be asked. */
  lastMessage(opts?: { timeoutMs?: number }): Promise<Uint8Array | undefined>;
  /** Opens (creating when needed) the state bucket. */
  openState(): Promise<StateStore>;
  /** Answers resend requests for the journal with `handler`, one at a time as they come; resolves once requests reach it (a request before then finds no responder). */
  serveResends(handler: ResendHandler): Promise<void>;
  /**
   * Answers checkpoint requests for the journal with `handler`, each as it comes (an abort must
   * reach the agent while its prepare still waits); resolves once requests reach it.
   */
  serveCheckpoints(handler: CheckpointHandler): Promise<void>;
  /**
   * Each applied position a standby announces for the journal as its commit ends (on
   * lib/subjects' appliedSubject), from now on; ends when the transport closes, rejects when the
   * subscription is refused (a permission). Notices are not kept: one sent while nobody listened
   * is gone, and the state bucket's `applied` record is what a late reader goes by.
   */
  appliedNotices(): AsyncIterable<StateRecords['applied']>;
  /** Calls `listener` each time the connection moves to another server (what was in flight may never be answered). */
  onReconnect(listener: () => void): void;
  /** Lets go of the connection; watches end. */
  close(): Promise<void>;
}

/** A publish that had no answer in time: the way may still be open (a slow leader), so the stream is not made again. */
export class PublishTimeoutError extends TransportError {}

/**
 * The stream answered and refused the message (full at max_bytes with discard new, or another
 * of its limits): the way is open, nothing is wrong with the connection, and the entries wait
 * in the spool until the stream takes them again.
 */
export class StreamRefusedError extends TransportError {}

/**
 * One resend request as it travels (JSON), answered by `handler` as JSON: a request that does
 * not parse, or a handler that fails, is answered with why, never left without an answer.
 */
export async function answerResend(handler: ResendHandler, request: string): Promise<string> {
  const reply = await (async () => handler(JSON.parse(request) as ResendRequest))().catch((e: Error): ResendReply => ({ resent: 0, error: e.message }));
  return JSON.stringify(reply);
}
