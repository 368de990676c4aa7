import * as fs from 'node:fs';
import * as path from 'node:path';

/** The position of one journal on the standby: the last entry applied. */
export interface JournalPos { e: number; s: number; t: number }

/** What the replayer has applied, durably: per journal, and the stream sequence to resume from. */
export interface Positions {
  streamSeq: number;
  /** When the stream read from was made: a stream made again restarts its numbering. */
  streamCreated?: string;
  journals: Record<string, JournalPos>;
}

/**
 * The replayer's position file under --state. Rewritten in place after every
 * entry (that survives a killed replayer) and fsynced at each commit (that
 * survives a power loss, back to the last commit).
 */
export class PositionStore {
  readonly file: string;
  private fd: number;
  positions: Positions;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = path.join(dir, 'positions.json');
    this.positions = load(this.file);
    this.fd = fs.openSync(this.file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  }

  /** Records that `name` applied (e, s, t), found at stream sequence `streamSeq`. */
  record(name: string, pos: JournalPos, streamSeq: number): void {
    this.positions.journals[name] = pos;
    this.positions.streamSeq = streamSeq;
    this.write();
  }

  /** Records that stream message `streamSeq` was consumed without changing any journal (a duplicate). */
  skip(streamSeq: number): void {
    this.positions.streamSeq = streamSeq;
    this.write();
  }

  /** Makes the recorded position durable. */
  sync(): void {
    fs.fsyncSync(this.fd);
  }

  close(): void {
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
  }

  private write(): void {
    // One pwrite at offset 0, then cut the tail: a reader never sees two documents mixed.
    const text = Buffer.from(JSON.stringify(this.positions) + '\n');
    fs.writeSync(this.fd, text, 0, text.length, 0);
    fs.ftruncateSync(this.fd, text.length);
  }
}

function load(file: string): Positions {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { streamSeq: 0, journals: {} };
    throw err;
  }
  // Only the first line counts: a write cut short by a kill may leave an older, longer tail after it.
  const first = text.split('\n')[0];
  if (first.trim() === '') return { streamSeq: 0, journals: {} };
  const p = JSON.parse(first) as Positions;
  if (typeof p.streamSeq !== 'number' || typeof p.journals !== 'object') throw new Error(`${file} is not a position file`);
  return p;
}
