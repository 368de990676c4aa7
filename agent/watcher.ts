import * as fs from 'node:fs';
import * as path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Op } from '../lib/entry';
import type { Root } from '../lib/roots';
import type { Journal } from './journal';
import { Snapshotter, under } from './snapshot';

export interface WatcherOptions {
  /** Keep the process alive while watching: yes for `understudy watch`, no inside an application. */
  persistent: boolean;
  excluded: (rel: string) => boolean;
  /** How long a file must hold still before it is journaled (no torn snapshot). */
  stableMs?: number;
  /** Told of each change journaled, for a count or a log line. */
  onJournaled?: (root: string, rel: string, kind: string) => void;
  onError?: (err: Error) => void;
}

/**
 * Journals what other processes change under the roots (a shell, cron, a child process):
 * created, changed and removed files, directories and links, each as a snapshot of what is
 * there once it holds still. It remembers the state it last journaled per path, and so does
 * the agent's own journaling (see `journaled`): a change already in the journal is not
 * journaled again.
 */
export class Watcher {
  private readonly last = new Map<string, string>();
  private readonly snap: Snapshotter;
  private fsw: FSWatcher | undefined;

  constructor(private readonly roots: readonly Root[], journal: Journal, private readonly opts: WatcherOptions) {
    this.snap = new Snapshotter(journal);
  }

  /**
   * Starts watching; resolves once the initial scan is done. What changed after `start` but
   * before the scan reached it (a child process the application runs at once) is journaled
   * too: the scan reports every object, and those changed since `start` count.
   */
  start(): Promise<void> {
    const since = Date.now();
    let ready = false;
    const fsw = watch(this.roots.map((r) => r.dir), {
      persistent: this.opts.persistent,
      ignoreInitial: false,
      followSymlinks: false,
      awaitWriteFinish: { stabilityThreshold: this.opts.stableMs ?? 200, pollInterval: 50 },
      ignored: (p: string) => {
        const at = this.locate(p);
        return at !== undefined && at.rel !== '' && this.opts.excluded(at.rel);
      },
    });
    this.fsw = fsw;
    for (const event of ['add', 'addDir', 'change', 'unlink', 'unlinkDir'] as const) {
      fsw.on(event, (p: string) => {
        if (ready || changedSince(p, since)) this.seen(p);
      });
    }
    // chokidar reports no link whose target is missing; the raw event still names it.
    fsw.on('raw', (event: string, p: string, details: unknown) => {
      const dir = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (event !== 'rename' || dir === undefined) return;
      const abs = path.isAbsolute(p) ? p : path.join(dir, p);
      if (isLink(abs)) this.seen(abs);
    });
    fsw.on('error', (err: unknown) => this.opts.onError?.(err as Error));
    return new Promise((resolve) => fsw.once('ready', () => {
      ready = true;
      resolve();
    }));
  }

  /** Notes a change the agent journaled itself, as the object is now. */
  journaled(root: string, rel: string, op: Op): void {
    const r = this.roots.find((x) => x.name === root);
    if (r === undefined) return;
    this.last.set(`${root}\0${rel}`, signature(under(r.dir, rel)));
    if (op.op === 'rename') {
      const to = this.roots.find((x) => x.name === op.toRoot);
      if (to !== undefined) this.last.set(`${op.toRoot}\0${op.to}`, signature(under(to.dir, op.to)));
    }
  }

  async close(): Promise<void> {
    await this.fsw?.close();
  }

  private seen(abs: string): void {
    const at = this.locate(abs);
    if (at === undefined || at.rel === '') return;
    const key = `${at.root.name}\0${at.rel}`;
    const now = signature(abs);
    if (this.last.get(key) === now) return;
    // Below a directory whose removal is journaled already: covered by it.
    if (now === 'absent' && this.removedAbove(at.root.name, at.rel)) return;
    try {
      const s = this.snap.snapshot(at.root.name, at.rel, abs, true);
      this.last.set(key, now);
      if (s.kind !== 'absent') this.opts.onJournaled?.(at.root.name, at.rel, s.kind);
    } catch (err) {
      this.opts.onError?.(err as Error);
    }
  }

  private removedAbove(root: string, rel: string): boolean {
    for (let q = rel; q.includes('/'); ) {
      q = q.slice(0, q.lastIndexOf('/'));
      if (this.last.get(`${root}\0${q}`) === 'absent') return true;
    }
    return false;
  }

  private locate(abs: string): { root: Root; rel: string } | undefined {
    for (const root of this.roots) {
      const rel = path.relative(root.dir, abs);
      if (rel === '') return { root, rel: '' };
      if (!rel.startsWith('..') && !path.isAbsolute(rel)) return { root, rel: rel.split(path.sep).join('/') };
    }
    return undefined;
  }
}

function changedSince(abs: string, since: number): boolean {
  try {
    // ctime: a rename or chmod counts as a change too. A little slack for the clocks' granularity.
    return fs.lstatSync(abs).ctimeMs >= since - 10;
  } catch {
    return false;
  }
}

function isLink(abs: string): boolean {
  try {
    return fs.lstatSync(abs).isSymbolicLink();
  } catch {
    return false;
  }
}

/** What an object is now, as far as journaling cares: type, size, times, mode, link target. */
function signature(abs: string): string {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(abs);
  } catch {
    return 'absent';
  }
  if (st.isSymbolicLink()) return `link:${fs.readlinkSync(abs)}`;
  if (st.isDirectory()) return `dir:${st.mode & 0o7777}`;
  return `${st.isFile() ? 'file' : 'other'}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode & 0o7777}`;
}
