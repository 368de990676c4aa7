/**
 * The JournalTransport over NATS JetStream: one connection per journal, its subject in the
 * journal stream, its record in the state bucket, and its resend subject (lib/subjects).
 */
import { jetstream, JetStreamApiError, jetstreamManager, type JetStreamClient } from '@nats-io/jetstream';
import { headers, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { connectNats, ensureStream, openStateKv } from '../nats';
import type { NatsSettings } from '../settings';
import { SIGNATURE_HEADER } from '../signing';
import { parseRecord, readState, updateState, watchState, watchStates, writeState, type StateRecords } from '../state-bucket';
import { appliedSubject, journalSubject, resendSubject } from '../subjects';
import { checkpointSubject } from '../checkpoint-protocol';
import { answerCheckpoint, answerResend, type CheckpointHandler, PublishTimeoutError, StreamRefusedError, type JournalMessage, type JournalTransport, type PublishAck, type ResendHandler, type StateStore, type StreamIdentity } from './journal-transport';

/** What a journal's JetStream transport needs to know. */
export interface JetStreamTransportOptions {
  nats: NatsSettings;
  stream: string;
  /** The journal's name: its subject, its resend subject, the client's name. */
  name: string;
  /** Told the size taken when the server had no room for a stream of the default size (the caller says it once). */
  onStreamSmaller?: (bytes: number) => void;
}

/** A journal's transport over a NATS connection of its own. */
export class JetStreamTransport implements JournalTransport {
  private readonly js: JetStreamClient;
  private readonly subject: string;
  private readonly reconnectListeners: (() => void)[] = [];

  private constructor(private readonly nc: NatsConnection, private readonly o: JetStreamTransportOptions) {
    this.js = jetstream(nc);
    this.subject = journalSubject(o.stream, o.name);
    void this.watchStatus();
  }

  /** Connects (waiting for a first server); rejects with TransportError when none accepts now. */
  static async connect(o: JetStreamTransportOptions): Promise<JetStreamTransport> {
    // noAsyncTraces: nats.js otherwise builds an Error per request for its stack, a fifth of the shipper's CPU.
    const nc = await connectNats(o.nats, `understudy-agent:${o.name}`, { waitOnFirstConnect: true, noAsyncTraces: true });
    return new JetStreamTransport(nc, o);
  }

  /** Publishes `msg` with its id (de-duplicated by the stream) and signature header. */
  publish(msg: JournalMessage, opts: { timeoutMs?: number } = {}): Promise<PublishAck> {
    let h;
    if (msg.signature !== undefined) {
      h = headers();
      h.set(SIGNATURE_HEADER, msg.signature);
    }
    return this.js.publish(this.subject, msg.body, { msgID: msg.id, headers: h, timeout: opts.timeoutMs }).then(
      (ack) => ({ seq: ack.seq, duplicate: ack.duplicate }),
      (err: unknown) => {
        if (err instanceof TimeoutError) throw new PublishTimeoutError(err.message, { cause: err });
        // An API error to a publish is the stream's own answer (10077: maximum bytes exceeded).
        if (err instanceof JetStreamApiError) throw new StreamRefusedError(err.message, { cause: err });
        throw err;
      },
    );
  }

  /** The stream as lib/nats's ensureStream finds or makes it. */
  async ensureStream(opts: { timeoutMs?: number } = {}): Promise<StreamIdentity> {
    const jsm = await jetstreamManager(this.nc, opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs });
    const info = await ensureStream(jsm, this.o.stream, this.o.nats.replicas, this.o.onStreamSmaller);
    return { created: info.created };
  }

  /** The journal's last message, asked of the stream by subject. */
  async lastMessage(opts: { timeoutMs?: number } = {}): Promise<Uint8Array | undefined> {
    const jsm = await jetstreamManager(this.nc, opts.timeoutMs === undefined ? {} : { timeout: opts.timeoutMs });
    const last = await jsm.streams.getMessage(this.o.stream, { last_by_subj: this.subject });
    return last?.data ?? undefined;
  }

  /** The stream's state bucket (lib/nats's openStateKv), read and written through lib/state-bucket. */
  async openState(): Promise<StateStore> {
    const kv: KV = await openStateKv(this.nc, this.o.stream, this.o.nats.replicas);
    return {
      read: (kind, name) => readState(kv, kind, name),
      write: (kind, name, value) => writeState(kv, kind, name, value),
      watch: (kind, name) => watchState(kv, kind, name),
      watchEach: (kind) => watchStates(kv, kind),
      update: (kind, name, value, revision) => updateState(kv, kind, name, value, revision),
    };
  }

  /** Each applied notice a standby sends for this journal, from the subscription on; a malformed one is dropped. */
  async *appliedNotices(): AsyncGenerator<StateRecords['applied']> {
    const sub = this.nc.subscribe(appliedSubject(this.o.stream, this.o.name));
    // A refused subscription is told by the server after the SUB; flush so it ends this iterator soon.
    await this.nc.flush();
    for await (const m of sub) {
      const record = parseRecord('applied', m.string());
      if (record !== undefined) yield record;
    }
  }

  /** Answers requests on the journal's resend subject. */
  serveResends(handler: ResendHandler): Promise<void> {
    return this.answerOn(resendSubject(this.o.stream, this.o.name), (text) => answerResend(handler, text));
  }

  /** Answers requests on the journal's checkpoint subject, each as it comes. */
  serveCheckpoints(handler: CheckpointHandler): Promise<void> {
    return this.answerOn(checkpointSubject(this.o.stream, this.o.name), (text) => answerCheckpoint(handler, text));
  }

  /** Replies to every request on `subject` with what `answer` makes of it; resolves once the server has the subscription. */
  private async answerOn(subject: string, answer: (request: string) => Promise<string>): Promise<void> {
    this.nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) return;
        void answer(msg.string()).then((reply) => msg.respond(reply));
      },
    });
    // The server has the subscription once it answered a ping sent after it.
    await this.nc.flush();
  }

  /** Calls `listener` on each reconnect nats.js reports. */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /** Closes the connection; the state bucket's watches end with it. */
  async close(): Promise<void> {
    await this.nc.close();
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (s.type !== 'reconnect') continue;
      for (const listener of this.reconnectListeners) listener();
    }
  }
}
