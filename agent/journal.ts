import * as fs from 'node:fs';
import * as path from 'node:path';
import { entrySize, writeEntry } from '../lib/codec';
import { DEFAULTS } from '../lib/settings';
import type { EntryHeader, Op } from '../lib/entry';
import type { Change, JournalSink } from './sink';
import { JournalError } from '../lib/errors';
import { replaceJson } from '../lib/durable-file';
import { hostStamp } from '../lib/host-clock';
import { endedCleanly, lockOwner, markEnded, takeLock } from './spool-lock';
import {
  FRAME_HEAD, listSegments, readJson, scanFrames, segmentFile, spoolFiles, writeFrameHead,
  type AckedState, type MetaState, type UncleanEnd,
} from '../lib/spool';

/** Sizes and durability of the spool; defaults in lib/settings. */
export interface JournalOptions {
  chunkBytes?: number;
  segmentBytes?: number;
  /** UNDERSTUDY_SPOOL_MAX_BYTES: past it, changes are dropped (and counted) rather than the application stopped. */
  maxBytes?: number;
  /** UNDERSTUDY_SPOOL_FSYNC=always: fdatasync after every entry, on the application's thread. */
  fsyncAlways?: boolean;
}

/** What recovery found when the journal was opened. */
export interface OpenReport {
  epoch: number;
  lastSeq: number;
  /** Bytes cut from a torn spool tail, if any. */
  tornBytes: number;
  tornWhy?: string;
}

/**
 * The agent's journal: assigns (epoch, seq), encodes, and appends to the spool
 * synchronously, so that when the wrapped call returns the entry is on local disk.
 */
export class Journal implements JournalSink {
  readonly dir: string;
  epoch = 0;
  private seq = 0;
  private fd = -1;
  private segBytes = 0;
  /** Bytes the spool holds as far as we know; trimming (by the shipper) only makes it smaller. */
  private spoolBytes = 0;
  private measuredAt = 0;
  private lockHeld = false;
  /** Changes not journaled because the spool was full. */
  dropped = 0;
  /** Called after each append with the new last seq (the shipper's wake-up). */
  onAppend: (seq: number) => void = () => {};
  /** Called after each change is journaled (the in-process watcher's memory of what it need not journal again). */
  onRecord: ((root: string, relPath: string, op: Op) => void) | undefined;
  /** The transaction a change is made in (agent/transactions), for its header's `x`. */
  txOf: ((op: Op) => string | undefined) | undefined;
  /** Called when a change is dropped because the spool is full. */
  onDrop: (bytes: number) => void = () => {};
  private readonly chunkBytes: number;
  private readonly segmentBytes: number;
  private readonly maxBytes: number;
  private readonly fsyncAlways: boolean;
  private scratch = Buffer.allocUnsafe(DEFAULTS.journal.writeBufferBytes);

  constructor(spoolRoot: string, readonly name: string, opts: JournalOptions = {}) {
    this.dir = path.join(spoolRoot, name);
    this.chunkBytes = opts.chunkBytes ?? DEFAULTS.chunkBytes;
    this.segmentBytes = opts.segmentBytes ?? DEFAULTS.segmentBytes;
    this.maxBytes = opts.maxBytes ?? Infinity;
    this.fsyncAlways = opts.fsyncAlways ?? false;
  }

  /** Takes the journal's lock, starts a new epoch, and cuts a torn tail left by a crash. */
  open(): OpenReport {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.lock();
    const files = spoolFiles(this.dir);
    const meta = readJson<MetaState>(files.meta);
    // Seconds since 1970 as a floor keeps epochs growing even if the spool is lost.
    this.epoch = Math.max((meta?.epoch ?? 0) + 1, Math.floor(Date.now() / 1000));
    // Not fsynced: every process and thread opens a journal, and a meta lost in a power loss costs
    // nothing, since the floor of seconds since 1970 keeps the next epoch above this one.
    replaceJson(files.meta, { epoch: this.epoch } satisfies MetaState, { durable: false });
    const acked = readJson<AckedState>(files.acked);
    let lastSeq = acked?.seq ?? 0;
    let tornBytes = 0;
    let tornWhy: string | undefined;
    const segs = listSegments(this.dir);
    const last = segs.at(-1);
    if (last !== undefined) {
      const buf = fs.readFileSync(last.file);
      const scan = scanFrames(buf);
      if (scan.goodBytes < buf.length) {
        // Only the tail of the newest segment can be torn by a crash mid-append.
        tornBytes = buf.length - scan.goodBytes;
        tornWhy = scan.problem;
        fs.truncateSync(last.file, scan.goodBytes);
      }
      const lastRec = scan.records.at(-1);
      lastSeq = Math.max(lastSeq, lastRec?.seq ?? last.first - 1);
      this.openSegment(last.file, scan.goodBytes);
    }
    this.spoolBytes = segs.reduce((sum, s) => sum + fileSize(s.file), 0);
    this.seq = lastSeq;
    if (this.fd < 0) this.openSegment(segmentFile(this.dir, this.seq + 1), 0);
    return { epoch: this.epoch, lastSeq, tornBytes, tornWhy };
  }

  /** Last sequence number assigned. */
  get lastSeq(): number {
    return this.seq;
  }

  /**
   * Journals one change. Data larger than a chunk goes as chunks with their own sequence
   * numbers (the standby stages them and applies at the last), each read when it is due.
   */
  record(change: Change): number {
    if (this.fd < 0) throw new JournalError(`journal ${this.name} is not open`);
    const { data, pieces, read } = change;
    const size = data !== undefined ? data.length : pieces !== undefined ? pieces.size : 0;
    const need = size + DEFAULTS.journal.headerRoomBytes;
    // A snapshot read in pieces (a file over DEFAULTS.journal.snapshotWholeBytes) is journaled even
    // past the limit, as before the sink took one change object: its producer (the watcher) takes
    // it as journaled, and dropping it would leave a version missing that no full pass mends.
    if (pieces === undefined && this.spoolBytes + need > this.maxBytes && !this.roomAfterTrim(need)) {
      // Full: the application goes on; this change is not replicated, and that is counted and said.
      this.dropped++;
      this.onDrop(this.spoolBytes);
      return this.seq;
    }
    const t = Date.now();
    // One stamp for every chunk: together they are one change. A snapshot's is when it was read.
    const o = read === undefined ? hostStamp() : read.order;
    const b = read?.at;
    const { root, path: p, op } = change;
    const x = this.txOf?.(op);
    if (size <= this.chunkBytes) {
      this.append({ j: this.name, e: this.epoch, s: this.seq + 1, t, o, r: root, p, b, x, ...op }, data ?? pieces?.read(0, size));
    } else {
      const n = Math.ceil(size / this.chunkBytes);
      const first = this.seq + 1;
      for (let i = 0; i < n; i++) {
        const off = i * this.chunkBytes;
        const len = Math.min(this.chunkBytes, size - off);
        const c = { first, i, n, off, total: size };
        // A snapshot of a large file holds one chunk in memory, not the file.
        const chunk = data !== undefined ? data.subarray(off, off + len) : pieces?.read(off, len);
        this.append({ j: this.name, e: this.epoch, s: first + i, t, o, r: root, p, c, b, x, ...op }, chunk);
      }
    }
    this.onAppend(this.seq);
    this.onRecord?.(root, p, op);
    return this.seq;
  }

  /** Releases the lock; entries stay spooled for the next process with this name. */
  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
    this.releaseLock();
  }

  /**
   * Releases the lock but goes on appending: at the end of the process, exit callbacks that run
   * after the agent's may still journal (see endings.ts), and the process closes the file.
   */
  releaseLock(): void {
    if (this.lockHeld) fs.rmSync(spoolFiles(this.dir).lock, { force: true });
    this.lockHeld = false;
  }

  /** Frames and appends one entry in a single write(2): when it returns, the entry survives our crash. */
  private append(header: EntryHeader, data: Buffer = EMPTY): void {
    const seq = this.seq + 1;
    const json = JSON.stringify(header);
    const entryBytes = entrySize(json, data);
    const total = FRAME_HEAD + entryBytes;
    if (this.segBytes > 0 && this.segBytes + total > this.segmentBytes) {
      fs.closeSync(this.fd);
      this.openSegment(segmentFile(this.dir, seq), 0);
    }
    const buf = this.writeBuffer(total);
    writeFrameHead(buf, 0, entryBytes, this.epoch, seq);
    writeEntry(buf, FRAME_HEAD, json, data);
    const wrote = fs.writeSync(this.fd, buf, 0, total);
    if (wrote !== total) {
      // A short write leaves a torn frame; cut it so the spool stays a clean log.
      fs.ftruncateSync(this.fd, this.segBytes);
      throw new JournalError(`short write to spool (${wrote} of ${total} bytes)`);
    }
    if (this.fsyncAlways) fs.fdatasyncSync(this.fd);
    this.segBytes += wrote;
    this.spoolBytes += wrote;
    this.seq = seq;
  }

  /**
   * A buffer of at least `bytes`, reused from entry to entry (the kernel has copied it when
   * write returns), so a small change allocates nothing the garbage collector must chase.
   */
  private writeBuffer(bytes: number): Buffer {
    const most = DEFAULTS.journal.reusedBufferMaxBytes;
    if (bytes > most) return Buffer.allocUnsafe(bytes);
    if (this.scratch.length < bytes) this.scratch = Buffer.allocUnsafe(Math.min(most, Math.max(bytes, this.scratch.length * 2)));
    return this.scratch;
  }

  /**
   * Measures the spool again (the shipper trims it as the standby applies), at most once
   * per DEFAULTS.journal.remeasureMs; true when `need` bytes fit.
   */
  private roomAfterTrim(need: number): boolean {
    const now = Date.now();
    if (now - this.measuredAt >= DEFAULTS.journal.remeasureMs) {
      this.measuredAt = now;
      this.spoolBytes = listSegments(this.dir).reduce((sum, s) => sum + fileSize(s.file), 0);
    }
    return this.spoolBytes + need <= this.maxBytes;
  }

  private openSegment(file: string, size: number): void {
    this.fd = fs.openSync(file, 'a', 0o600);
    this.segBytes = size;
  }

  private lock(): void {
    const { lock } = spoolFiles(this.dir);
    const taken = takeLock(lock, (previous) => {
      // Its holder died without its ending (SIGKILL, a crash, the OOM killer): a call it had in
      // flight may have changed a file without an entry. Said until a verify looks (status).
      if (!endedCleanly(previous)) replaceJson(spoolFiles(this.dir).unclean, { holder: previous, at: Date.now() } satisfies UncleanEnd);
    });
    if (!taken) throw new JournalInUseError(`journal "${this.name}" is in use by ${lockOwner(lock)} (lock ${lock})`);
    this.lockHeld = true;
  }

  /** This process's ending was flushed: whoever takes the journal after it need not doubt it. */
  markEnded(): void {
    if (this.lockHeld) markEnded(spoolFiles(this.dir).lock);
  }
}

/** The journal's lock is held by another live process or thread. */
export class JournalInUseError extends JournalError {}

const EMPTY = Buffer.alloc(0);

function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return 0; // trimmed meanwhile
  }
}
