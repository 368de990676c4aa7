import { comparePosition, positionLabel, type EntryHeader } from '../../lib/entry';

/** What the sequencer needs of an entry: its place in its journal, its chunk, and its size. */
export interface Sequenced {
  readonly h: Pick<EntryHeader, 'j' | 'e' | 's' | 'c'>;
  readonly data: { readonly length: number };
}

/** A journal's position on the standby: the last entry applied (or passed). */
export interface Applied { readonly e: number; readonly s: number }

/** What to do with an entry offered to the sequencer. */
export type Decision =
  /** Applied already: skip it. */
  | { kind: 'duplicate' }
  /** An earlier entry is missing: kept until it comes. */
  | { kind: 'held' }
  /** Cannot be held: too much is waiting for a missing entry. */
  | { kind: 'refused'; reason: string }
  /** The journal's next entry: apply it, record it, then call `applied`. `restartsAfter`: its epoch numbers again from below this position. */
  | { kind: 'next'; restartsAfter?: Applied };

/** Entries of one journal waiting behind a gap: `from`..`to` are missing, `held` wait after them. */
export interface Gap { journal: string; from: number; to: number; epoch: number; held: number }

/**
 * Per-journal order on the standby, with no I/O: which entry is a duplicate, which must wait
 * behind a gap (memory bounded by `maxHeld`), which held entries a filler lets through, and
 * whether a chunked entry's chunks come one after another. Where each journal stands is read
 * from `position` (the replayer's position store), which the caller moves as it applies.
 */
export class Sequencer<T extends Sequenced> {
  private readonly held = new Map<string, Map<number, T>>();
  private heldBytes = 0;
  /** Per journal, the chunked entry being staged: the next chunk must follow it directly. */
  private readonly openChunks = new Map<string, { first: number; next: number; n: number }>();

  /** `heldElsewhere`: whether entries wait after the sequencer too (replayer/order/barriers), which keeps the stream position back as its own do. */
  constructor(private readonly position: (journal: string) => Applied | undefined, private readonly maxHeld: { entries: number; bytes: number }, private readonly heldElsewhere: () => boolean = () => false) {}

  /** Decides what to do with entry `e`; a held one is kept here. */
  offer(e: T): Decision {
    const { h } = e;
    const pos = this.position(h.j);
    if (pos !== undefined && comparePosition(h, pos) <= 0) return { kind: 'duplicate' };
    // An earlier entry is missing; it may still come (a re-publish after a failed ack, a resend).
    // A journal this standby has never seen begins at 1: one that begins later lost its start
    // (a server that lost what it had not flushed, a purged stream), and is pulled from the agent.
    if (h.s > (pos?.s ?? 0) + 1) return this.hold(e, pos);
    return pos !== undefined && h.s <= pos.s ? { kind: 'next', restartsAfter: pos } : { kind: 'next' };
  }

  /** After `e` (offered as next) was applied and recorded: forgets any copy of it held, then releases what now follows. */
  applied(e: T, apply: (next: T) => void): void {
    // A copy held before a gap was passed (entries gone): read again from the stream, it is applied now.
    const queue = this.held.get(e.h.j);
    const stale = queue?.get(e.h.s);
    if (stale !== undefined) {
      queue!.delete(e.h.s);
      this.heldBytes -= stale.data.length;
    }
    this.release(e.h.j, apply);
  }

  /** Hands `apply` each held entry of `journal` that follows its position, in order, while one does. */
  release(journal: string, apply: (next: T) => void): void {
    const queue = this.held.get(journal);
    while (queue !== undefined && queue.size > 0) {
      const pos = this.position(journal);
      const next = queue.get((pos?.s ?? 0) + 1);
      if (next === undefined) break;
      queue.delete(next.h.s);
      this.heldBytes -= next.data.length;
      apply(next);
    }
  }

  /** Whether any journal has entries held: then the stream position to resume from must stay before them. */
  get holding(): boolean {
    for (const q of this.held.values()) if (q.size > 0) return true;
    return this.heldElsewhere();
  }

  /** The stream position to record: `next`, unless entries are held, when it stays at `recorded`. */
  resumeAt(next: number, recorded: number): number {
    return this.holding ? recorded : next;
  }

  /** The missing entries `journal` waits for, if it holds any. */
  gap(journal: string): Gap | undefined {
    const queue = this.held.get(journal);
    if (queue === undefined || queue.size === 0) return undefined;
    const first = Math.min(...queue.keys());
    return { journal, from: (this.position(journal)?.s ?? 0) + 1, to: first - 1, epoch: queue.get(first)!.h.e, held: queue.size };
  }

  /** Every journal's gap. */
  gaps(): Gap[] {
    return [...this.held.keys()].flatMap((j) => this.gap(j) ?? []);
  }

  /**
   * Checks that `h` is where a chunked entry's chunks must come: one after another in its
   * journal, since anything else means the open one will never complete. Returns why not, or
   * undefined; call it as each entry is applied.
   */
  checkChunk(h: Pick<EntryHeader, 'j' | 'e' | 's' | 'c'>): string | undefined {
    const open = this.openChunks.get(h.j);
    if (open !== undefined && (h.c === undefined || h.c.first !== open.first || h.c.i !== open.next)) {
      this.openChunks.delete(h.j);
      return `chunks ${open.next}..${open.n - 1} of entry ${h.j}.${open.first} never arrived before ${positionLabel(h)}`;
    }
    if (h.c === undefined) return undefined;
    if (h.c.i === h.c.n - 1) this.openChunks.delete(h.j);
    else this.openChunks.set(h.j, { first: h.c.first, next: h.c.i + 1, n: h.c.n });
    return undefined;
  }

  /** Forgets everything held and every open chunk (the replayer reads again from its last good commit). */
  clear(): void {
    this.held.clear();
    this.heldBytes = 0;
    this.openChunks.clear();
  }

  private hold(e: T, pos: Applied | undefined): Decision {
    const { h } = e;
    let queue = this.held.get(h.j);
    if (queue === undefined) this.held.set(h.j, (queue = new Map()));
    // The same entry delivered again (a resend) replaces the one held: it is counted once.
    const prev = queue.get(h.s);
    const bytes = this.heldBytes - (prev?.data.length ?? 0) + e.data.length;
    if ((prev === undefined && queue.size >= this.maxHeld.entries) || bytes > this.maxHeld.bytes) {
      return { kind: 'refused', reason: `journal ${h.j}: entries after ${pos === undefined ? 'its start' : positionLabel(pos)} are missing from the stream (holding ${queue.size} later ones, ${this.heldBytes} bytes)` };
    }
    queue.set(h.s, e);
    this.heldBytes = bytes;
    return { kind: 'held' };
  }
}
