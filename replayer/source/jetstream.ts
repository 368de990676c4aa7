import { DeliverPolicy, jetstream, jetstreamManager, type Consumer, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureStream, formatBytes } from '../../lib/nats';
import { DEFAULTS } from '../../lib/settings';
import { SIGNATURE_HEADER } from '../../lib/signing';
import { allJournalsSubject, journalSubject } from '../../lib/subjects';
import type { JournalReader, JournalSource, ReadFrom, SourceMessage, StreamFacts } from './journal-source';

/** Retries a call to NATS, saying once what it waits for (the replayer's policy decides how long). */
export type Patience = <T>(what: string, fn: () => Promise<T>) => Promise<T>;

/** The journal stream in JetStream: an ordered consumer per pass, watched for the ways it can hang. */
export class JetStreamSource implements JournalSource {
  private readonly js: JetStreamClient;

  constructor(nc: NatsConnection, private readonly jsm: JetStreamManager, private readonly stream: string, private readonly replicas: number, private readonly patiently: Patience) {
    this.js = jetstream(nc);
  }

  /** Reaches JetStream and opens (or makes) the stream, waiting as `patiently` does: a cluster may be electing a leader. */
  static async connect(nc: NatsConnection, stream: string, replicas: number, patiently: Patience, log: (line: string) => void): Promise<JetStreamSource> {
    const jsm = await patiently('reach JetStream', () => jetstreamManager(nc));
    await patiently(`open stream ${stream}`, () => ensureStream(jsm, stream, replicas, (bytes) => log(`stream ${stream} created with max_bytes ${formatBytes(bytes)}: the server's JetStream storage is smaller than the default`)));
    return new JetStreamSource(nc, jsm, stream, replicas, patiently);
  }

  async info(): Promise<StreamFacts> {
    const i = await this.jsm.streams.info(this.stream);
    return { created: i.created, lastSeq: i.state.last_seq, bytes: i.state.bytes, maxBytes: i.config.max_bytes };
  }

  async lastOf(journal: string): Promise<{ seq: number; data: Uint8Array } | undefined> {
    const last = await this.jsm.streams.getMessage(this.stream, { last_by_subj: journalSubject(this.stream, journal) }).catch(() => null);
    return last === null ? undefined : { seq: last.seq, data: last.data };
  }

  async ensure(): Promise<void> {
    await ensureStream(this.jsm, this.stream, this.replicas);
  }

  async open(at: ReadFrom): Promise<JournalReader> {
    const consumer = await this.patiently('start a consumer', () => this.js.consumers.get(this.stream, {
      filter_subjects: at.journal === undefined ? allJournalsSubject(this.stream) : journalSubject(this.stream, at.journal),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: at.fromSeq,
    }));
    const pending = (await this.patiently('read the consumer', () => consumer.info(true))).num_pending;
    // A follower stops when the stream is made again: of the one it was opened on, unless told.
    const created = at.created ?? (await this.patiently('read the stream', () => this.info())).created;
    return new JetStreamReader(this, consumer, { ...at, created }, pending === 0, this.patiently);
  }

  /** Stream sequence of the last message a reader of `journal` (every journal when undefined) would get. */
  async lastFor(journal: string | undefined): Promise<number> {
    if (journal === undefined) return (await this.info()).lastSeq;
    return (await this.lastOf(journal))?.seq ?? 0;
  }
}

/** One ordered consumer's messages, with a watchdog for a deleted stream and a stalled consumer. */
class JetStreamReader implements JournalReader {
  caughtUp: boolean;
  private lastSeq: number;
  private lastAt = Date.now();
  private messages: ConsumerMessages | undefined;
  private stopped = false;

  constructor(private readonly source: JetStreamSource, private readonly consumer: Consumer, private readonly at: ReadFrom, caughtUp: boolean, private readonly patiently: Patience) {
    this.caughtUp = caughtUp;
    this.lastSeq = at.fromSeq - 1;
  }

  get buffered(): number {
    return this.messages?.getPending() ?? 0;
  }

  async remaining(): Promise<number> {
    return (await this.patiently('read the consumer', () => this.consumer.info(false))).num_pending;
  }

  stop(): void {
    this.stopped = true;
    void this.messages?.stop();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SourceMessage> {
    if (this.stopped) return;
    // A message can carry 900 KiB of batched entries: few messages at a time keep the client's
    // buffer under its 64 MiB pending limit (past it the server cuts it off as a slow consumer).
    // Not max_bytes: a pull with a few bytes left meets a larger message and is refused (409).
    const messages = await this.consumer.consume({ max_messages: DEFAULTS.replay.consumeMessages });
    this.messages = messages;
    if (this.stopped) void messages.stop();
    const pace = DEFAULTS.replay;
    const watchdog = setInterval(() => this.watch(), this.at.toEnd ? pace.drainWatchMs : pace.followWatchMs);
    try {
      for await (const m of messages) {
        this.lastAt = Date.now();
        this.lastSeq = m.seq;
        this.caughtUp = m.info.pending === 0;
        // A header that is not there reads as '' from nats.js: the seam says undefined.
        yield { seq: m.seq, subject: m.subject, data: m.data, signature: m.headers?.get(SIGNATURE_HEADER) || undefined, pending: m.info.pending };
      }
    } finally {
      clearInterval(watchdog);
      void messages.stop();
    }
  }

  /**
   * An ordered consumer on a deleted stream waits for ever; notice, and stop (the replayer
   * starts over on the new stream). A drain that has read the stream's last message stops,
   * even when a message's pending count said more was coming (seen on nats-server 2.9.10 when
   * an ordered consumer was re-created under load: it waited for ever for a message that did
   * not exist).
   */
  private watch(): void {
    const quiet = Date.now() - this.lastAt >= DEFAULTS.replay.quietMs;
    if (this.at.toEnd) {
      if (quiet) this.source.lastFor(this.at.journal).then((last) => last <= this.lastSeq && this.stop(), () => undefined);
      return;
    }
    this.source.info().then((i) => {
      if (i.created !== this.at.created) this.stop();
      else if (this.at.journal === undefined && quiet && i.lastSeq <= this.lastSeq) this.caughtUp = true;
    }, () => this.stop());
  }
}
