/**
 * What the standby reads journals from, in the replayer's own terms: stream messages in
 * stream order from a position, and the few facts about the stream it asks for. The
 * JetStream implementation is ./jetstream; ./memory is one for tests. Nothing past this
 * seam sees a transport's own types.
 */

/** One stream message: its bytes, where it is, and whether more was stored after it. */
export interface SourceMessage {
  /** The stream's sequence of this message: a restart resumes after the last one consumed. */
  readonly seq: number;
  /** The journal's subject it was published on (lib/subjects). */
  readonly subject: string;
  /** One entry, or a batch of them (lib/batch). */
  readonly data: Uint8Array;
  /** The signature header it carries, if any (lib/signing). */
  readonly signature?: string;
  /** Messages of the reader's journals stored after this one when it was delivered: 0 means it was the last. */
  readonly pending: number;
}

/** The facts about the stream the replayer needs. */
export interface StreamFacts {
  /** When the stream was made: a stream deleted and made again numbers from 1 with a new value here. */
  created: string;
  /** Sequence of the stream's last message (0 when empty). */
  lastSeq: number;
  bytes: number;
  /** Past this the stream refuses entries. */
  maxBytes: number;
}

/** Where a reader starts and how far it goes. */
export interface ReadFrom {
  /** First stream sequence to deliver. */
  fromSeq: number;
  /** Only this journal's messages; every journal's when absent. */
  journal?: string;
  /** Stop once the stream's last message was delivered (a drain), instead of waiting for more. */
  toEnd: boolean;
  /** The stream's identity the position is of: a follower stops when the stream changes under it. */
  created?: string;
}

/** An open reader: messages in stream order until stopped, the end reached (toEnd), or the stream changed. */
export interface JournalReader extends AsyncIterable<SourceMessage> {
  /**
   * Whether the last message delivered (before any, the position opened at) was the stream's
   * last: only then can a journal behind its agent mean entries are missing, not merely ahead.
   */
  readonly caughtUp: boolean;
  /**
   * Messages already delivered to this reader and not yet handed out: a message's `pending`
   * counts only what the stream still held when it was sent, so several that came while the
   * replayer was busy (a commit) each say 0 although more wait here.
   */
  readonly buffered: number;
  /** Asks the stream again how many messages remain after the last delivered (a message's own count can be wrong). */
  remaining(): Promise<number>;
  /** Ends the iteration; the message being handled is the last. */
  stop(): void;
}

/** The stream of journals as the standby reads it. */
export interface JournalSource {
  /** The stream's identity, last sequence and size. */
  info(): Promise<StreamFacts>;
  /** The stream's last message of `journal`, or undefined when it holds none. */
  lastOf(journal: string): Promise<{ seq: number; data: Uint8Array } | undefined>;
  /** Opens a reader at `at.fromSeq`. */
  open(at: ReadFrom): Promise<JournalReader>;
  /** Makes the stream again if it went away (a follower does it between passes). */
  ensure(): Promise<void>;
}
