import * as path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Op } from '../lib/entry';
import type { Root } from '../lib/roots';
import { watchPace } from '../lib/settings';
import type { JournalSink } from './sink';
import { Reconciler, type FirstLook, type OnJournaled, type PassReport, type ReconcilePace } from './reconcile';
import { Snapshotter } from './snapshot';

export interface WatcherOptions {
  /** Keep the process alive while watching: yes for `understudy watch`, no inside an application. */
  persistent: boolean;
  excluded: (rel: string) => boolean;
  /** Pace of settling, full passes and polling; UNDERSTUDY_WATCH_* or DEFAULTS.watch where not given. */
  pace?: Partial<ReconcilePace>;
  /** Told of each change journaled, for a count or a log line. */
  onJournaled?: OnJournaled;
  onError?: (err: Error) => void;
  /**
   * Inside an application: a file the process holds a POSIX lock on is left unread while it is,
   * and no descriptor of it is ever closed (closing one would drop the application's lock).
   */
  keepLocks?: boolean;
  /** Told of each file so left unread (looked at again later). */
  onLocked?: (root: string, rel: string) => void;
  /** Said once when the kernel will not watch part of the tree: it is polled instead. */
  onLimit?: (message: string) => void;
  /** Where what the journal has is kept between runs: watchStateFile of the journal's directory. */
  stateFile: string;
  /**
   * Per root name, an earlier time than the start from which a first look without a saved state
   * journals what changed: when the root's last baseline began (what came after it is not on the standby).
   */
  changedSince?: ReadonlyMap<string, number>;
}

/** The watcher's state file in a journal's spool directory: it belongs to that journal. */
export function watchStateFile(journalDir: string): string {
  return path.join(journalDir, 'watch-state.ndjson');
}

/** What the watcher has done, for status. */
export interface WatchReport {
  journaled: number;
  /** Directories polled because the kernel would not watch them. */
  polled: number;
  lastPass?: PassReport;
  /** Mended by all full passes since the start. */
  mendedTotal: number;
}

/**
 * Journals what other processes change under the roots (a shell, cron, a child process).
 * chokidar's events only say where to look: the reconciler lists the directory once it
 * settled and journals what differs from what the journal has, and a slow full pass mends
 * whatever no event announced (see reconcile.ts). What the agent journaled itself is known
 * (`journaled`) and not journaled again.
 */
export class Watcher {
  private readonly rec: Reconciler;
  private fsw: FSWatcher | undefined;
  private limitSaid = false;

  constructor(private readonly roots: readonly Root[], sink: JournalSink, private readonly opts: WatcherOptions) {
    const pace: ReconcilePace = { ...watchPace(), ...opts.pace };
    const snap = new Snapshotter(sink, { databases: true, keepLocks: opts.keepLocks === true });
    this.rec = new Reconciler(roots, snap, opts.excluded, pace, { onJournaled: opts.onJournaled, onError: opts.onError, onLocked: opts.onLocked, stateFile: opts.stateFile });
  }

  /**
   * Starts watching; resolves once the first look at the tree is done. What changed after
   * `start` (a child process the application runs at once, a script racing the start) is
   * journaled: the first look journals what changed since, and events begin before it.
   * Resolves to what that look could not know.
   */
  async start(): Promise<FirstLook> {
    const since = Date.now();
    const fsw = watch(this.roots.map((r) => r.dir), {
      persistent: this.opts.persistent,
      ignoreInitial: true,
      followSymlinks: false,
      ignored: (p: string) => {
        const rel = this.relOf(p);
        return rel !== undefined && rel !== '' && this.opts.excluded(rel);
      },
    });
    this.fsw = fsw;
    for (const event of ['add', 'addDir', 'change', 'unlink', 'unlinkDir'] as const) fsw.on(event, (p: string) => this.rec.touch(p));
    // chokidar reports no link whose target is missing, nor every rename; the raw event still names the directory.
    fsw.on('raw', (_event: string, p: string, details: unknown) => {
      const dir = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (dir !== undefined) this.rec.touch(typeof p === 'string' && p !== '' && !p.startsWith('/') ? `${dir}/${p}` : dir);
    });
    fsw.on('error', (err: unknown) => this.watchError(err as NodeJS.ErrnoException));
    await new Promise<void>((resolve) => fsw.once('ready', () => resolve()));
    return this.rec.learn((root) => Math.min(since, this.opts.changedSince?.get(root) ?? since));
  }

  /** Notes a change the agent journaled itself, as the object is now. */
  journaled(root: string, rel: string, op: Op): void {
    if (op.op === 'rename') this.rec.movedByAgent(root, rel, op.toRoot, op.to);
    else if (op.op === 'append') this.rec.appendedByAgent(root, rel, op.at);
    else this.rec.journaledByAgent(root, rel);
  }

  /** What it has done so far. */
  report(): WatchReport {
    return { journaled: this.rec.journaledCount, polled: this.rec.polledCount, lastPass: this.rec.lastPass, mendedTotal: this.rec.mendedTotal };
  }

  /** Stops: what events announced and has not settled yet is journaled first. */
  async close(): Promise<void> {
    await this.fsw?.close();
    this.rec.flush();
    this.rec.close();
  }

  /** A directory the kernel will not watch (inotify's limits) is polled instead, and that is said once. */
  private watchError(err: NodeJS.ErrnoException): void {
    if ((err.code === 'ENOSPC' || err.code === 'EMFILE') && typeof err.path === 'string') {
      this.rec.poll(err.path);
      if (!this.limitSaid) {
        this.limitSaid = true;
        this.opts.onLimit?.(`the kernel will not watch ${err.path} (${err.code}: ${err.code === 'ENOSPC' ? 'fs.inotify.max_user_watches reached' : 'too many open files'}); it and every other directory refused are polled every ${(this.opts.pace?.pollMs ?? watchPace().pollMs) / 1000} s instead (status counts them)`);
      }
      return;
    }
    this.opts.onError?.(err);
  }

  private relOf(abs: string): string | undefined {
    for (const r of this.roots) {
      if (abs === r.dir) return '';
      if (abs.startsWith(r.dir + '/')) return abs.slice(r.dir.length + 1);
    }
    return undefined;
  }
}
