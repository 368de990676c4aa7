import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Op } from '../lib/entry';
import { isInside } from '../lib/roots';
import type { Change, JournalSink } from './sink';
import { FdTable, type OpenFile } from './fd-table';
import type { Located, Locator } from './locate';
import { realFs } from './real-fs';
import type { CommitWait } from './commit-wait';
import { OverlapTable, type Overlap } from './overlap';
import { Snapshotter } from './snapshot';
import { FreezeGate } from './freeze';
import { createShared } from './shared-state';

const { O_APPEND, O_TRUNC, O_CREAT, O_WRONLY, O_RDWR, O_EXCL } = fs.constants;

/**
 * Turns successful state-changing calls into journal entries. The shims know
 * call shapes; the recorder knows what each change means for the standby.
 * Every method runs after the real call succeeded, on the application thread,
 * before the caller sees the result: the journal's order is the order the
 * application observed. Every change of the application's, files or objects
 * (agent/objects), reaches the journal through `record`, which keeps `lastSeq`.
 */
export class Recorder implements JournalSink {
  /** Above zero while the agent itself is inside fs (a wrapped call's internals, or journaling). */
  depth = 0;
  /** Sequence number of the last entry journaled; a wrapper compares it before and after a call. */
  lastSeq = 0;
  /** Set in sync and strong modes: how a call waits for its entry to be confirmed. */
  commit: CommitWait | undefined;
  private lastRoot = '';
  private lastPath: string | undefined;
  private lastOp = '';
  /**
   * The change handed to the sink for each fs call, filled in place: the sink keeps none of it
   * (see JournalSink), and this runs on the application's thread for every call.
   */
  private readonly change: Change = { root: '', path: '', op: { op: 'rm' }, data: undefined };
  /** Reads what a call put in place whole (a rename or copy into a root); its journaling is this recorder's. */
  private readonly snap: Snapshotter;
  readonly fds = new FdTable();
  /** Asynchronous calls in flight, by file. */
  readonly overlaps = new OverlapTable();
  /** Set by a wrapper while it journals a call that overlapped others on its file: then only the file itself tells what happened. */
  overlap: Overlap | undefined;
  /** Absolute paths below which async compound calls (fs.cp) are at work; their result is journaled whole. */
  private readonly quietDirs: string[] = [];

  /**
   * `gate`: the freeze gate every wrapper passes (agent/freeze); without a shipper (unit tests)
   * one over cells nobody freezes.
   */
  constructor(readonly sink: JournalSink, readonly locator: Locator, readonly gate: FreezeGate = new FreezeGate(createShared())) {
    // Not stamped as read: these are results of the application's calls, in its order.
    this.snap = new Snapshotter({ record: (c) => this.journal(c) }, { readTime: false });
  }

  /** Journals a change of the application's (configuration, jobs); the journal's own fs calls meanwhile are not journaled. */
  record(change: Change): number {
    this.depth++;
    try {
      return this.journal(change);
    } finally {
      this.depth--;
    }
  }

  /** Keeps changes below `p` out of the journal until the returned function is called. */
  quiet(p: unknown): () => void {
    const abs = this.locator.absolute(p);
    if (abs === undefined) return () => {};
    this.quietDirs.push(abs);
    return () => {
      const i = this.quietDirs.indexOf(abs);
      if (i >= 0) this.quietDirs.splice(i, 1);
    };
  }

  /** Whole content of `p` is `data` (or, when data is unknown, whatever is on disk now). */
  put(p: unknown, data?: Buffer): void {
    const found = this.locator.locateFile(p);
    if (found !== undefined) this.putAt(found.at, data, found.st);
  }

  /** `data` was appended to `p`. */
  append(p: unknown, data: Buffer): void {
    const found = this.locator.locateFile(p);
    if (found === undefined) return;
    // Size after minus length is the offset only when nothing else of ours was in flight on this file (see emit).
    const st = found.st ?? realFs.statSync(found.at.abs);
    this.emit(found.at, { op: 'append', at: Math.max(0, st.size - data.length) }, data);
  }

  /** `data` was written from offset 0 of `p` without truncating it (writeFile with flag 'r+'). */
  overwrite(p: unknown, data: Buffer): void {
    const at = this.locator.locate(p, true);
    if (at !== undefined && data.length > 0) this.emit(at, { op: 'pwrite', at: 0 }, data);
  }

  truncate(p: unknown, size: number): void {
    const at = this.locator.locate(p, true);
    if (at !== undefined) this.emit(at, { op: 'truncate', size });
  }

  chmod(p: unknown): void {
    const found = this.locator.locateFile(p);
    if (found !== undefined) this.emit(found.at, { op: 'chmod', mode: (found.st ?? realFs.statSync(found.at.abs)).mode & 0o7777 });
  }

  /**
   * Something was removed at `p` (file, link, or a directory with all below it). `name`: only a
   * name went (unlink), which no remembered directory was reached through but a link's, and a
   * link gone is a path that no longer resolves.
   */
  remove(p: unknown, name = false): void {
    const at = this.locator.locate(p, false);
    if (at === undefined) return;
    this.emit(at, { op: 'rm' });
    this.forgetUnder(at.abs);
    if (!name) this.locator.forget();
  }

  /**
   * Directories were made. Recursive mkdir reports the topmost directory it
   * created (`first`), or nothing when all existed; each created level is journaled.
   */
  mkdir(p: unknown, recursive: boolean, first: unknown): void {
    if (recursive && first === undefined) return;
    const at = this.locator.locate(p, true);
    if (at === undefined) return;
    const top = recursive ? this.locator.locate(first, true) : at;
    const rootAbs = at.abs.slice(0, at.abs.length - at.rel.length - 1);
    const chain: string[] = [];
    for (let rel = at.rel; rel !== '.'; rel = path.posix.dirname(rel)) {
      chain.unshift(rel);
      if (top === undefined || rel === top.rel) break;
    }
    for (const rel of chain) {
      const abs = path.join(rootAbs, rel);
      this.emit({ root: at.root, rel, abs }, { op: 'mkdir', mode: realFs.statSync(abs).mode & 0o7777 });
    }
  }

  rename(from: unknown, to: unknown): void {
    const [src, dst] = this.locator.locateMove(from, to);
    // A directory it remembered may have moved, or a link now stand where one was reached. A file
    // moved moves none: what was remembered of its two names no longer matches their inodes.
    const toAbs = this.locator.absolute(to);
    if (toAbs === undefined || realFs.lstatSync(toAbs, { throwIfNoEntry: false })?.isFile() !== true) this.locator.forget();
    if (src !== undefined && dst !== undefined) {
      this.emit(src, { op: 'rename', toRoot: dst.root, to: dst.rel });
      this.moveOpenFiles(src.abs, dst);
    } else if (src !== undefined) {
      this.emit(src, { op: 'rm' });
      this.forgetUnder(src.abs);
    } else if (dst !== undefined) {
      this.snapshotTree(dst);
    }
  }

  /** A symlink was made at `p`; its target is read back as the kernel stored it. */
  symlink(p: unknown): void {
    const at = this.locator.locate(p, false);
    this.locator.forget(); // a link may now stand where a remembered directory was reached
    if (at !== undefined) this.emit(at, { op: 'symlink', target: realFs.readlinkSync(at.abs, 'utf8') });
  }

  link(existing: unknown, p: unknown): void {
    const at = this.locator.locate(p, false);
    if (at === undefined) return;
    const from = this.locator.locate(existing, false);
    if (from !== undefined) this.emit(at, { op: 'link', fromRoot: from.root, from: from.rel });
    else this.snapshotTree(at); // a link to a file outside every root: the standby gets its content
  }

  /** A copy (copyFile, cp) landed at `p`: journal what is there now. */
  copied(p: unknown): void {
    const at = this.locator.locate(p, false);
    if (at !== undefined) this.snapshotTree(at);
  }

  /** A descriptor (or FileHandle) was opened; follow it when it can write under a root. */
  opened(p: unknown, flags: number, fd: number | undefined, handle?: object): void {
    const writes = (flags & (O_WRONLY | O_RDWR)) !== 0;
    const at = writes ? this.locator.locate(p, true) : undefined;
    if (fd !== undefined) this.fds.set(fd, undefined);
    if (at === undefined) return;
    const file: OpenFile = { at, append: (flags & O_APPEND) !== 0, pos: 0, detached: false };
    if (fd !== undefined) this.fds.set(fd, file);
    if (handle !== undefined) this.fds.setHandle(handle, file);
    // Opening may have created or emptied the file: the standby must see that even if nothing is written.
    if ((flags & (O_TRUNC | O_EXCL | O_CREAT)) === 0) return;
    const st = realFs.statSync(at.abs);
    if ((flags & (O_TRUNC | O_EXCL)) !== 0 || st.size === 0) this.emit(at, { op: 'put', mode: st.mode & 0o7777 }, EMPTY);
  }

  /** `data` went through a followed descriptor, at `position` (null: at the file position). */
  wrote(file: OpenFile | undefined, data: Buffer, position: number | null, fd?: number): void {
    if (file === undefined || file.detached || data.length === 0) return;
    if (file.append) {
      const size = fd !== undefined ? realFs.fstatSync(fd).size : realFs.statSync(file.at.abs).size;
      this.emit(file.at, { op: 'append', at: Math.max(0, size - data.length) }, data);
    } else if (position !== null) {
      this.emit(file.at, { op: 'pwrite', at: position }, data);
    } else if (file.pos !== null) {
      this.emit(file.at, { op: 'pwrite', at: file.pos }, data);
      file.pos += data.length;
    } else {
      this.putAt(file.at); // lost track of the position: the file as it is now is always right
    }
  }

  /** Unknown bytes went through a followed descriptor (a stream or iterable): journal the whole file. */
  rewrote(file: OpenFile | undefined): void {
    if (file === undefined || file.detached) return;
    file.pos = null;
    this.putAt(file.at);
  }

  /** A read through a followed descriptor moved its position (or made it unknown: n = null). */
  read(file: OpenFile | undefined, n: number | null): void {
    if (file === undefined || file.pos === null) return;
    file.pos = n === null ? null : file.pos + n;
  }

  ftruncate(file: OpenFile | undefined, size: number): void {
    if (file !== undefined && !file.detached) this.emit(file.at, { op: 'truncate', size });
  }

  fchmod(file: OpenFile | undefined): void {
    if (file !== undefined && !file.detached) this.emit(file.at, { op: 'chmod', mode: realFs.statSync(file.at.abs).mode & 0o7777 });
  }

  /**
   * Journals a call of an overlapping group from the file as it is now, a state it really had:
   * the bytes past what the journal has, when the group only appended, else the whole file.
   */
  private fromDisk(at: Located, g: Overlap): void {
    const st = realFs.statSync(at.abs, { throwIfNoEntry: false });
    if (st === undefined || !st.isFile()) return; // removed meanwhile: the removal is journaled by its own call
    if (g.onlyAppends && g.end !== undefined && st.size >= g.end) {
      if (st.size > g.end) this.emit(at, { op: 'append', at: g.end }, readRange(at.abs, g.end, st.size));
    } else {
      this.emit(at, { op: 'put', mode: st.mode & 0o7777 }, realFs.readFileSync(at.abs));
    }
    g.end = st.size;
    g.lastSeq = this.lastSeq;
  }

  private putAt(at: Located, data?: Buffer, seen?: fs.Stats): void {
    const st = seen ?? realFs.statSync(at.abs);
    if (!st.isFile()) return;
    this.emit(at, { op: 'put', mode: st.mode & 0o7777 }, data ?? realFs.readFileSync(at.abs));
  }

  /** Journals whatever is at `at` now, recursively: directories first, then what they hold. */
  private snapshotTree(at: Located): void {
    // The top decides: below a quiet directory all is quiet, and an fs.cp still at work deeper
    // inside journals its own result whole when it ends.
    if (this.quietDirs.length > 0 && this.isQuiet(at.abs)) return;
    this.snap.tree(at.root, at.rel, at.abs);
  }

  private emit(at: Located, op: Op, data?: Buffer): void {
    if (this.quietDirs.length > 0 && this.isQuiet(at.abs)) return;
    // A call that overlapped others on its file (the wrapper says so): what its arguments say it
    // did may be false, so whatever its recipe would journal, the file itself is journaled.
    const g = this.overlap;
    if (g?.tainted === true) {
      this.overlap = undefined;
      try {
        this.fromDisk(at, g);
      } finally {
        this.overlap = g;
      }
      return;
    }
    const c = this.change;
    c.root = at.root;
    c.path = at.rel;
    c.op = op;
    c.data = data;
    this.journal(c);
    // Not kept alive by us until the next call: it may be the application's large buffer.
    c.data = undefined;
  }

  /** The one place a change goes to the sink; what it used is what a wrapper waits for. */
  private journal(change: Change): number {
    this.lastSeq = this.sink.record(change);
    this.lastRoot = change.root;
    this.lastPath = change.path;
    this.lastOp = change.op.op;
    return this.lastSeq;
  }

  /** What the last journaled entry changed, for error messages. */
  get lastWhat(): string {
    return this.lastPath === undefined ? 'the change' : `the ${this.lastOp} of ${this.lastRoot}/${this.lastPath}`;
  }

  private isQuiet(abs: string): boolean {
    for (const q of this.quietDirs) if (isInside(abs, q)) return true;
    return false;
  }

  /** Descriptors open on a renamed object follow it to its new name. */
  private moveOpenFiles(fromAbs: string, to: Located): void {
    for (const f of this.fds.open) {
      if (isInside(f.at.abs, fromAbs)) {
        const tail = f.at.abs.slice(fromAbs.length);
        f.at = { root: to.root, rel: to.rel + tail.split(path.sep).join('/'), abs: to.abs + tail };
      }
    }
  }

  /** Writes through descriptors of removed files change nothing the standby can see. */
  private forgetUnder(abs: string): void {
    for (const f of this.fds.open) {
      if (isInside(f.at.abs, abs)) f.detached = true;
    }
  }
}

const EMPTY = Buffer.alloc(0);

/** Bytes [from, to) of a file, read through the real fs; shorter only if the file shrank meanwhile. */
function readRange(abs: string, from: number, to: number): Buffer {
  const out = Buffer.allocUnsafe(to - from);
  const fd = realFs.openSync(abs, 'r');
  try {
    let got = 0;
    while (got < out.length) {
      const n = realFs.readSync(fd, out, got, out.length - got, from + got);
      if (n === 0) break;
      got += n;
    }
    return out.subarray(0, got);
  } finally {
    realFs.closeSync(fd);
  }
}
