import type * as Crypto from 'node:crypto';
import type { SqliteOp } from '../../lib/entry';
import { encodePages, type PageSet } from '../../lib/sqlite-pages';
import { parseDbHeader, parseShmHeader, parseWalHeader, readFrames, SHM_HEADER, WAL_HEADER, FRAME_HEADER, WalReadError, type ShmHeader } from '../../lib/sqlite-wal';
import { realFs } from '../real-fs';
import { threadDescriptors, type Descriptors } from './descriptors';

/** What a capture hands the journal: the operation and its bytes, and when an image was read (host order). */
export interface DbChange {
  op: SqliteOp;
  data: Buffer;
  /** Committed transactions it carries (0 for an image), for counting. */
  txns: number;
  /** Bytes of the database read whole to find it (rollback mode compares every page), when it was. */
  readWhole?: number;
}

/** Where a WAL-mode capture stands: the generation and frame it read to, and what the wal-index said then. */
interface WalState { mode: 'wal'; w: string; k: number; change: number; cksum: [number, number]; pageSize: number; bigEndian: boolean }
/** Where a rollback-mode capture stands: the change counter, and a digest of every page of that state. */
interface RollbackState { mode: 'rollback'; counter: number; pageSize: number; digests: Buffer[] }
type State = WalState | RollbackState;

/** Reads of the wal-index header retried while a writer is between its two copies. */
const SHM_TRIES = 100;
/** How long the descriptors of -wal and -shm go unchecked at most (see `filesMayChange`). */
const FILES_CHECK_MS = 1000;
/** Images retried while the database changes under the read (another process writing). */
const IMAGE_TRIES = 5;
/** Pages read at a time in rollback mode: one buffer, reused, instead of the whole database. */
const ROLLBACK_CHUNK_PAGES = 256;
/** A page's digest: SHA-256, the fastest node:crypto has here (SHA extensions): 62 ms for 50 MB of 4 KB pages, SHA-1 93, MD5 132. */
const PAGE_DIGEST = 'sha256';

/**
 * Runs `read` while the database is held in a read transaction on some connection of this
 * process, so that no other process can commit meanwhile and its file holds one state.
 */
export type HoldRead = <T>(read: () => T) => T;

/**
 * The committed transactions of one SQLite database file, read after each call that may have
 * committed, so that the standby gets them in the process's journal order. In WAL mode they are
 * the frames appended since the last read (whoever wrote them: another process's too, which the
 * standby then sees twice and applies once); in rollback-journal mode, the pages whose digest
 * changed. What cannot be proven to follow the last read (the first write this process sees,
 * frames a restart overwrote, a change of journal mode, several commits in rollback mode) goes
 * as an image of the whole database, read in one read transaction.
 *
 * Descriptors come from `fds` (agent/sqlite/descriptors) and are let go only when their file
 * was deleted or at `close`: closing any descriptor of a file drops every POSIX lock this
 * process holds on it, SQLite's own included.
 */
export class DbCapture {
  private state: State | undefined;
  private dbFd = -1;
  private walFd = -1;
  private shmFd = -1;
  private readonly head = Buffer.alloc(100);
  private readonly shmBuf = Buffer.alloc(SHM_HEADER);

  /**
   * Set while a connection holds the database in `locking_mode = EXCLUSIVE`: its WAL has no
   * shared index to read, and its change counter need not move at each commit, so no commit can
   * be told from the files. Each call that may have committed then sends the database whole
   * when its pages differ from the last sent (agent/sqlite/databases says so once).
   */
  exclusive = false;
  /**
   * Set when the files may have been made again (-shm deleted, SQL that names journal_mode or
   * locking_mode, a WAL read that failed, a second since the last look): a switch of journal
   * mode deletes -wal and -shm and makes new ones, and descriptors of the old ones read stale headers.
   */
  filesMayChange = true;
  private checkedAt = 0;
  /** Where images count when the files give no position: a generation of this capture's own. */
  private readonly ownGeneration = crypto().randomBytes(8).toString('hex');
  private ownPosition = 0;
  private lastDigest: Buffer | undefined;

  /** Set by `idle`: the database file may have been replaced (renamed over, removed and made again) before a reopen. */
  private dbMayChange = false;

  /** `fds`: how this thread holds descriptors of the files (agent/sqlite/descriptors). */
  constructor(readonly file: string, private readonly fds: Descriptors = threadDescriptors()) {}

  /**
   * What changed since the last call, or undefined when nothing did. `serialize` gives the
   * whole database as the application's connection sees it, in one read transaction. Throws
   * only on what it cannot read at all (the caller then asks for an image next time: `forget`).
   */
  capture(serialize: () => Buffer, hold?: HoldRead): DbChange | undefined {
    // A borrowed descriptor may have been closed by its owner and its number reused.
    for (const fd of [this.dbFd, this.walFd, this.shmFd]) if (fd >= 0 && !this.fds.valid(fd)) this.forgetFd(fd);
    const now = Date.now();
    if (now - this.checkedAt > FILES_CHECK_MS) this.filesMayChange = true;
    // Steady in WAL mode, its files as they were: the wal-index alone says what changed. One
    // fstat says the -shm read is the live one (a journal mode switched away deletes it), whatever
    // SQL did it: a stale index would say "nothing changed" for ever.
    const steady = this.state;
    if (steady?.mode === 'wal' && !this.exclusive && this.shmFd >= 0 && realFs.fstatSync(this.shmFd).nlink === 0) this.filesMayChange = true;
    if (steady?.mode === 'wal' && !this.filesMayChange && !this.exclusive) {
      const shm = this.readShm(false);
      if (shm !== undefined && shm.salt === steady.w && shm.change === steady.change) return undefined;
      const delta = shm === undefined ? undefined : this.walDelta(steady, shm);
      if (delta !== undefined) return delta;
    }
    if (this.filesMayChange) {
      this.checkFiles();
      this.filesMayChange = false;
      this.checkedAt = now;
    }
    const head = this.readHead();
    if (this.exclusive) return head === undefined && !fileExists(`${this.file}-wal`) ? undefined : this.wholeIfChanged(serialize);
    // A new database in WAL mode may have every page in the WAL and none yet in its file.
    const shm = head === undefined || head.wal ? this.readShm() : undefined;
    if (head === undefined && shm === undefined) {
      // Nothing readable, though the database holds something: no descriptor could be had (a
      // worker thread without /proc). What changed is then told by the whole.
      return this.dbFd < 0 && fileHasData(this.file) ? this.wholeIfChanged(serialize) : undefined;
    }
    const s = this.state;
    if (shm !== undefined) {
      if (s?.mode === 'wal' && s.w === shm.salt && s.change === shm.change) return undefined;
      if (s?.mode === 'wal') {
        const delta = this.walDelta(s, shm);
        if (delta !== undefined) return delta;
      }
      return this.image(serialize);
    }
    if (head === undefined || (s?.mode === 'rollback' && s.counter === head.counter)) return undefined;
    return hold !== undefined && this.dbFd >= 0 ? hold(() => this.rollbackRead(s)) : this.rollbackDelta(s, serialize());
  }

  /** The whole database when it differs from the last one sent this way, at a position of this capture's own. */
  private wholeIfChanged(serialize: () => Buffer): DbChange | undefined {
    const buf = serialize();
    const h = parseDbHeader(buf);
    if (h === undefined) return undefined;
    const digest = crypto().hash('sha256', buf, 'buffer') as Buffer;
    if (this.lastDigest?.equals(digest) === true) return undefined;
    this.lastDigest = digest;
    // Positions of its own: the standby orders its images by them, and by host order against anyone else's.
    this.state = undefined;
    return imageOf(buf, h.pageSize, this.ownGeneration, ++this.ownPosition);
  }

  /** Forgets where it stood: the next change goes as an image (a change that could not be journaled). */
  forget(): void {
    this.state = undefined;
    this.lastDigest = undefined;
  }

  /**
   * No connection of this thread has the file open any more: what it knew goes (the next change
   * is an image), its descriptors stay (see Databases.closed), and the next read checks that
   * they are still the files at their names.
   */
  idle(): void {
    this.forget();
    this.filesMayChange = true;
    this.dbMayChange = true;
  }

  private forgetFd(fd: number): void {
    this.fds.release(fd);
    if (this.dbFd === fd) this.dbFd = -1;
    if (this.walFd === fd) this.walFd = -1;
    if (this.shmFd === fd) this.shmFd = -1;
  }

  /** Closes its descriptors; call once no connection of this process has the file open. */
  close(): void {
    for (const fd of [this.dbFd, this.walFd, this.shmFd]) if (fd >= 0) this.fds.release(fd);
    this.dbFd = this.walFd = this.shmFd = -1;
    this.state = undefined;
  }

  /** Frames since the last read in the same generation, or in the next one when the WAL restarted right after it; undefined when that cannot be proven. */
  private walDelta(s: WalState, shm: ShmHeader): DbChange | undefined {
    try {
      let read: { txns: PageSet[]; bigEndian: boolean } | undefined;
      if (shm.salt === s.w) {
        if (shm.mxFrame < s.k || shm.pageSize !== s.pageSize) return undefined;
        read = s.k > 0 ? { txns: this.frames(s.k, shm.mxFrame, shm, s.cksum, s.bigEndian), bigEndian: s.bigEndian } : this.fromStart(shm, s.bigEndian);
      } else {
        // A new generation (the WAL restarted after a full checkpoint): read from its start.
        read = this.fromStart(shm, s.bigEndian);
      }
      // No commit may have been missed, in this generation or an old one: the wal-index's change
      // counter moves once per commit (a restart does not move it), so every commit since the
      // last read must be among the frames read.
      if (read === undefined || ((shm.change - s.change) >>> 0) !== read.txns.length) return undefined;
      return this.walChange(s, shm, read.txns, read.bigEndian);
    } catch (err) {
      if (!(err instanceof WalReadError)) throw err;
      this.filesMayChange = true;
      return undefined;
    }
  }

  /** The generation's frames from the WAL's start, its chain begun at the WAL header; none to read (a TRUNCATE checkpoint, not written since) needs no header. */
  private fromStart(shm: ShmHeader, bigEndian: boolean): { txns: PageSet[]; bigEndian: boolean } | undefined {
    if (shm.mxFrame === 0) return { txns: [], bigEndian };
    const wal = this.readWalHeader();
    if (wal === undefined || wal.salt !== shm.salt || wal.pageSize !== shm.pageSize) return undefined;
    return { txns: this.frames(0, shm.mxFrame, shm, wal.cksum, wal.bigEndian), bigEndian: wal.bigEndian };
  }

  private walChange(s: WalState, shm: ShmHeader, txns: PageSet[], bigEndian: boolean): DbChange {
    this.state = { mode: 'wal', w: shm.salt, k: shm.mxFrame, change: shm.change, cksum: shm.frameCksum, pageSize: shm.pageSize, bigEndian };
    return { op: { op: 'sqlite', kind: 'wal', w: shm.salt, k: shm.mxFrame, bw: s.w, bk: s.k, ps: shm.pageSize }, data: encodePages(shm.pageSize, txns), txns: txns.length };
  }

  /** Committed frames `from+1`..`to` of the WAL, as transactions. */
  private frames(from: number, to: number, shm: ShmHeader, cksum: readonly [number, number], bigEndian: boolean): PageSet[] {
    if (to === from) return [];
    const fd = this.wal();
    if (fd < 0) throw new WalReadError('the WAL file is missing');
    const frame = FRAME_HEADER + shm.pageSize;
    const len = (to - from) * frame;
    const buf = Buffer.allocUnsafe(len);
    const got = realFs.readSync(fd, buf, 0, len, WAL_HEADER + from * frame);
    if (got !== len) throw new WalReadError(`the WAL holds ${got} of the ${len} bytes of frames ${from + 1}..${to}`);
    return readFrames(buf, shm.pageSize, from, shm.salt, bigEndian, cksum, shm.frameCksum);
  }

  /** Pages whose digest changed since the last read, when exactly one commit happened since; else an image. From a serialized copy. */
  private rollbackDelta(s: State | undefined, buf: Buffer): DbChange | undefined {
    const head = parseDbHeader(buf);
    if (head === undefined) return undefined;
    return this.rollbackPages(s, head, buf.length / head.pageSize, (first, count) => buf.subarray(first * head.pageSize, (first + count) * head.pageSize));
  }

  /**
   * The same, read from the database file a chunk at a time while `hold` keeps it still: memory
   * for one chunk and the changed pages, not a copy of the whole database. (A serialized copy is
   * memory V8 does not count: a commit of a 50 MB database grew the process by 50 MB each time,
   * 2.8 GB after 50 commits, until a collection ran for other reasons.)
   */
  private rollbackRead(s: State | undefined): DbChange | undefined {
    const head = this.readHead();
    if (head === undefined) return undefined;
    const ps = head.pageSize;
    // The header's page count holds when it was written with this change counter (SQLite 3.7.0 on).
    const n = head.size > 0 && this.head.readUInt32BE(92) === head.counter ? head.size : Math.floor(realFs.fstatSync(this.dbFd).size / ps);
    const chunk = Buffer.allocUnsafe(ps * Math.min(ROLLBACK_CHUNK_PAGES, Math.max(1, n)));
    return this.rollbackPages(s, head, n, (first, count) => {
      const got = realFs.readSync(this.dbFd, chunk, 0, count * ps, first * ps);
      if (got !== count * ps) throw new Error(`${this.file} holds ${first * ps + got} bytes, not the ${n} pages its header says`);
      return chunk.subarray(0, count * ps);
    });
  }

  /**
   * The digest of each of the `n` pages `read` gives (ROLLBACK_CHUNK_PAGES at a time, valid until
   * the next read), compared with the last state's: the changed pages, copied, when exactly one
   * commit came after it; else all of them, as an image.
   */
  private rollbackPages(s: State | undefined, head: { pageSize: number; counter: number }, n: number, read: (first: number, count: number) => Buffer): DbChange {
    const ps = head.pageSize;
    const prev = this.follows(s, head);
    const digests: Buffer[] = [];
    const pages = new Map<number, Buffer>();
    const { hash } = crypto();
    for (let first = 0; first < n; first += ROLLBACK_CHUNK_PAGES) {
      const count = Math.min(ROLLBACK_CHUNK_PAGES, n - first);
      const chunk = read(first, count);
      for (let i = 0; i < count; i++) {
        const page = chunk.subarray(i * ps, (i + 1) * ps);
        const d = hash(PAGE_DIGEST, page, 'buffer') as Buffer;
        digests.push(d);
        const at = first + i;
        if (prev === undefined || prev.digests[at] === undefined || !prev.digests[at]!.equals(d)) pages.set(at + 1, Buffer.from(page));
      }
    }
    this.state = { mode: 'rollback', counter: head.counter, pageSize: ps, digests };
    const data = encodePages(ps, [{ end: head.counter, size: n, pages }]);
    if (prev === undefined) return { op: { op: 'sqlite', kind: 'image', w: 'r', k: head.counter, ps }, data, txns: 0, readWhole: n * ps };
    return { op: { op: 'sqlite', kind: 'rollback', w: 'r', k: head.counter, bw: 'r', bk: prev.counter, ps }, data, txns: 1, readWhole: n * ps };
  }

  /** The last rollback-mode state, if exactly one commit came after it (the change counter moved by one). */
  private follows(s: State | undefined, head: { pageSize: number; counter: number }): RollbackState | undefined {
    return s?.mode === 'rollback' && s.pageSize === head.pageSize && ((head.counter - s.counter) >>> 0) === 1 ? s : undefined;
  }

  /** The whole database at one WAL position: the wal-index is read before and after, and must not have moved. */
  private image(serialize: () => Buffer): DbChange | undefined {
    for (let i = 0; i < IMAGE_TRIES; i++) {
      const before = this.readShm();
      const buf = serialize();
      const after = this.readShm();
      if (before === undefined || after === undefined || before.change !== after.change || before.salt !== after.salt) continue;
      const head = parseDbHeader(buf);
      if (head === undefined) return undefined;
      const wal = this.readWalHeader();
      this.state = { mode: 'wal', w: after.salt, k: after.mxFrame, change: after.change, cksum: after.frameCksum, pageSize: head.pageSize, bigEndian: wal?.bigEndian ?? after.bigEndCksum };
      return imageOf(buf, head.pageSize, after.salt, after.mxFrame);
    }
    throw new Error(`${this.file} changed under every one of ${IMAGE_TRIES} reads of its image`);
  }

  private readHead(): ReturnType<typeof parseDbHeader> {
    if (this.dbMayChange && this.dbFd >= 0) {
      this.dbMayChange = false;
      // Another file under the name now: the old descriptor is left open, not closed (a
      // connection of this process may still use the old file, and hold locks on it).
      let ino: number | undefined;
      try {
        ino = realFs.statSync(this.file).ino;
      } catch {
        ino = undefined;
      }
      if (ino !== realFs.fstatSync(this.dbFd).ino) this.dbFd = -1;
    }
    if (this.dbFd < 0) this.dbFd = this.fds.open(this.file);
    if (this.dbFd < 0) return undefined;
    const got = realFs.readSync(this.dbFd, this.head, 0, 100, 0);
    return got === 100 ? parseDbHeader(this.head) : undefined;
  }

  /** Closes descriptors of -wal and -shm files that were deleted (a journal mode switched away and back): SQLite's locks are on the new files' inodes. */
  private checkFiles(): void {
    if (this.shmFd >= 0 && realFs.fstatSync(this.shmFd).nlink === 0) {
      this.fds.release(this.shmFd);
      this.shmFd = -1;
    }
    if (this.walFd >= 0 && realFs.fstatSync(this.walFd).nlink === 0) {
      this.fds.release(this.walFd);
      this.walFd = -1;
    }
  }

  private readShm(open = true): ShmHeader | undefined {
    if (this.shmFd < 0 && open) this.shmFd = this.fds.open(`${this.file}-shm`);
    if (this.shmFd < 0) return undefined;
    for (let i = 0; i < SHM_TRIES; i++) {
      if (realFs.readSync(this.shmFd, this.shmBuf, 0, SHM_HEADER, 0) !== SHM_HEADER) return undefined;
      const h = parseShmHeader(this.shmBuf);
      if (h !== undefined) return h;
    }
    return undefined;
  }

  private wal(): number {
    if (this.walFd < 0) this.walFd = this.fds.open(`${this.file}-wal`);
    return this.walFd;
  }

  private readWalHeader(): ReturnType<typeof parseWalHeader> {
    const fd = this.wal();
    if (fd < 0) return undefined;
    const buf = Buffer.alloc(WAL_HEADER);
    return realFs.readSync(fd, buf, 0, WAL_HEADER, 0) === WAL_HEADER ? parseWalHeader(buf) : undefined;
  }
}

function imageOf(buf: Buffer, pageSize: number, w: string, k: number): DbChange {
  const n = buf.length / pageSize;
  const pages = new Map<number, Buffer>();
  for (let i = 0; i < n; i++) pages.set(i + 1, buf.subarray(i * pageSize, (i + 1) * pageSize));
  return { op: { op: 'sqlite', kind: 'image', w, k, ps: pageSize }, data: encodePages(pageSize, [{ end: k, size: n, pages }]), txns: 0 };
}

/** node:crypto, loaded at the first database captured (it costs milliseconds of every start otherwise). */
function crypto(): typeof Crypto {
  return require('node:crypto') as typeof Crypto;
}

function fileHasData(file: string): boolean {
  try {
    return realFs.statSync(file).size > 0 || realFs.statSync(`${file}-wal`).size > 0;
  } catch {
    return false;
  }
}

function fileExists(file: string): boolean {
  try {
    realFs.statSync(file);
    return true;
  } catch {
    return false;
  }
}

