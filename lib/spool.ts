import * as fs from 'node:fs';
import * as path from 'node:path';
import { JournalError } from './errors';
import { checkChecksum, decodeEntry } from './codec';
import { readJsonIfExists } from './durable-file';

/**
 * The spool: the agent's local log, and the source of truth until the standby
 * has applied an entry. Segment files named by their first sequence number hold
 * frames of
 *   u32 entry length | u32 epoch | u64 seq | entry bytes (self-checking, see codec)
 * The frame carries epoch and seq so the shipper need not decode the entry.
 */

export const FRAME_HEAD = 16;
const SEG_EXT = '.seg';

export interface SpoolRecord {
  epoch: number;
  seq: number;
  /** A view into the buffer the frame was read into, right after its frame head. */
  entry: Buffer;
}

/** Segment files of a spool directory, oldest first. */
export function listSegments(dir: string): { first: number; file: string }[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .filter((n) => n.endsWith(SEG_EXT) && /^\d+$/.test(n.slice(0, -SEG_EXT.length)))
    .map((n) => ({ first: Number(n.slice(0, -SEG_EXT.length)), file: path.join(dir, n) }))
    .sort((a, b) => a.first - b.first);
}

/** Name of the segment that begins at `first`. */
export function segmentFile(dir: string, first: number): string {
  return path.join(dir, String(first).padStart(16, '0') + SEG_EXT);
}

/** Writes a frame head for an entry of `entryBytes` at `at` of `out`. */
export function writeFrameHead(out: Buffer, at: number, entryBytes: number, epoch: number, seq: number): void {
  out.writeUInt32BE(entryBytes, at);
  out.writeUInt32BE(epoch, at + 4);
  // Two halves rather than a BigInt: this runs on the application's thread for every entry.
  out.writeUInt32BE(Math.floor(seq / 0x100000000), at + 8);
  out.writeUInt32BE(seq >>> 0, at + 12);
}

/** Outcome of reading frames from one segment buffer. */
export interface ScanResult {
  records: SpoolRecord[];
  /** Bytes of whole, valid frames from the start. */
  goodBytes: number;
  /** Why scanning stopped before the end, if it did. */
  problem?: string;
}

/**
 * How much of each frame's entry a scan checks: `entry` decodes it whole (its header agrees with
 * its frame); `checksum` its framing and checksum only; `none` nothing past the frame's length.
 */
export type FrameCheck = 'entry' | 'checksum' | 'none';

/** Reads frames from `buf`, checking each entry as `check` says; stops at the first bad or partial frame. */
export function scanFrames(buf: Buffer, check: FrameCheck = 'entry'): ScanResult {
  const records: SpoolRecord[] = [];
  let off = 0;
  while (off < buf.length) {
    if (buf.length - off < FRAME_HEAD) return { records, goodBytes: off, problem: `partial frame header at byte ${off}` };
    const len = buf.readUInt32BE(off);
    const epoch = buf.readUInt32BE(off + 4);
    const seq = Number(buf.readBigUInt64BE(off + 8));
    if (off + FRAME_HEAD + len > buf.length) return { records, goodBytes: off, problem: `partial entry at byte ${off} (seq ${seq})` };
    const entry = buf.subarray(off + FRAME_HEAD, off + FRAME_HEAD + len);
    if (check !== 'none') {
      try {
        if (check === 'checksum') checkChecksum(entry);
        else {
          const { header } = decodeEntry(entry);
          if (header.s !== seq || header.e !== epoch) throw new Error(`frame says ${epoch}.${seq}, entry says ${header.e}.${header.s}`);
        }
      } catch (err) {
        return { records, goodBytes: off, problem: `bad entry at byte ${off} (seq ${seq}): ${(err as Error).message}` };
      }
    }
    records.push({ epoch, seq, entry });
    off += FRAME_HEAD + len;
  }
  return { records, goodBytes: off };
}

/** Reads a small JSON file, or undefined when it does not exist. */
export function readJson<T>(file: string): T | undefined {
  try {
    return readJsonIfExists<T>(file);
  } catch (err) {
    throw new JournalError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Files of one journal's spool directory. */
export function spoolFiles(dir: string) {
  return {
    lock: path.join(dir, 'lock'),
    meta: path.join(dir, 'meta.json'),
    acked: path.join(dir, 'acked.json'),
    origin: path.join(dir, 'origin.json'),
    lost: path.join(dir, 'lost.json'),
    unclean: path.join(dir, 'unclean.json'),
  };
}

/** What the shipper has had acknowledged by JetStream, kept across restarts. */
export interface AckedState { epoch: number; seq: number }
/**
 * Where this journal's history begins in the stream it ships to. A stream is known by its
 * creation time: one deleted and made again (or a new server) is another stream, which holds
 * nothing of what went to the old one.
 */
export interface OriginState {
  stream: string;
  /** The stream's creation time, as the server reports it. */
  created: string;
  /** The first entry this journal shipped to it. */
  epoch: number;
  seq: number;
}

/**
 * The last process of this journal that ended without its ending being flushed (killed, crashed),
 * found when its lock was taken over: `holder` as its lock named it, `at` when that was found.
 */
export interface UncleanEnd { holder: string; at: number }

/** The journal's identity across restarts. */
export interface MetaState { epoch: number }
/**
 * Entries the spool no longer held when they were due to be shipped, and that no standby had
 * reported applied: a standby lacks them until a baseline (or verify --repair) after `at`.
 */
export interface LostRange { from: number; to: number; at: number; reason: string }

/** Epoch and seq of the first frame of a segment, or undefined when it has none yet. */
export function firstFrame(file: string): { e: number; s: number } | undefined {
  const head = Buffer.alloc(FRAME_HEAD);
  const fd = fs.openSync(file, 'r');
  try {
    if (fs.readSync(fd, head, 0, FRAME_HEAD, 0) < FRAME_HEAD) return undefined;
  } finally {
    fs.closeSync(fd);
  }
  return { e: head.readUInt32BE(4), s: Number(head.readBigUInt64BE(8)) };
}

/**
 * Segments whose every record is at or before `upTo` (by epoch, then seq), oldest first;
 * never the newest segment, which the journal appends to.
 */
export function trimmableSegments(dir: string, upTo: { e: number; s: number }): string[] {
  const segs = listSegments(dir);
  const out: string[] = [];
  for (let i = 0; i + 1 < segs.length; i++) {
    const next = firstFrame(segs[i + 1].file);
    // This segment ends just before the next begins; its records' epochs are no later
    // than the next one's first. Both bounds at or before `upTo` mean all of it is covered.
    if (next === undefined || next.e > upTo.e || next.s - 1 > upTo.s) break;
    out.push(segs[i].file);
  }
  return out;
}

/** Deletes the segments trimmableSegments names; returns how many. */
export function trimSegments(dir: string, upTo: { e: number; s: number }): number {
  const doomed = trimmableSegments(dir, upTo);
  for (const file of doomed) fs.rmSync(file, { force: true });
  return doomed.length;
}
