import * as fs from 'node:fs';
import { JournalError } from './errors';
import { FRAME_HEAD, listSegments, scanFrames, type SpoolRecord } from './spool';
import { DEFAULTS } from './settings';

const { readBytes: READ_BYTES, minRoomBytes: MIN_ROOM, maxFrameBytes: MAX_FRAME } = DEFAULTS.spoolRead;

/** The spool no longer holds the entry a cursor wants: it begins later (trimmed, or lost). */
export class SpoolGapError extends JournalError {
  constructor(dir: string, readonly wanted: number, readonly oldest: number) {
    super(`spool ${dir} no longer holds seq ${wanted} (oldest segment begins at ${oldest})`);
  }
}

/**
 * Reads a spool forward from a sequence number, following segment rolls.
 * A record that fails its checksum before the known end is corruption, and
 * is raised, never skipped.
 */
export class SpoolCursor {
  private file: string | undefined;
  /** The current segment, kept open between reads: the shipper reads after every append. */
  private fd = -1;
  private offset = 0;
  private nextSeq: number;
  /** The buffer the last read filled, and whether recycle() has freed it for the next. */
  private last: Buffer | undefined;
  private recycled = false;

  constructor(private readonly dir: string, fromSeq: number) {
    this.nextSeq = fromSeq;
  }

  /** Moves the cursor back (or forward) to `seq`. */
  seek(seq: number): void {
    this.nextSeq = seq;
    this.switchTo(undefined);
  }

  /** Closes the open segment. */
  close(): void {
    this.switchTo(undefined);
  }

  /** Sequence number of the next record to be returned. */
  get position(): number {
    return this.nextSeq;
  }

  /**
   * Returns the records from the cursor up to `lastSeq` (inclusive), at most `maxBytes` of them.
   * Each record's entry is a view into a read buffer, right after its frame head.
   */
  read(lastSeq: number, maxBytes = READ_BYTES): SpoolRecord[] {
    const out: SpoolRecord[] = [];
    let bytes = 0;
    let buf = this.recycled ? this.last : undefined;
    let used = 0;
    this.recycled = false;
    while (this.nextSeq <= lastSeq && bytes < maxBytes) {
      if (this.file === undefined && !this.locate()) break;
      const size = fs.fstatSync(this.fd).size;
      if (this.offset >= size) {
        if (!this.advanceSegment()) break;
        continue;
      }
      const start = this.offset;
      const want = Math.min(size - start, READ_BYTES);
      if (buf === undefined || buf.length - used < Math.min(want, MIN_ROOM)) {
        // Records already returned are views into the old buffer: it stays theirs.
        buf = Buffer.allocUnsafeSlow(READ_BYTES);
        used = 0;
      }
      const got = fs.readSync(this.fd, buf, used, Math.min(want, buf.length - used), start);
      // The checksum, not the header: every reader of a cursor passes the bytes on to a replayer, which decodes each entry.
      const scan = scanFrames(buf.subarray(used, used + got), 'checksum');
      if (scan.records.length === 0) {
        const len = got >= 4 ? buf.readUInt32BE(used) : 0;
        if (got < size - start && used + FRAME_HEAD + len > buf.length && len <= MAX_FRAME) {
          // A frame larger than the room left (or than a read buffer): read it into one of its own.
          buf = Buffer.allocUnsafeSlow(Math.max(READ_BYTES, FRAME_HEAD + len));
          used = 0;
          continue;
        }
        // Callers read only up to a seq the writer finished appending, so a frame
        // that does not read back whole is corruption, not a tail still being written.
        throw new JournalError(`spool ${this.dir} is corrupt at seq ${this.nextSeq}: ${scan.problem ?? 'unreadable frame'}`);
      }
      used += got;
      for (const rec of scan.records) {
        this.offset += FRAME_HEAD + rec.entry.length;
        if (rec.seq < this.nextSeq) continue;
        if (rec.seq !== this.nextSeq) throw new JournalError(`spool ${this.dir}: expected seq ${this.nextSeq}, found ${rec.seq}`);
        out.push(rec);
        bytes += rec.entry.length;
        this.nextSeq++;
        if (this.nextSeq > lastSeq || bytes >= maxBytes) break;
      }
    }
    this.last = buf;
    // Nothing returned, nothing refers to the buffer: the next read may fill it.
    if (out.length === 0) this.recycled = buf !== undefined;
    return out;
  }

  /**
   * Says that nothing refers to the records of the last read any more (the shipper has had
   * every message made of them acknowledged), so the next read may fill the same buffer.
   * Without it each read takes a fresh one: a slow publish may still hold the old.
   */
  recycle(): void {
    this.recycled = this.last !== undefined;
  }

  private locate(): boolean {
    const segs = listSegments(this.dir);
    let pick: { first: number; file: string } | undefined;
    for (const s of segs) if (s.first <= this.nextSeq) pick = s;
    pick ??= segs[0];
    if (pick === undefined) return false;
    if (pick.first > this.nextSeq) {
      throw new SpoolGapError(this.dir, this.nextSeq, pick.first);
    }
    this.switchTo(pick.file);
    return true;
  }

  private advanceSegment(): boolean {
    const segs = listSegments(this.dir);
    const next = segs.find((s) => s.first === this.nextSeq);
    if (next === undefined || next.file === this.file) return false;
    this.switchTo(next.file);
    return true;
  }

  private switchTo(file: string | undefined): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = file === undefined ? -1 : fs.openSync(file, 'r');
    this.file = file;
    this.offset = 0;
  }
}
