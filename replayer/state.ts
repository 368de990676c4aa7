import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { writeAll, writeSync, type WriteFn } from './write';

/** The position of one journal on the standby: the last entry applied. */
export interface JournalPos { e: number; s: number; t: number }

/** What the replayer has applied, durably: per journal, and the stream sequence to resume from. */
export interface Positions {
  streamSeq: number;
  /** When the stream read from was made: a stream made again restarts its numbering. */
  streamCreated?: string;
  journals: Record<string, JournalPos>;
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
  readonly committedFile: string;
  private fd: number;
  private committedFd: number;
  private readonly boot = bootId();
  positions: Positions;
  /** Set when the machine restarted since the last write: resuming from the last commit. */
  readonly restartedFromCommit: boolean;

  constructor(readonly dir: string, private readonly write: WriteFn = writeSync) {
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
    this.positions = (this.restartedFromCommit ? committed : latest) ?? { streamSeq: 0, journals: {} };
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    this.committedFd = fs.openSync(this.committedFile, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    if (this.restartedFromCommit) this.save();
  }

  /** Records that `name` applied (e, s, t), found at stream sequence `streamSeq`. */
  record(name: string, pos: JournalPos, streamSeq: number): void {
    const before = { pos: this.positions.journals[name], streamSeq: this.positions.streamSeq };
    this.positions.journals[name] = pos;
    this.positions.streamSeq = streamSeq;
    try {
      this.save();
    } catch (err) {
      // Not recorded (a full disk): the entry is applied again when retried, which is harmless.
      if (before.pos === undefined) delete this.positions.journals[name];
      else this.positions.journals[name] = before.pos;
      this.positions.streamSeq = before.streamSeq;
      throw err;
    }
  }

  /** Records that stream message `streamSeq` was consumed without changing any journal (a duplicate). */
  skip(streamSeq: number): void {
    const before = this.positions.streamSeq;
    this.positions.streamSeq = streamSeq;
    try {
      this.save();
    } catch (err) {
      this.positions.streamSeq = before;
      throw err;
    }
  }

  /** Makes the recorded position durable: call once what it covers is on disk. */
  sync(): void {
    writeFirstLine(this.write, this.committedFd, { ...this.positions, boot: this.boot });
    fs.fdatasyncSync(this.committedFd);
  }

  close(): void {
    this.sync();
    fs.closeSync(this.fd);
    fs.closeSync(this.committedFd);
  }

  private save(): void {
    writeFirstLine(this.write, this.fd, { ...this.positions, boot: this.boot });
  }
}

/** One pwrite at offset 0, then cut the tail: a reader never sees two documents mixed. */
function writeFirstLine(write: WriteFn, fd: number, value: Positions): void {
  const text = Buffer.from(JSON.stringify(value) + '\n');
  writeAll(write, fd, text, 0);
  fs.ftruncateSync(fd, text.length);
}

/** This boot of the machine; where Linux does not say, the boot time to ten seconds. */
function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return `booted-${Math.round((Date.now() - os.uptime() * 1000) / 10_000)}`;
  }
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
