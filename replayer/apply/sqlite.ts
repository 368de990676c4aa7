import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../../lib/entry';
import { readJsonIfExists, replaceJson } from '../../lib/durable-file';
import { BadEntryError, ConfinementError } from '../../lib/errors';
import { decodePages } from '../../lib/sqlite-pages';
import { resolveInRoot } from '../safe-path';
import type { Applier, ApplierContext, Data, Outcome } from './applier';
import { decide, type DbPosition } from './sqlite-order';
import { SqlitePageWriter, type SqliteConstructor } from './sqlite-file';

/** Pages staged for one database until the group commit writes them. */
interface Pending { pageSize: number; size: number; pages: Map<number, Buffer>; bytes: number }

/** Staged bytes past which a database is written before the commit, so memory stays bounded. */
const FLUSH_BYTES = 64 * 1024 * 1024;
/** The positions of every standby database, under --state. */
const POSITIONS = path.join('sqlite', 'positions.json');

/**
 * SQLite databases on the standby (entries of op `sqlite`): each transaction a primary's
 * connection committed arrives as the pages it changed, and the database file is changed as
 * SQLite itself would, whole transactions at a time (replayer/apply/sqlite-file). Entries are
 * placed by the database's own position (WAL generation and frame, or change counter) kept
 * under --state, so a transaction journaled by two processes is applied once and a change that
 * does not follow what the standby holds is put in doubt, never applied on a guess. Pages are
 * staged until the group commit, which writes each database once and then records positions.
 */
export class SqliteApplier implements Applier {
  readonly name = 'sqlite';
  private readonly positionsFile: string;
  private readonly positions: Record<string, DbPosition>;
  /** Positions including what is staged (null: the database's file was removed or replaced): where the next entry is decided from. */
  private readonly staged = new Map<string, DbPosition | null>();
  private readonly pending = new Map<string, Pending>();
  private readonly writers = new Map<string, { w: SqlitePageWriter; ino: number | undefined }>();
  private Database: SqliteConstructor | undefined;

  constructor(private readonly roots: ReadonlyMap<string, string>, private readonly ctx: Pick<ApplierContext, 'stateDir' | 'log' | 'order' | 'keep'>) {
    this.positionsFile = path.join(ctx.stateDir, POSITIONS);
    this.positions = readJsonIfExists<Record<string, DbPosition>>(this.positionsFile) ?? {};
  }

  handles(h: EntryHeader): boolean {
    return h.op === 'sqlite';
  }

  apply(h: EntryHeader, data: Data): Outcome {
    if (h.op !== 'sqlite') throw new BadEntryError(`${h.op} entry is not a sqlite entry`);
    const file = this.place(h.r, h.p);
    const key = `${h.r}/${h.p}`;
    const txns = decodePages(data.buf ?? fs.readFileSync(data.file), h.ps);
    if (h.kind === 'image' && txns.length !== 1) throw new BadEntryError(`sqlite image ${h.r}/${h.p} carries ${txns.length} transactions, not one`);
    const at = this.staged.has(key) ? this.staged.get(key) ?? undefined : this.positions[key];
    const o = h.o ?? 0;
    const verdict = decide(at, h, o, txns);
    if (verdict.kind === 'duplicate') return 'superseded';
    if (verdict.kind === 'doubt') {
      // Said once by the replayer (log and status) unless it is a re-apply after going back to the last commit.
      this.ctx.order.applied(h, 'apply', { r: h.r, p: h.p, why: verdict.why });
      return 'superseded';
    }
    let p = this.pending.get(key);
    if (p !== undefined && p.pageSize !== h.ps && !verdict.whole) throw new BadEntryError(`sqlite entry ${h.r}/${h.p}: page size ${h.ps} after ${p.pageSize} without an image`);
    if (verdict.whole || p === undefined || p.pageSize !== h.ps) {
      // Size -1 until a transaction is staged: a restart of the WAL alone writes nothing.
      p = { pageSize: h.ps, size: -1, pages: new Map(), bytes: 0 };
      this.pending.set(key, p);
    }
    for (const t of verdict.txns) {
      for (const [pgno, page] of t.pages) {
        // Copied: the entry's buffer is not ours to keep past this call.
        if (!p.pages.has(pgno)) p.bytes += page.length;
        p.pages.set(pgno, Buffer.from(page));
      }
      p.size = t.size;
      // Pages past a shrink are gone with it: a later growth must not bring them back.
      for (const pgno of p.pages.keys()) if (pgno > t.size) p.pages.delete(pgno);
    }
    if (verdict.whole) p.size = txns[0]!.size;
    this.staged.set(key, { w: h.w, k: h.k, o: Math.max(o, at?.o ?? 0) });
    this.ctx.order.applied(h, 'apply');
    if (p.bytes >= FLUSH_BYTES) {
      try {
        this.flush(key, file);
      } catch (err) {
        this.forgetUncommitted();
        throw err;
      }
    }
    return 'applied';
  }

  async sync(): Promise<void> {
    if (this.staged.size === 0) return;
    const next = { ...this.positions };
    try {
      for (const key of [...this.pending.keys()]) this.flush(key, this.place(...splitKey(key)));
      for (const [key, pos] of this.staged) {
        if (pos === null) delete next[key];
        else next[key] = pos;
      }
      // After the databases: a position never names a transaction the disk does not hold.
      fs.mkdirSync(path.dirname(this.positionsFile), { recursive: true });
      replaceJson(this.positionsFile, next);
    } catch (err) {
      this.forgetUncommitted();
      throw err;
    }
    for (const key of Object.keys(this.positions)) if (!(key in next)) delete this.positions[key];
    Object.assign(this.positions, next);
    this.staged.clear();
  }

  /**
   * A file entry on a database's path, or on a directory above it: the database's staged pages
   * are written first (the entry may move or remove the file), and one that removes, replaces
   * or changes the file ends its position, so whatever comes next for that name starts afresh
   * from an image.
   */
  beforeOther(h: EntryHeader): void {
    if (h.r === '' || (this.pending.size === 0 && this.staged.size === 0 && Object.keys(this.positions).length === 0)) return;
    const paths = [`${h.r}/${h.p}`];
    if (h.op === 'rename') paths.push(`${h.toRoot}/${h.to}`);
    const hit = (key: string): boolean => paths.some((p) => key === p || key.startsWith(`${p}/`));
    for (const key of [...this.pending.keys()]) {
      if (!hit(key)) continue;
      try {
        this.flush(key, this.place(...splitKey(key)));
      } catch (err) {
        this.forgetUncommitted();
        throw err;
      }
    }
    if (h.op === 'chmod') return;
    for (const key of new Set([...this.staged.keys(), ...Object.keys(this.positions)])) {
      if (!hit(key)) continue;
      this.staged.set(key, null);
      this.writers.get(key)?.w.close();
      this.writers.delete(key);
    }
  }

  /**
   * After a failed write: what was staged or written since the last commit is not trusted. The
   * replayer applies it again from the last commit, and it must then be decided from there, not
   * passed over as already held (a database written again with the same pages ends the same).
   */
  private forgetUncommitted(): void {
    this.pending.clear();
    this.staged.clear();
  }

  close(): void {
    this.pending.clear();
    this.staged.clear();
    for (const { w } of this.writers.values()) w.close();
    this.writers.clear();
  }

  cleanUp(): number {
    // A hot journal a killed replayer left is SQLite's to roll back, at the next open.
    return 0;
  }

  /** Writes what is staged for `key` into its database now. */
  private flush(key: string, file: string): void {
    const p = this.pending.get(key);
    if (p === undefined) return;
    this.pending.delete(key);
    if (p.size < 0) return;
    // What a checkpoint reached since the last write keeps of the database: the group commit
    // before the checkpoint wrote everything staged, so the file is as of the checkpoint.
    const [r, rel] = splitKey(key);
    this.ctx.keep?.(r, rel, 'inPlace');
    this.writer(key, file).write(p.pageSize, p.size, p.pages);
  }

  private writer(key: string, file: string): SqlitePageWriter {
    const held = this.writers.get(key);
    // The file at the path may have been removed or replaced since (an rm or rename entry): a
    // writer on the old inode would write where no reader looks.
    if (held !== undefined && held.ino === inodeOf(file)) return held.w;
    held?.w.close();
    this.Database ??= loadSqlite();
    const w = SqlitePageWriter.open(file, this.Database, (line) => this.ctx.log(`sqlite ${key}: ${line}`));
    this.writers.set(key, { w, ino: inodeOf(file) });
    return w;
  }

  /** The database's path on the standby: confined to its root, and neither it nor SQLite's files beside it a symlink. */
  private place(root: string, rel: string): string {
    const dir = this.roots.get(root);
    if (dir === undefined) throw new BadEntryError(`entry names root "${root}", which this replayer does not have (--root ${root}=/dir)`);
    const file = resolveInRoot(dir, rel, true);
    for (const f of [file, `${file}-journal`, `${file}-wal`, `${file}-shm`]) {
      let st: fs.Stats | undefined;
      try {
        st = fs.lstatSync(f);
      } catch {
        continue;
      }
      if (st.isSymbolicLink()) throw new ConfinementError(`${rel}: ${path.basename(f)} is a symlink on the standby; refusing to write a database through it`);
      if (!st.isFile()) throw new BadEntryError(`${rel}: ${path.basename(f)} is not a regular file on the standby`);
    }
    return file;
  }
}

function inodeOf(file: string): number | undefined {
  try {
    return fs.lstatSync(file).ino;
  } catch {
    return undefined;
  }
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

/** better-sqlite3, which the standby needs only once a database is replicated. */
function loadSqlite(): SqliteConstructor {
  try {
    return require('better-sqlite3') as SqliteConstructor;
  } catch (err) {
    throw new Error(`a SQLite database is replicated, and the standby needs better-sqlite3 (npm install better-sqlite3): ${(err as Error).message}`);
  }
}
