import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../../lib/entry';
import { readJsonIfExists, replaceJson } from '../../lib/durable-file';
import { BadEntryError, ConfinementError } from '../../lib/errors';
import { decodePages, type PageSet } from '../../lib/sqlite-pages';
import { sidecarBase } from '../../lib/sqlite-files';
import { resolveInRoot } from '../safe-path';
import type { Applier, ApplierContext, Data, Outcome } from './applier';
import { decide, type DbPosition } from './sqlite-order';
import { checkBatch, requireNewPages, requireWholeImage, SqlitePageWriter, type SqliteConstructor } from './sqlite-file';
import { DbStaging } from './sqlite-staging';

/** Staged bytes past which a database is written before the commit, so memory stays bounded. */
const FLUSH_BYTES = 64 * 1024 * 1024;
/** The positions of every standby database, and what was applied since the last commit, under --state. */
const POSITIONS = path.join('sqlite', 'positions.json');
const STAGED = path.join('sqlite', 'staged.log');
/** File entries that make something at a path: one at a database's side file is refused. */
const MAKES = new Set(['put', 'symlink', 'link', 'mkdir', 'append', 'pwrite', 'truncate']);

/**
 * SQLite databases on the standby (entries of op `sqlite`): each transaction a primary's
 * connection committed arrives as the pages it changed, and the database file is changed as
 * SQLite itself would, whole transactions at a time (replayer/apply/sqlite-file). Entries are
 * placed by the database's own position (WAL generation and frame, or change counter) kept
 * under --state, so a transaction journaled by two processes is applied once and a change that
 * does not follow what the standby holds is put in doubt, never applied on a guess. Pages are
 * staged (and logged, for a kill: sqlite-staging) until the group commit, which writes each
 * database once and then records positions.
 */
export class SqliteApplier implements Applier {
  readonly name = 'sqlite';
  private readonly positionsFile: string;
  private readonly positions: Record<string, DbPosition>;
  private readonly staging: DbStaging;
  private readonly writers = new Map<string, { w: SqlitePageWriter; ino: number | undefined }>();
  private Database: SqliteConstructor | undefined;

  constructor(private readonly roots: ReadonlyMap<string, string>, private readonly ctx: Pick<ApplierContext, 'stateDir' | 'log' | 'order' | 'keep'>) {
    this.positionsFile = path.join(ctx.stateDir, POSITIONS);
    const saved = readJsonIfExists<{ commit: number; dbs: Record<string, DbPosition> }>(this.positionsFile);
    this.positions = saved?.dbs ?? {};
    const stagedFile = path.join(ctx.stateDir, STAGED);
    this.staging = new DbStaging(stagedFile, saved?.commit ?? 0);
    // A replayer killed after applying and before its commit: its positions say applied, so
    // what it staged is written now, as an applier that writes as it applies would have.
    const recovered = DbStaging.recovered(stagedFile, this.staging.commit);
    if (recovered.length > 0) {
      this.staging.replay(recovered);
      this.commitNow();
      ctx.log(`sqlite: wrote ${recovered.length} staged change(s) a stopped replayer had applied before its commit`);
    }
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
    const at = this.staging.positions.has(key) ? this.staging.positions.get(key) ?? undefined : this.positions[key];
    const o = h.o ?? 0;
    const verdict = decide(at, h, o, txns);
    if (verdict.kind === 'duplicate') return 'superseded';
    if (verdict.kind === 'doubt') {
      // Said once by the replayer (log and status) unless it is a re-apply after going back to the last commit.
      this.ctx.order.applied(h, 'apply', { r: h.r, p: h.p, why: verdict.why });
      return 'superseded';
    }
    this.check(key, file, h.ps, verdict.whole, verdict.txns);
    const p = this.staging.add(key, h.ps, verdict.whole, { w: h.w, k: h.k, o: Math.max(o, at?.o ?? 0) }, verdict.txns);
    this.ctx.order.applied(h, 'apply');
    if (p.bytes >= FLUSH_BYTES) this.guarded(() => this.flush(key, file));
    return 'applied';
  }

  async sync(): Promise<void> {
    this.commitNow();
  }

  /**
   * A file entry on a database's path, or on a directory above it: the database's staged pages
   * are written first (the entry may move or remove the file), and one that removes, replaces
   * or changes the file ends its position, so whatever comes next for that name starts afresh
   * from an image. One that would make something where SQLite keeps a database's journal (its
   * -journal, -wal, -shm) is refused: SQLite would read it as the database's.
   */
  beforeOther(h: EntryHeader): void {
    if (h.r === '' || (this.staging.positions.size === 0 && Object.keys(this.positions).length === 0)) return;
    const paths = [`${h.r}/${h.p}`];
    if (h.op === 'rename') paths.push(`${h.toRoot}/${h.to}`);
    const keys = new Set([...this.staging.positions.keys(), ...Object.keys(this.positions)]);
    const target = h.op === 'rename' ? `${h.toRoot}/${h.to}` : `${h.r}/${h.p}`;
    const base = sidecarBase(target);
    if ((MAKES.has(h.op) || h.op === 'rename') && base !== undefined && keys.has(base)) {
      throw new ConfinementError(`${target}: the stream would make a file where SQLite keeps the journal of database ${base}; refused`);
    }
    const hit = (key: string): boolean => paths.some((p) => key === p || key.startsWith(`${p}/`));
    for (const key of [...this.staging.pending.keys()]) if (hit(key)) this.guarded(() => this.flush(key, this.place(...splitKey(key))));
    if (h.op === 'chmod') return;
    for (const key of keys) {
      if (!hit(key)) continue;
      this.staging.forget(key);
      this.writers.get(key)?.w.close();
      this.writers.delete(key);
    }
  }

  close(): void {
    // What is staged stays in the log: the next replayer writes it, or the stream brings it again.
    this.staging.close();
    for (const { w } of this.writers.values()) w.close();
    this.writers.clear();
  }

  cleanUp(): number {
    // A hot journal a killed replayer left is SQLite's to roll back, at the next open.
    return 0;
  }

  /** Writes every staged database, then the positions that cover them, then empties the log. */
  private commitNow(): void {
    if (this.staging.positions.size === 0) return;
    const next = { ...this.positions };
    this.guarded(() => {
      for (const key of [...this.staging.pending.keys()]) this.flush(key, this.place(...splitKey(key)));
      for (const [key, pos] of this.staging.positions) {
        if (pos === null) delete next[key];
        else next[key] = pos;
      }
      // After the databases: a position never names a transaction the disk does not hold.
      fs.mkdirSync(path.dirname(this.positionsFile), { recursive: true });
      replaceJson(this.positionsFile, { commit: this.staging.commit + 1, dbs: next });
    });
    this.staging.commit++;
    for (const key of Object.keys(this.positions)) if (!(key in next)) delete this.positions[key];
    Object.assign(this.positions, next);
    this.staging.clear();
  }

  /**
   * Runs a write; when it fails, what was staged or written since the last commit is not
   * trusted. The replayer applies it again from the last commit, and it must then be decided
   * from there, not passed over as already held (a database written again with the same pages
   * ends the same).
   */
  private guarded(write: () => void): void {
    try {
      write();
    } catch (err) {
      this.staging.clear();
      throw err;
    }
  }

  /** Refuses, before anything is staged, what no write could take: pages of the wrong size, a page 1 that is not one, growth with pages missing, an image with holes. */
  private check(key: string, file: string, ps: number, whole: boolean, txns: readonly PageSet[]): void {
    const p = this.staging.pending.get(key);
    let size = whole ? 0 : p !== undefined && p.pageSize === ps && p.size >= 0 ? p.size : this.fileSize(key, file, ps);
    for (const t of txns) {
      checkBatch(ps, t.size, t.pages);
      if (whole) requireWholeImage(t.size, ps, t.pages, `the image of ${key}`);
      else if (size >= 0) requireNewPages(size, t.size, ps, t.pages);
      size = t.size;
    }
  }

  /** The standby file's size in pages of `ps`, or -1 when its page size is another (the writer then refuses what is not whole). */
  private fileSize(key: string, file: string, ps: number): number {
    if (!fs.existsSync(file)) return 0;
    const shape = this.writer(key, file).shape();
    return shape.pageSize === 0 ? 0 : shape.pageSize === ps ? shape.size : -1;
  }

  /** Writes what is staged for `key` into its database now. */
  private flush(key: string, file: string): void {
    const p = this.staging.pending.get(key);
    if (p === undefined) return;
    this.staging.pending.delete(key);
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
