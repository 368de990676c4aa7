import { journalPrefix, journalSubject } from '../../lib/subjects';
import type { JournalReader, JournalSource, ReadFrom, SourceMessage, StreamFacts } from './journal-source';

interface Stored { seq: number; subject: string; data: Uint8Array; signature?: string }

/** A journal stream held in memory, for unit tests of what reads a JournalSource. */
export class MemorySource implements JournalSource {
  /** The messages, in stream order. */
  messages: Stored[] = [];
  /** When the stream was made; a new value each time it is made again. */
  created = stamp(0);
  private nextSeq = 1;
  private made = 0;
  private readonly waiting = new Set<() => void>();

  constructor(readonly stream = 'UNDERSTUDY', readonly maxBytes = Number.MAX_SAFE_INTEGER) {}

  /** Stores a message of `journal`, as an agent's publish does; returns its stream sequence. */
  append(journal: string, data: Uint8Array, signature?: string): number {
    const seq = this.nextSeq++;
    this.messages.push({ seq, subject: journalSubject(this.stream, journal), data, signature });
    this.wake();
    return seq;
  }

  /** The stream deleted and made again: empty, numbered from 1, with a new identity. */
  remake(): void {
    this.messages = [];
    this.nextSeq = 1;
    this.created = stamp(++this.made);
    this.wake();
  }

  async info(): Promise<StreamFacts> {
    return { created: this.created, lastSeq: this.nextSeq - 1, bytes: this.messages.reduce((n, m) => n + m.data.length, 0), maxBytes: this.maxBytes };
  }

  async lastOf(journal: string): Promise<{ seq: number; data: Uint8Array } | undefined> {
    const subject = journalSubject(this.stream, journal);
    const last = this.messages.filter((m) => m.subject === subject).pop();
    return last === undefined ? undefined : { seq: last.seq, data: last.data };
  }

  async open(at: ReadFrom): Promise<JournalReader> {
    return new MemoryReader(this, at);
  }

  async ensure(): Promise<void> {
    // Nothing deletes a stream held in memory but remake(), which makes it again at once.
  }

  /** Resolves at the next append, remake or stop. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.waiting.add(resolve));
  }

  /** Wakes every reader waiting for a change. */
  wake(): void {
    for (const resolve of this.waiting) resolve();
    this.waiting.clear();
  }
}

/** A reader of a MemorySource: what a JetStream reader does, without its clocks. */
class MemoryReader implements JournalReader {
  caughtUp: boolean;
  /** Each message is read from the store as it is handed out: `pending` counts every one after it. */
  readonly buffered = 0;
  private last: number;
  private stopped = false;
  private readonly subject: string | undefined;

  constructor(private readonly source: MemorySource, private readonly at: ReadFrom) {
    this.subject = at.journal === undefined ? undefined : journalSubject(source.stream, at.journal);
    this.last = at.fromSeq - 1;
    this.caughtUp = this.ahead().length === 0;
  }

  async remaining(): Promise<number> {
    return this.ahead().length;
  }

  stop(): void {
    this.stopped = true;
    this.source.wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SourceMessage> {
    const created = this.at.created ?? this.source.created;
    for (;;) {
      // A stream made again under a follower stops it, as the JetStream reader's watchdog does.
      if (this.stopped || this.source.created !== created) return;
      const next = this.ahead();
      if (next.length === 0) {
        if (this.at.toEnd) return;
        await this.source.changed();
        continue;
      }
      const m = next[0];
      this.last = m.seq;
      this.caughtUp = next.length === 1;
      yield { seq: m.seq, subject: m.subject, data: m.data, signature: m.signature, pending: next.length - 1 };
    }
  }

  /** The reader's messages after the last delivered. */
  private ahead(): Stored[] {
    const all = `${journalPrefix(this.source.stream)}.`;
    return this.source.messages.filter((m) => m.seq > this.last && (this.subject === undefined ? m.subject.startsWith(all) : m.subject === this.subject));
  }
}

/** A creation time that differs for each making of the stream. */
function stamp(n: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
}
