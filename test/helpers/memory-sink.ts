import type { Op } from '../../lib/entry';
import { DEFAULTS } from '../../lib/settings';
import type { Change, JournalSink } from '../../agent/sink';

/** One change as a sink kept it: its bytes gathered, the sequence numbers it took, its read time if it had one. */
export interface Recorded {
  root: string;
  path: string;
  op: Op;
  /** All its bytes (empty for operations without data). */
  data: Buffer;
  /** EntryHead.b: the wall clock of a snapshot's read. */
  at?: number;
  /** EntryHead.o: the host order stamp (the journal stamps every entry; the memory sink only what a producer gave). */
  order?: number;
  first: number;
  last: number;
}

/**
 * The in-memory JournalSink, for unit tests of producers without a spool: it keeps copies of
 * the changes in order and numbers them as the journal does (one per chunk of `chunkBytes`),
 * reading pieces one chunk at a time, as the journal does.
 */
export class MemorySink implements JournalSink {
  readonly changes: Recorded[] = [];
  private seq = 0;
  /** Called before each change is kept, for tests that act in the middle of a producer's work. */
  onRecord: ((change: Change) => void) | undefined;

  constructor(private readonly chunkBytes: number = DEFAULTS.chunkBytes) {}

  record(change: Change): number {
    this.onRecord?.(change);
    const { data, pieces, read } = change;
    const size = data !== undefined ? data.length : pieces !== undefined ? pieces.size : 0;
    const n = size <= this.chunkBytes ? 1 : Math.ceil(size / this.chunkBytes);
    const parts: Buffer[] = [];
    // Copies: a producer may reuse the change and its buffer once record returns.
    if (data !== undefined) parts.push(Buffer.from(data));
    else if (pieces !== undefined) {
      for (let i = 0; i < n; i++) {
        const off = i * this.chunkBytes;
        parts.push(Buffer.from(pieces.read(off, Math.min(this.chunkBytes, size - off))));
      }
    }
    this.changes.push({
      root: change.root, path: change.path, op: { ...change.op }, data: Buffer.concat(parts),
      at: read?.at, order: read?.order, first: this.seq + 1, last: this.seq + n,
    });
    this.seq += n;
    return this.seq;
  }

  /** Last sequence number used. */
  get lastSeq(): number {
    return this.seq;
  }

  /** What was recorded, as `op path` lines: the shape most tests compare. */
  lines(): string[] {
    return this.changes.map((c) => `${c.op.op} ${c.path}`);
  }
}
