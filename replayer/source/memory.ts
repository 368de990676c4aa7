import { journalPrefix, journalSubject } from '../../lib/subjects';
import type { JournalReader, JournalSource, ReadFrom, SourceMessage, StreamFacts } from './journal-source';

interface Stored { seq: number; subject: string; data: Uint8Array; signature?: string }

/** A journal stream held in memory, for unit tests of what reads a JournalSource. */
export class MemorySource implements JournalSource {
  private messages: Stored[] = [];
  private nextSeq = 1;
  private made = 0;
  private createdAt = stamp(0);
  private readonly waiting = new Set<() => void>();

  constructor(private readonly stream = 'UNDERSTUDY', readonly maxBytes = Number.MAX_SAFE_INTEGER) {}

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
    this.createdAt = stamp(++this.made);
    this.wake();
  }

  async info(): Promise<StreamFacts> {
    return {
      created: this.createdAt,
      lastSeq: this.nextSeq - 1,
      bytes: this.messages.reduce((n, m) => n + m.data.length, 0),
      maxBytes: this.maxBytes,
    };
  }

  async lastOf(journal: string): Promise<{ seq: number; data: Uint8Array } | undefined> {
    const subject = journalSubject(this.stream, journal);
    const last = this.messages.filter((m) => m.subject === subject).pop();
    return last === undefined ? undefined : { seq: last.seq, data: last.data };
  }

  async open(at: ReadFrom): Promise<JournalReader> {
    const subject = at.journal === undefined ? undefined : journalSubject(this.stream, at.journal);
    const matches = (m: Stored, after: number): boolean => m.seq > after && (subject === undefined ? m.subject.startsWith(`${journalPrefix(this.stream)}.`) : m.subject === subject);
    const stream = this;
    let last = at.fromSeq - 1;
    let stopped = false;
    const ahead = (): Stored[] => this.messages.filter((m) => matches(m, last));
    const reader = {
      caughtUp: ahead().length === 0,
      async remaining(): Promise<number> {
        return ahead().length;
      },
      stop(): void {
        stopped = true;
        stream.wake();
      },
      async *[Symbol.asyncIterator](): AsyncIterator<SourceMessage> {
        const created = stream.createdAt;
        for (;;) {
          // The stream made again under a follower: it stops, as the JetStream reader's watchdog does.
          if (stopped || (at.created !== undefined && stream.createdAt !== at.created) || stream.createdAt !== created) return;
          const next = ahead();
          if (next.length === 0) {
            if (at.toEnd) return;
            await new Promise<void>((resolve) => stream.waiting.add(resolve));
            continue;
          }
          const m = next[0];
          last = m.seq;
          reader.caughtUp = next.length === 1;
          yield { seq: m.seq, subject: m.subject, data: m.data, signature: m.signature, pending: next.length - 1 };
        }
      },
    };
    return reader;
  }

  async ensure(): Promise<void> {
    // Nothing can delete a stream held in memory but remake(), which makes it at once.
  }

  private wake(): void {
    for (const resolve of this.waiting) resolve();
    this.waiting.clear();
  }
}

/** A creation time that differs for each making of the stream. */
function stamp(n: number): string {
  return new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString();
}

