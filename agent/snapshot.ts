import * as fs from 'node:fs';
import * as path from 'node:path';
import { typeOf } from '../lib/walk';
import { hostStamp } from '../lib/host-clock';
import type { Journal } from './journal';

const { O_RDONLY, O_NOFOLLOW } = fs.constants;

/** What a snapshot found and journaled. */
export type Snapped = { kind: 'file'; bytes: number } | { kind: 'dir' | 'symlink' | 'removed' | 'absent' | 'other' | 'torn'; bytes?: undefined };

/** Attempts at a file that keeps changing while it is read, before its last read is journaled anyway. */
const ATTEMPTS = 3;

/**
 * Journals objects as they are now, each with the time it was read (EntryHead.b),
 * so the standby never puts such a snapshot on top of a newer change.
 */
export class Snapshotter {
  constructor(private readonly journal: Journal) {}

  /**
   * Journals the object at `abs` as (root, rel): a directory, a link as a link, a file
   * with its bytes and permission bits. When nothing is there, journals its removal if
   * `removeWhenAbsent`. A file that changes while it is read is read again.
   */
  snapshot(root: string, rel: string, abs: string, removeWhenAbsent = false): Snapped {
    for (let attempt = 1; ; attempt++) {
      const b = Date.now();
      // The host's order of a snapshot is when it was read, not when it was journaled: a change
      // made in between must be placed after it on the standby.
      const o = hostStamp();
      let st: fs.Stats;
      try {
        st = fs.lstatSync(abs);
      } catch (err) {
        if (!isGone(err)) throw err;
        if (!removeWhenAbsent) return { kind: 'absent' };
        this.journal.record(root, rel, { op: 'rm' }, undefined, b, o);
        return { kind: 'removed' };
      }
      const type = typeOf(st);
      if (type === 'dir') {
        this.journal.record(root, rel, { op: 'mkdir', mode: st.mode & 0o7777 }, undefined, b, o);
        return { kind: 'dir' };
      }
      if (type === 'symlink') {
        this.journal.record(root, rel, { op: 'symlink', target: fs.readlinkSync(abs) }, undefined, b, o);
        return { kind: 'symlink' };
      }
      if (type !== 'file') return { kind: 'other' };
      const r = this.file(root, rel, abs, b, o, attempt === ATTEMPTS);
      if (r !== 'changed') return r;
    }
  }

  /** One read of a file: journaled when it held still while read (or `anyway`), else 'changed'. */
  private file(root: string, rel: string, abs: string, b: number, o: number, anyway: boolean): Snapped | 'changed' {
    let fd: number;
    try {
      fd = fs.openSync(abs, O_RDONLY | O_NOFOLLOW);
    } catch (err) {
      // Replaced by a link, or removed, between lstat and open: look again.
      if (isGone(err) || (err as NodeJS.ErrnoException).code === 'ELOOP') return 'changed';
      throw err;
    }
    try {
      const before = fs.fstatSync(fd);
      const size = before.size;
      const mode = before.mode & 0o7777;
      if (size <= 4 * 1024 * 1024) {
        const data = Buffer.alloc(size);
        const n = readFully(fd, data, 0);
        if (!anyway && (n !== size || changedSince(before, fs.fstatSync(fd)))) return 'changed';
        this.journal.record(root, rel, { op: 'put', mode }, data.subarray(0, n), b, o);
        return { kind: 'file', bytes: n };
      }
      // Large: one chunk in memory at a time. Torn if it changed meanwhile; then it goes again, newer.
      let short = false;
      this.journal.recordChunks(root, rel, { op: 'put', mode }, size, (off, len) => {
        const chunk = Buffer.alloc(len);
        if (readFully(fd, chunk, off) !== len) short = true;
        return chunk;
      }, b, undefined, o);
      if (!anyway && (short || changedSince(before, fs.fstatSync(fd)))) return 'changed';
      return short ? { kind: 'torn' } : { kind: 'file', bytes: size };
    } finally {
      fs.closeSync(fd);
    }
  }
}

function readFully(fd: number, buf: Buffer, position: number): number {
  let n = 0;
  while (n < buf.length) {
    const got = fs.readSync(fd, buf, n, buf.length - n, position + n);
    if (got === 0) break;
    n += got;
  }
  return n;
}

function changedSince(a: fs.Stats, b: fs.Stats): boolean {
  return a.size !== b.size || a.mtimeMs !== b.mtimeMs || a.ctimeMs !== b.ctimeMs;
}

function isGone(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The absolute path of `rel` under a root directory. */
export function under(dir: string, rel: string): string {
  return path.join(dir, ...rel.split('/'));
}
