import * as fs from 'node:fs';
import * as path from 'node:path';
import { crc32 } from 'node:zlib';
import { decodePages, encodePages, type PageSet } from '../../lib/sqlite-pages';
import type { DbPosition } from './sqlite-order';

/** Pages staged for one database until they are written: page size, size in pages after them (-1: none yet), the pages. */
export interface Pending { pageSize: number; size: number; pages: Map<number, Buffer>; bytes: number }

/** One staged step, as the log keeps it: transactions for a database, or the end of its position. */
type Step =
  | { key: string; ps: number; whole: boolean; pos: DbPosition; txns: readonly PageSet[] }
  | { key: string; gone: true };

/**
 * What the sqlite applier applied since the last commit and has not written: pages per
 * database, and the positions they take it to. Each step is also appended to a log under
 * --state before `stage` returns (a write, no fsync), so a replayer killed before its group
 * commit finds them again at its next start, as the replayer's positions (kept per entry)
 * say they were applied; a power loss takes both the log and those positions, and the entries
 * come again from the last commit.
 */
export class DbStaging {
  readonly pending = new Map<string, Pending>();
  /** Positions including what is staged; null: the database's file was removed or replaced. */
  readonly positions = new Map<string, DbPosition | null>();
  private fd = -1;

  /**
   * `commit`: the number of the last durable commit. Each step is logged with it, so that steps
   * of an older commit, whose truncation of the log a power loss undid, are never taken again.
   */
  constructor(private readonly file: string, public commit: number) {}

  /** The steps a killed replayer logged after commit `commit`, in order (a torn last one left out). */
  static recovered(file: string, commit: number): Step[] {
    let buf: Buffer;
    try {
      buf = fs.readFileSync(file);
    } catch {
      return [];
    }
    const steps: Step[] = [];
    for (let at = 0; at + 12 <= buf.length;) {
      const hlen = buf.readUInt32BE(at);
      const dlen = buf.readUInt32BE(at + 4);
      const end = at + 12 + hlen + dlen;
      if (end > buf.length || crc32(buf.subarray(at + 12, end)) !== buf.readUInt32BE(at + 8)) break;
      const head = JSON.parse(buf.toString('utf8', at + 12, at + 12 + hlen)) as { key: string; after: number; gone?: true; ps?: number; whole?: boolean; pos?: DbPosition };
      at = end;
      if (head.after !== commit) continue;
      if (head.gone === true) steps.push({ key: head.key, gone: true });
      else steps.push({ key: head.key, ps: head.ps!, whole: head.whole!, pos: head.pos!, txns: decodePages(buf.subarray(end - dlen, end), head.ps!) });
    }
    return steps;
  }

  /** Replays recovered steps into memory (not logged again: they are in the log already). */
  replay(steps: readonly Step[]): void {
    for (const s of steps) {
      if ('gone' in s) this.forget(s.key, false);
      else this.add(s.key, s.ps, s.whole, s.pos, s.txns, false);
    }
  }

  /** Stages `txns` of database `key`, taking it to `pos`; `whole`: they replace it (an image). */
  add(key: string, ps: number, whole: boolean, pos: DbPosition, txns: readonly PageSet[], log = true): Pending {
    if (log) this.log({ key, after: this.commit, ps, whole, pos }, encodePages(ps, txns));
    let p = this.pending.get(key);
    if (whole || p === undefined || p.pageSize !== ps) {
      p = { pageSize: ps, size: -1, pages: new Map(), bytes: 0 };
      this.pending.set(key, p);
    }
    for (const t of txns) {
      for (const [pgno, page] of t.pages) {
        if (!p.pages.has(pgno)) p.bytes += page.length;
        // Copied: the entry's buffer is not ours to keep past the apply.
        p.pages.set(pgno, Buffer.from(page));
      }
      p.size = t.size;
      // Pages past a shrink are gone with it: a later growth must not bring them back.
      for (const pgno of p.pages.keys()) if (pgno > t.size) p.pages.delete(pgno);
    }
    this.positions.set(key, pos);
    return p;
  }

  /** The database's file was removed or replaced: its position ends (whatever comes next starts from an image). */
  forget(key: string, log = true): void {
    if (log) this.log({ key, after: this.commit, gone: true }, Buffer.alloc(0));
    this.positions.set(key, null);
    this.pending.delete(key);
  }

  /** What was staged is committed (or abandoned): memory and log start empty. */
  clear(): void {
    this.pending.clear();
    this.positions.clear();
    if (this.fd >= 0) {
      fs.ftruncateSync(this.fd, 0);
    } else if (fs.existsSync(this.file)) {
      fs.truncateSync(this.file, 0);
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  private log(head: object, data: Buffer): void {
    if (this.fd < 0) {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      this.fd = fs.openSync(this.file, 'a', 0o600);
    }
    const h = Buffer.from(JSON.stringify(head), 'utf8');
    const pre = Buffer.alloc(12);
    pre.writeUInt32BE(h.length, 0);
    pre.writeUInt32BE(data.length, 4);
    pre.writeUInt32BE(crc32(data, crc32(h)), 8);
    // One write(2): a kill leaves it whole or torn at the end, where recovery stops.
    fs.writeSync(this.fd, Buffer.concat([pre, h, data]));
  }
}
