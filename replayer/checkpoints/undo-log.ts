import * as fs from 'node:fs';
import * as path from 'node:path';
import { namesIn, readJsonLines, replaceFile, syncDir } from '../../lib/durable-file';

/**
 * What one reached checkpoint keeps: for each object first changed after it (and before the
 * next one was reached), what that object was at the checkpoint. `kept.log` has one line per
 * object, in the order they were kept; `o/<n>` holds the kept bytes (a hard link, a copy, or
 * a directory tree). Undoing is reading the lines newest first.
 */

/** One kept object: `r` a root name (or OBJECT_ROOT: a replica file under --state), `p` its path in it. */
export type KeptLine =
  | { r: string; p: string; k: 'absent' }
  | { r: string; p: string; k: 'file'; o: number; mode: number; size: number }
  | { r: string; p: string; k: 'symlink'; target: string }
  | { r: string; p: string; k: 'dir'; mode: number }
  | { r: string; p: string; k: 'tree'; o: number; size: number };

/** The kinds that hold what is below them too: nothing under them needs keeping again. */
const COVERS_BELOW = new Set<KeptLine['k']>(['absent', 'tree']);

export const KEPT_LOG = 'kept.log';
export const OBJECTS_DIR = 'o';

/** One checkpoint's undo log on disk, open for keeping (the newest) or for reading (any). */
export class UndoLog {
  readonly lines: KeptLine[];
  /** By root, then path: the kind kept for each, to tell what is covered already. */
  private readonly byPath = new Map<string, Map<string, KeptLine['k']>>();
  private next: number;
  private fd = -1;
  /** Lines written since the last fdatasync. */
  private unsynced = false;
  /** Bytes held in `o/`, as the lines say (a hard link counts its file's size). */
  bytes = 0;

  /** Reads the log of checkpoint directory `dir`; its torn last line (a kill mid-write) is left out. */
  constructor(readonly dir: string) {
    this.lines = readJsonLines<KeptLine>(path.join(dir, KEPT_LOG));
    let top = 0;
    for (const l of this.lines) {
      this.note(l);
      if ('o' in l) top = Math.max(top, l.o);
    }
    for (const name of namesIn(this.objectsDir)) top = Math.max(top, Number.parseInt(name, 10) || 0);
    this.next = top + 1;
  }

  get objectsDir(): string {
    return path.join(this.dir, OBJECTS_DIR);
  }

  /** Where object `n` is kept. */
  object(n: number): string {
    return path.join(this.objectsDir, String(n));
  }

  /** A new object number (its file is made by the caller). */
  take(): number {
    return this.next++;
  }

  /**
   * Repairs what a crash left, before anything is kept: a tree line whose object never
   * arrived (the move it announced did not happen: the change after it did not either) is
   * dropped, and objects no line names (made, then the kill came before their line) are removed.
   */
  recover(): number {
    const present = new Set(namesIn(this.objectsDir));
    const good = this.lines.filter((l) => !('o' in l) || present.has(String(l.o)));
    const named = new Set(good.flatMap((l) => ('o' in l ? [String(l.o)] : [])));
    let removed = 0;
    for (const name of present) {
      if (named.has(name)) continue;
      fs.rmSync(path.join(this.objectsDir, name), { recursive: true, force: true });
      removed++;
    }
    if (good.length !== this.lines.length) {
      removed += this.lines.length - good.length;
      replaceFile(path.join(this.dir, KEPT_LOG), good.map((l) => `${JSON.stringify(l)}\n`).join(''));
      this.lines.splice(0, this.lines.length, ...good);
      this.byPath.clear();
      this.bytes = 0;
      for (const l of good) this.note(l);
    }
    return removed;
  }

  /** Whether a change of `how` to (r, p) needs nothing kept: it, or a directory above it, is kept already. */
  covered(r: string, p: string, inPlace: boolean): boolean {
    const paths = this.byPath.get(r);
    if (paths === undefined) return false;
    const segs = p.split('/');
    for (let i = 1; i < segs.length; i++) {
      const k = paths.get(segs.slice(0, i).join('/'));
      if (k !== undefined && COVERS_BELOW.has(k)) return true;
    }
    const k = paths.get(p);
    // A directory kept for its mode alone is kept again, whole, when it is removed or moved.
    return k !== undefined && (k !== 'dir' || inPlace);
  }

  /** The kind kept for (r, p) itself, if any. */
  keptAs(r: string, p: string): KeptLine['k'] | undefined {
    return this.byPath.get(r)?.get(p);
  }

  /** Appends `line`, durable (fdatasync, with `o/`) before returning when `now`, else at the next `sync`. */
  append(line: KeptLine, now: boolean): void {
    if (this.fd < 0) this.fd = fs.openSync(path.join(this.dir, KEPT_LOG), 'a', 0o600);
    fs.writeSync(this.fd, `${JSON.stringify(line)}\n`);
    this.unsynced = true;
    if (now) this.sync();
    this.lines.push(line);
    this.note(line);
  }

  /** Makes every line appended so far, and the objects they name, durable. */
  sync(): void {
    if (!this.unsynced) return;
    if (fs.existsSync(this.objectsDir)) this.syncObjects();
    fs.fdatasyncSync(this.fd);
    this.unsynced = false;
  }

  /** Makes `o/` and its new names durable (after an object was linked, copied or moved in). */
  syncObjects(): void {
    syncDir(this.objectsDir);
  }

  close(): void {
    if (this.fd >= 0) this.sync();
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  private note(l: KeptLine): void {
    let paths = this.byPath.get(l.r);
    if (paths === undefined) this.byPath.set(l.r, (paths = new Map()));
    // A directory kept whole after its mode was kept is covered as a tree from then on.
    if (paths.get(l.p) === undefined || l.k === 'tree') paths.set(l.p, l.k);
    if ('size' in l) this.bytes += l.size;
  }
}
