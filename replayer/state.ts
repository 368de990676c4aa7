import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { comparePosition } from '../lib/entry';
import { writeAll, writeSync, type WriteFn } from './write';
import type { CheckpointMark } from './checkpoints/keeper';

/** The position of one journal on the standby: the last entry applied. */
export interface JournalPos { e: number; s: number; t: number }

/** What the replayer has applied, durably: per journal, and the stream sequence to resume from. */
export interface Positions {
  /** Where a replayer of every journal resumes: all messages up to here were consumed. */
  streamSeq: number;
  /**
   * Where a replayer filtered to one journal (--name) resumes, by that journal. Such a replayer
   * reads only its journal's messages, so it never moves `streamSeq`: the others' messages it
   * did not read are still ahead of every journal's replayer.
   */
  filtered?: Record<string, number>;
  /** When the stream read from was made: a stream made again restarts its numbering. */
  streamCreated?: string;
  journals: Record<string, JournalPos>;
  /**
   * Journals applied through a checkpoint entry and held there, not yet released (replayer/order/barriers):
   * recorded with the position of that entry, so a restarted replayer holds them again.
   */
  holds?: Record<string, { mark: CheckpointMark }>;
  /**
   * A transaction being applied, by journal: its first entry and the last one applied so far. The
   * journal's position stays before the transaction until all of it is applied; this lets a
   * replayer killed in the middle go on from the entry it was applying, as it does outside one,
   * rather than apply again on top of the later ones (a rename whose source was made again).
   */
  applying?: Record<string, { from: { e: number; s: number }; through: { e: number; s: number } }>;
  /**
   * How far each journal had been applied before the replayer went back to its last good commit
   * (a failed write or fsync, a power loss): until it passes there again, what an entry finds on
   * the standby may be what its own later entries made, not a difference from the primary.
   */
  again?: Record<string, { e: number; s: number }>;
  /** The machine's boot the file was written in (see PositionStore). */
  boot?: string;
}

/**
 * The replayer's positions under --state, in two files. `positions.json` is rewritten in
 * place after every entry: a killed replayer resumes exactly where it stopped, because the
 * page cache that holds the applied files holds this file too. But the kernel may write it
 * back before files that are fsynced only at the commit, so after a power loss it could claim
 * entries whose data never reached the disk. `committed.json` is written and fsynced at each
 * commit, after the files it covers. Each records the boot it was written in: on start, a
 * `positions.json` of this boot is trusted (a process died, the machine did not); one of an
 * earlier boot is not, and the replayer resumes from the last commit instead.
 */
export class PositionStore {
  readonly file: string;
  /** What `committed.json` holds: the last good commit, where a failed write or fsync rolls back to. */
  private committed: Positions;
  readonly committedFile: string;
  private fd: number;
  private committedFd: number;
  /** Bytes each file holds now, once this store wrote it (undefined: unknown, so the next write cuts). */
  private fileBytes: number | undefined;
  private committedBytes: number | undefined;
  private readonly boot = bootId();
  positions: Positions;
  /** Set when the machine restarted since the last write: resuming from the last commit. */
  readonly restartedFromCommit: boolean;

  /** `filter`: the one journal the replayer reads (--name), whose stream position is kept apart. */
  constructor(readonly dir: string, private readonly write: WriteFn = writeSync, private readonly filter?: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, 'positions.json');
    this.committedFile = path.join(dir, 'committed.json');
    const committed = load(this.committedFile);
    let latest: Positions | undefined;
    try {
      latest = load(this.file);
    } catch (err) {
      // Unreadable after a power loss (written back half, or not at all): the commit is the truth.
      if (committed === undefined) throw err;
      latest = { streamSeq: -1, journals: {}, boot: 'unreadable' };
    }
    // A file without a boot predates this scheme: it is all there is.
    this.restartedFromCommit = latest !== undefined && latest.boot !== undefined && latest.boot !== this.boot && committed !== undefined;
    this.positions = (this.restartedFromCommit ? committed : latest) ?? committed ?? { streamSeq: 0, journals: {} };
    this.committed = clone(committed ?? { streamSeq: 0, journals: {} });
    if (this.restartedFromCommit && latest !== undefined) this.markAgain(latest);
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.committedFd = fs.openSync(this.committedFile, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    if (this.restartedFromCommit) this.save();
  }

  /** The stream sequence this replayer resumes after: its filter's own, or that of every journal. */
  get streamSeq(): number {
    return this.resumeOf(this.positions);
  }

  /** What the last good commit made durable: its stream position (as streamSeq) and journals. */
  get lastCommit(): { streamSeq: number; journals: Readonly<Record<string, JournalPos>> } {
    return { streamSeq: this.resumeOf(this.committed), journals: this.committed.journals };
  }

  private resumeOf(p: Positions): number {
    if (this.filter === undefined) return p.streamSeq;
    return Math.max(p.streamSeq, p.filtered?.[this.filter] ?? 0);
  }

  /** Records that `name` applied (e, s, t), found at stream sequence `streamSeq`. */
  record(name: string, pos: JournalPos, streamSeq: number): void {
    const before = clone(this.positions);
    this.positions.journals[name] = pos;
    this.forgetApplying(name);
    const again = this.positions.again;
    if (again?.[name] !== undefined && comparePosition(pos, again[name]) >= 0) {
      delete again[name];
      if (Object.keys(again).length === 0) delete this.positions.again;
    }
    this.moveTo(streamSeq);
    try {
      this.save();
    } catch (err) {
      // Not recorded (a full disk): the entry is applied again when retried, which is harmless.
      this.positions = before;
      throw err;
    }
  }

  /**
   * Sets (or, with undefined, forgets) the checkpoint journal `name` is held at. Kept in memory
   * until the next write (`record` writes it with the position of the checkpoint entry itself),
   * unless `save`.
   */
  hold(name: string, mark: CheckpointMark | undefined, save = false): void {
    const before = clone(this.positions);
    if (mark !== undefined) this.positions.holds = { ...this.positions.holds, [name]: { mark } };
    else if (this.positions.holds !== undefined) {
      delete this.positions.holds[name];
      if (Object.keys(this.positions.holds).length === 0) delete this.positions.holds;
    }
    if (!save) return;
    try {
      this.save();
    } catch (err) {
      this.positions = before;
      throw err;
    }
  }

  /** Records that the transaction of journal `name` beginning at `from` is applied through `through` (its position does not move). */
  applying(name: string, from: { e: number; s: number }, through: { e: number; s: number }): void {
    const before = clone(this.positions);
    this.positions.applying = { ...this.positions.applying, [name]: { from, through } };
    try {
      this.save();
    } catch (err) {
      this.positions = before;
      throw err;
    }
  }

  private forgetApplying(name: string): void {
    if (this.positions.applying === undefined) return;
    delete this.positions.applying[name];
    if (Object.keys(this.positions.applying).length === 0) delete this.positions.applying;
  }

  /** Records that stream message `streamSeq` was consumed without changing any journal (a duplicate). */
  skip(streamSeq: number): void {
    const before = clone(this.positions);
    this.moveTo(streamSeq);
    try {
      this.save();
    } catch (err) {
      this.positions = before;
      throw err;
    }
  }

  /** The stream was made again and numbers from 1: every stream position starts over. */
  restartStream(): void {
    this.positions.streamSeq = 0;
    delete this.positions.filtered;
  }

  /** Makes the recorded position durable: call once what it covers is on disk. */
  sync(): void {
    const value = clone(this.positions);
    const known = this.committedBytes;
    this.committedBytes = undefined; // a write that fails leaves the length unknown
    this.committedBytes = writeFirstLine(this.write, this.committedFd, { ...value, boot: this.boot }, known);
    fs.fdatasyncSync(this.committedFd);
    this.committed = value;
  }

  /**
   * Forgets everything recorded since the last good commit (a write or fsync of what it covers
   * failed): the positions go back to it, in memory and in `positions.json`, so neither this
   * run nor a restarted one resumes past it. Throws when `positions.json` can be neither
   * rewritten nor removed: then a restart could trust it.
   */
  rollback(): void {
    const before = this.positions;
    this.positions = clone(this.committed);
    this.markAgain(before);
    try {
      this.save();
    } catch {
      // Without positions.json a restart resumes from committed.json.
      fs.rmSync(this.file, { force: true });
    }
  }

  /** True when entry `h` of journal `j` may have been applied before the replayer went back to its last good commit. */
  appliedBefore(j: string, h: { e: number; s: number }): boolean {
    const upTo = this.positions.again?.[j];
    return upTo !== undefined && comparePosition(h, upTo) <= 0;
  }

  /** Notes how far `earlier` had applied each journal past what is recorded now: those entries are applied again. */
  private markAgain(earlier: Positions): void {
    const again: Record<string, { e: number; s: number }> = {};
    const widen = (name: string, pos: { e: number; s: number }): void => {
      const known = again[name];
      if (known === undefined || comparePosition(pos, known) > 0) again[name] = { e: pos.e, s: pos.s };
    };
    // Each window only grows until it is passed: the widest of what either side knows stands.
    for (const side of [this.positions.again, earlier.again]) for (const [name, pos] of Object.entries(side ?? {})) widen(name, pos);
    for (const [name, pos] of Object.entries(earlier.journals)) {
      const now = this.positions.journals[name];
      if (now === undefined || comparePosition(pos, now) > 0) widen(name, pos);
    }
    if (Object.keys(again).length > 0) this.positions.again = again;
  }

  /** Closes the files; what was recorded since the last `sync()` stays uncommitted. */
  close(): void {
    fs.closeSync(this.fd);
    fs.closeSync(this.committedFd);
  }

  private moveTo(streamSeq: number): void {
    if (this.filter === undefined) {
      this.positions.streamSeq = streamSeq;
      // What every journal's replayer has passed needs no filtered position any more.
      for (const [name, seq] of Object.entries(this.positions.filtered ?? {})) if (seq <= streamSeq) delete this.positions.filtered?.[name];
      if (this.positions.filtered !== undefined && Object.keys(this.positions.filtered).length === 0) delete this.positions.filtered;
    } else {
      this.positions.filtered = { ...this.positions.filtered, [this.filter]: streamSeq };
    }
  }

  private save(): void {
    const known = this.fileBytes;
    this.fileBytes = undefined; // a write that fails leaves the length unknown
    this.fileBytes = writeFirstLine(this.write, this.fd, { ...this.positions, boot: this.boot }, known);
  }
}

/**
 * One pwrite at offset 0; the tail is cut (one more syscall) only when the document is shorter
 * than the `known` bytes the file held, or that is unknown: so the file stays one document, a line.
 * Readers take the first line, so even a tail a kill left behind is not read. Returns the bytes
 * the file holds after.
 */
function writeFirstLine(write: WriteFn, fd: number, value: Positions, known: number | undefined): number {
  const text = Buffer.from(JSON.stringify(value) + '\n');
  writeAll(write, fd, text, 0);
  if (known === undefined || text.length < known) fs.ftruncateSync(fd, text.length);
  return text.length;
}

/** This boot of the machine; where Linux does not say, the boot time to ten seconds. */
function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return `booted-${Math.round((Date.now() - os.uptime() * 1000) / 10_000)}`;
  }
}

function clone(p: Positions): Positions {
  return structuredClone(p);
}

function load(file: string): Positions | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Only the first line counts: a write cut short by a kill may leave an older, longer tail after it.
  const first = text.split('\n')[0];
  if (first.trim() === '') return undefined;
  const p = JSON.parse(first) as Positions;
  if (typeof p.streamSeq !== 'number' || typeof p.journals !== 'object') throw new Error(`${file} is not a position file`);
  return p;
}
