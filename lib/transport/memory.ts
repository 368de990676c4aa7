/**
 * A JournalTransport in memory, for unit tests of the shipper: a stream of messages that
 * de-duplicates by id as JetStream does, a state bucket as a map, and resend requests routed to
 * the handler. Faults are made on purpose (refusePublish, stallPublish, deleteStream, reconnect).
 */
import { TransportError } from '../errors';
import { parseRecord, type StateEntry, type StateKind, type StateRecords } from '../state-bucket';
import type { ResendReply, ResendRequest } from '../subjects';
import type { CheckpointReply } from '../checkpoint-protocol';
import { answerCheckpoint, answerResend, type CheckpointHandler, type JournalMessage, type JournalTransport, type PublishAck, type ResendHandler, type StateStore, type StreamIdentity } from './journal-transport';

/** A message the memory stream holds. */
export interface StoredMessage extends JournalMessage {
  seq: number;
}

/** The memory transport's state bucket: a map of records with revisions, each written one told to its watchers. */
class MemoryState implements StateStore {
  private readonly records = new Map<string, { value: unknown; revision: number }>();
  private readonly watchers = new Set<{ matches: (key: string) => boolean; push: (key: string, v: unknown, revision: number) => void; end: () => void }>();
  /** One sequence for the bucket, as a KV stream has. */
  private revision = 0;

  /** The record as written last, if any. */
  async read<K extends StateKind>(kind: K, name: string): Promise<StateRecords[K] | undefined> {
    return this.records.get(`${kind}.${name}`)?.value as StateRecords[K] | undefined;
  }

  /** Keeps a copy and tells the watchers. */
  async write<K extends StateKind>(kind: K, name: string, value: StateRecords[K]): Promise<void> {
    this.put(`${kind}.${name}`, value);
  }

  /** Writes only over `revision`, as JetStream's expected-last-subject-sequence does. */
  async update<K extends StateKind>(kind: K, name: string, value: StateRecords[K], revision: number): Promise<number | undefined> {
    const key = `${kind}.${name}`;
    if ((this.records.get(key)?.revision ?? 0) !== revision) return undefined;
    return this.put(key, value);
  }

  /** The current record, then each written, until the transport closes. */
  async *watch<K extends StateKind>(kind: K, name: string): AsyncGenerator<StateRecords[K]> {
    for await (const e of this.follow((k) => k === `${kind}.${name}`)) yield e.value as StateRecords[K];
  }

  /** Every current record of `kind`, then each written, until the transport closes. */
  async *watchEach<K extends StateKind>(kind: K): AsyncGenerator<StateEntry<K>> {
    for await (const e of this.follow((k) => k.startsWith(`${kind}.`))) {
      yield { name: e.key.slice(kind.length + 1), revision: e.revision, record: e.value as StateRecords[K] };
    }
  }

  /** Ends every watch. */
  close(): void {
    for (const w of this.watchers) w.end();
  }

  private put(key: string, value: unknown): number {
    // A copy, as a put over the network would be: the writer may change its object afterwards.
    const copy: unknown = structuredClone(value);
    const revision = ++this.revision;
    this.records.set(key, { value: copy, revision });
    for (const w of this.watchers) if (w.matches(key)) w.push(key, copy, revision);
    return revision;
  }

  private async *follow(matches: (key: string) => boolean): AsyncGenerator<{ key: string; value: unknown; revision: number }> {
    const queue = [...this.records].filter(([k]) => matches(k)).map(([key, r]) => ({ key, ...r }));
    let wake: (() => void) | undefined;
    let ended = false;
    const w = {
      matches,
      push: (key: string, value: unknown, revision: number) => { queue.push({ key, value, revision }); wake?.(); },
      end: () => { ended = true; wake?.(); },
    };
    this.watchers.add(w);
    try {
      for (;;) {
        while (queue.length > 0) yield queue.shift()!;
        if (ended) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.watchers.delete(w);
    }
  }
}

/** One journal's stream, state bucket and resend subject, in memory. */
export class MemoryTransport implements JournalTransport {
  /** What the stream holds, in order. */
  messages: StoredMessage[] = [];
  /** The timeout each publish was given (undefined: none), in the order they came. */
  readonly publishTimeouts: (number | undefined)[] = [];
  /** How many times ensureStream was called. */
  ensureCalls = 0;
  readonly state = new MemoryState();
  private ids = new Map<string, number>();
  private lastSeq = 0;
  private generation = 1;
  private exists = true;
  /** Publishes to fail (with their error) or to leave unanswered ('stall'), by their number. */
  private readonly faults = new Map<number, Error | 'stall'>();
  private publishes = 0;
  private resendHandler: ResendHandler | undefined;
  private checkpointHandler: CheckpointHandler | undefined;
  private readonly reconnectListeners: (() => void)[] = [];
  private readonly noticeListeners = new Set<{ push: (text: string) => void; end: () => void }>();
  private closed = false;

  /** Stores `msg` unless one with its id is there already. */
  async publish(msg: JournalMessage, opts: { timeoutMs?: number } = {}): Promise<PublishAck> {
    this.publishTimeouts.push(opts.timeoutMs);
    const fault = this.faults.get(this.publishes);
    this.faults.delete(this.publishes++);
    if (fault === 'stall') return new Promise<never>(() => undefined);
    if (fault !== undefined) throw fault;
    if (!this.exists) throw new TransportError('no stream holds the journal\'s subject');
    const seen = this.ids.get(msg.id);
    if (seen !== undefined) return { seq: seen, duplicate: true };
    const seq = ++this.lastSeq;
    this.ids.set(msg.id, seq);
    this.messages.push({ ...msg, body: Uint8Array.from(msg.body), seq });
    return { seq, duplicate: false };
  }

  /** The stream, made again (a new identity, empty) after deleteStream. */
  async ensureStream(): Promise<StreamIdentity> {
    this.ensureCalls++;
    if (!this.exists) {
      this.exists = true;
      this.generation++;
    }
    return { created: `memory-stream-${this.generation}` };
  }

  /** The newest message the stream holds. */
  async lastMessage(): Promise<Uint8Array | undefined> {
    return this.messages.at(-1)?.body;
  }

  /** The one state bucket of this transport. */
  async openState(): Promise<StateStore> {
    return this.state;
  }

  /** Routes requestResend to `handler`. */
  async serveResends(handler: ResendHandler): Promise<void> {
    this.resendHandler = handler;
  }

  async serveCheckpoints(handler: CheckpointHandler): Promise<void> {
    this.checkpointHandler = handler;
  }

  /** Each notice announceApplied sends from now on, as the core subscription hears it (malformed ones dropped). */
  async *appliedNotices(): AsyncGenerator<StateRecords['applied']> {
    const queue: string[] = [];
    let wake: (() => void) | undefined;
    const listener = { push: (text: string) => { queue.push(text); wake?.(); }, end: () => wake?.() };
    this.noticeListeners.add(listener);
    try {
      for (;;) {
        while (queue.length > 0) {
          const record = parseRecord('applied', queue.shift()!);
          if (record !== undefined) yield record;
        }
        if (this.closed) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      this.noticeListeners.delete(listener);
    }
  }

  /** Sends an applied notice, as a standby's commit does; `notice` is sent as it is when a string. */
  announceApplied(notice: StateRecords['applied'] | string): void {
    const text = typeof notice === 'string' ? notice : JSON.stringify(notice);
    for (const l of this.noticeListeners) l.push(text);
  }

  /** Called by reconnect(). */
  onReconnect(listener: () => void): void {
    this.reconnectListeners.push(listener);
  }

  /** Ends the state bucket's watches. */
  async close(): Promise<void> {
    this.state.close();
    this.closed = true;
    for (const l of this.noticeListeners) l.end();
  }

  /** The `n`th publish from now (0: the next) fails with `err`. */
  refusePublish(n: number, err: Error): void {
    this.faults.set(this.publishes + n, err);
  }

  /** The `n`th publish from now is never answered (a server that went away with it). */
  stallPublish(n: number): void {
    this.faults.set(this.publishes + n, 'stall');
  }

  /** Deletes the stream: publishes fail until ensureStream makes it again, as another stream. */
  deleteStream(): void {
    this.exists = false;
    this.messages = [];
    this.ids = new Map();
    this.lastSeq = 0;
  }

  /** Asks the journal's shipper to resend, as a standby does; `request` is sent as it is when a string. */
  async requestResend(request: ResendRequest | string): Promise<ResendReply> {
    if (this.resendHandler === undefined) throw new TransportError('no responders: nobody serves resends');
    const text = typeof request === 'string' ? request : JSON.stringify(request);
    return JSON.parse(await answerResend(this.resendHandler, text)) as ResendReply;
  }

  /** Sends a checkpoint request to the journal's shipper, as `understudy checkpoint` does. */
  async requestCheckpoint(request: string): Promise<CheckpointReply> {
    if (this.checkpointHandler === undefined) throw new TransportError('no responders: nobody serves checkpoints');
    return JSON.parse(await answerCheckpoint(this.checkpointHandler, request)) as CheckpointReply;
  }

  /** As if the connection moved to another server. */
  reconnect(): void {
    for (const listener of this.reconnectListeners) listener();
  }
}
