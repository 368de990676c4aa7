import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Root } from '../lib/roots';
import { replaceFile } from '../lib/durable-file';
import { DEFAULTS } from '../lib/settings';
import type { Snapshotter } from './snapshot';

/** How the reconciler paces itself; defaults in lib/settings (DEFAULTS.watch). */
export interface ReconcilePace {
  /** A directory is looked at again this long after the last event in it (files hold still meanwhile). */
  settleMs: number;
  /** A full pass over the tree begins this long after the last one ended. */
  fullPassEveryMs: number;
  /** Objects a full pass looks at per second, at most: its CPU cost is bounded by this. */
  objectsPerSecond: number;
  /** Directories the kernel would not watch (inotify limits) are looked at this often instead. */
  pollMs: number;
}

/** What the last full pass found: how long it took and what it mended (changes no event had brought). */
export interface PassReport {
  startedAt: number;
  finishedAt: number;
  objects: number;
  mended: number;
  /** The first few objects it mended, as root/path. */
  examples: string[];
}

/** What a first look without a saved state could not know. */
export interface FirstLook {
  /** Directories (root/rel) whose entries changed since the baseline: what was removed from them before the watch began is not known. */
  unsure: string[];
}

/** Told of what was journaled, for counts and logs. */
export type OnJournaled = (root: string, rel: string, kind: string) => void;

/** What a reconciler tells, and where it keeps what the journal has. */
export interface ReconcileHooks {
  onJournaled?: OnJournaled;
  onError?: (err: Error) => void;
  /** A file left unread because this process holds a lock on it (Snapshotter keepLocks): looked at again later. */
  onLocked?: (root: string, rel: string) => void;
  /** Where what the journal has is kept between runs, so a change made while no watcher ran is found at the next start. */
  stateFile?: string;
}

type Why = 'event' | 'pass' | 'poll';

/**
 * Events are a hint, never the truth. The reconciler keeps what the journal last said of each
 * object under the roots (its type, size, times, mode, inode, link target) and, when events
 * say a directory changed, lists that directory again once it settled: whatever differs from
 * what the journal has is journaled, a directory that appeared (made, moved in, renamed) is
 * journaled whole however fast it was filled, and what vanished is journaled removed. A slow
 * full pass does the same for every directory, so a change no event announced (a lost event,
 * an overflowed queue, a directory the kernel would not watch) is mended within one pass.
 */
export class Reconciler {
  /** root\0rel → signature as journaled (or as found when the watch began). */
  private readonly known = new Map<string, string>();
  /** root\0dirRel → names known in it. */
  private readonly children = new Map<string, Set<string>>();
  private readonly dirty = new Map<string, { root: Root; rel: string; due: number }>();
  private readonly polled = new Map<string, { root: Root; rel: string }>();
  private timer: NodeJS.Timeout | undefined;
  private passTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private closed = false;
  /** The last full pass that ended, if any. */
  lastPass: PassReport | undefined;
  /** Changes journaled in all (events, passes, polls). */
  journaledCount = 0;
  /** Mended by every full pass so far: the last pass alone would hide a mend once the next pass found nothing. */
  mendedTotal = 0;

  private readonly onJournaled: OnJournaled;
  private readonly onError: (err: Error) => void;
  private readonly onLocked: (root: string, rel: string) => void;
  private readonly stateFile: string | undefined;
  /** Files left unread for a lock, and how many quick looks each had since (then full passes only). */
  private readonly lockedLooks = new Map<string, number>();

  constructor(
    private readonly roots: readonly Root[],
    private readonly snap: Snapshotter,
    private readonly excluded: (rel: string) => boolean,
    private readonly pace: ReconcilePace,
    hooks: ReconcileHooks = {},
  ) {
    this.onJournaled = hooks.onJournaled ?? (() => undefined);
    this.onError = hooks.onError ?? (() => undefined);
    this.onLocked = hooks.onLocked ?? (() => undefined);
    this.stateFile = hooks.stateFile;
  }

  /**
   * The first look at the tree. With what a previous run left (`stateFile`), whatever differs
   * from it is journaled: changes made while no watcher ran. Without it, what is there is
   * learnt without journaling (the standby has it from a baseline), except what changed since
   * `since(root)`: the last baseline of the root, or the watch's start. A directory journaled
   * is journaled whole: a renamed one keeps its children's times, and the standby has none of
   * them under its new name. Returns what the first look could not know.
   */
  async learn(since: (root: string) => number): Promise<FirstLook> {
    const before = this.load();
    const unsure: string[] = [];
    for (const root of this.roots) {
      const from = since(root.name) - R.startSlackMs;
      if (before === undefined && this.removalsUnknown(lstat(root.dir), from)) unsure.push(`${root.name}/`);
      const stack: { rel: string; whole: boolean }[] = [{ rel: '', whole: false }];
      let n = 0;
      while (stack.length > 0) {
        const { rel, whole } = stack.pop()!;
        for (const name of this.list(root, rel)?.names ?? []) {
          const crel = join(rel, name);
          if (this.excluded(crel)) continue;
          const abs = under(root.dir, crel);
          const st = lstat(abs);
          if (st === undefined) continue;
          const sig = sigOf(abs, st);
          const k = key(root.name, crel);
          const was = before?.get(k);
          before?.delete(k);
          // What the agent journaled itself meanwhile is known already.
          if (this.known.get(k) === sig) {
            if (st.isDirectory()) stack.push({ rel: crel, whole: false });
            continue;
          }
          const changed = whole || (before !== undefined ? was !== sig : st.ctimeMs >= from);
          if (changed) this.journal(root, crel, 'event');
          else this.remember(root.name, crel, sig);
          if (st.isDirectory()) {
            if (before === undefined && this.removalsUnknown(st, from)) unsure.push(`${root.name}/${crel}`);
            // A chmod is not a new directory: what is below it is compared one by one.
            stack.push({ rel: crel, whole: changed && (was === undefined || !sameDir(was, sig)) });
          }
          // Yield now and then: a large tree must not hold the event loop for seconds.
          if (++n % R.yieldEveryObjects === 0) await new Promise((r) => setImmediate(r));
        }
      }
    }
    // Known last time and not there now: removed while no watcher ran (deepest first, so each once).
    for (const k of [...(before?.keys() ?? [])].sort().reverse()) {
      const i = k.indexOf('\0');
      const root = this.roots.find((r) => r.name === k.slice(0, i));
      const rel = k.slice(i + 1);
      if (root !== undefined && !this.excluded(rel) && signature(under(root.dir, rel)) === ABSENT && !this.goneAbove(before!, root.name, rel)) this.journal(root, rel, 'event');
    }
    this.save();
    this.schedulePass();
    return { unsure };
  }

  /**
   * Without a saved state, a directory whose entries changed after `from` and that was there
   * before it may have lost entries the standby still has: nothing says which. One made after
   * `from` cannot (its birth time says so, where the file system keeps one).
   */
  private removalsUnknown(st: fs.Stats | undefined, from: number): boolean {
    return st !== undefined && st.isDirectory() && st.ctimeMs >= from && !(st.birthtimeMs > 0 && st.birthtimeMs >= from);
  }

  /** Whether a directory above `rel` is also gone: its removal covers this one. */
  private goneAbove(before: Map<string, string>, rootName: string, rel: string): boolean {
    for (let q = parentOf(rel); q !== ''; q = parentOf(q)) if (before.has(key(rootName, q))) return true;
    return false;
  }

  /** Keeps what the journal has for the next run: one line per object, replaced whole. */
  save(): void {
    if (this.stateFile === undefined) return;
    try {
      // A cache: lost in a power loss, the next start does a full pass. An fsync after every settle would cost more than that.
      replaceFile(this.stateFile, this.stateLines(), { durable: false });
    } catch (err) {
      this.onError(err as Error);
    }
  }

  /** The known state as lines, a megabyte at a time: a tree of millions of objects is never one string. */
  private *stateLines(): Generator<string> {
    let buf = '';
    for (const [k, sig] of this.known) {
      buf += JSON.stringify([k, sig]) + '\n';
      if (buf.length > R.stateChunkChars) {
        yield buf;
        buf = '';
      }
    }
    yield buf;
  }

  private load(): Map<string, string> | undefined {
    if (this.stateFile === undefined) return undefined;
    let text: string;
    try {
      text = fs.readFileSync(this.stateFile, 'utf8');
    } catch {
      return undefined;
    }
    const out = new Map<string, string>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        const [k, sig] = JSON.parse(line) as [string, string];
        if (typeof k === 'string' && typeof sig === 'string') out.set(k, sig);
      } catch {
        // a torn last line: that object is journaled again, which is harmless
      }
    }
    return out;
  }

  /** An event at `abs`: its directory (and it, when it is one) are listed again once they settle. */
  touch(abs: string): void {
    const at = this.locate(abs);
    if (at === undefined) return;
    const due = Date.now() + this.pace.settleMs;
    if (at.rel !== '') this.markDirty(at.root, parentOf(at.rel), due);
    if (lstat(abs)?.isDirectory() === true || at.rel === '') this.markDirty(at.root, at.rel, due);
  }

  /** The agent journaled `rel` itself (UNDERSTUDY_WATCH=1): it is known as it is now. */
  journaledByAgent(rootName: string, rel: string): void {
    const root = this.roots.find((r) => r.name === rootName);
    if (root === undefined) return;
    const sig = signature(under(root.dir, rel));
    if (sig === ABSENT) this.forget(rootName, rel);
    else this.remember(rootName, rel, sig);
  }

  /**
   * The agent journaled an append of its own at offset `at` (UNDERSTUDY_WATCH=1): the standby
   * has the file as it is now only if it had it as it was just before, which the journal said
   * when the size it has for it is `at`. Otherwise another process changed it unjournaled (a
   * shell's `head -c … >` a moment before): known as it is now, that would never be journaled.
   * Left as the journal has it, the next listing journals the file whole.
   */
  appendedByAgent(rootName: string, rel: string, at: number): void {
    const root = this.roots.find((r) => r.name === rootName);
    if (root === undefined) return;
    const was = this.known.get(key(rootName, rel));
    const now = signature(under(root.dir, rel));
    const field = (sig: string, i: number): string => sig.split(':')[i] ?? '';
    if (was !== undefined && was.startsWith('file:') && now.startsWith('file:') && field(was, 1) === String(at) && field(was, 5) === field(now, 5)) {
      this.remember(rootName, rel, now);
      return;
    }
    // Known as nothing it can be: found there, it is journaled whole; found gone, removed (the standby has at least the append).
    this.remember(rootName, rel, `${UNSURE}${now}`);
    this.markDirty(root, parentOf(rel), Date.now() + this.pace.settleMs);
  }

  /**
   * The agent journaled a rename of `from` to `to` itself (UNDERSTUDY_WATCH=1). The standby
   * moves what it has at `from`, so what the journal has of it moves too: a directory another
   * process put at `from` meanwhile, unjournaled, is then found replaced at `to`, and what the
   * standby's copy holds that the primary's does not is journaled removed. Known as it is now
   * instead, it would stay on the standby for ever.
   */
  movedByAgent(fromRoot: string, from: string, toRoot: string, to: string): void {
    const root = this.roots.find((r) => r.name === toRoot);
    const was = this.known.get(key(fromRoot, from));
    // What the agent journaled below it counts too, even where the directory itself was never journaled (made by another process, filled by the agent).
    const below = this.subtree(fromRoot, from);
    // Nothing is at `from` on the standby now, whatever another process put there since.
    this.forget(fromRoot, from);
    if (root === undefined) return;
    const now = signature(under(root.dir, to));
    // What was at `to` is replaced (a rename over an empty directory, or over a file).
    this.forget(toRoot, to);
    if (now === ABSENT) return;
    if (!now.startsWith('dir:')) return this.remember(toRoot, to, now);
    // A directory the journal never had stays unknown: its parent's next listing journals it, and what the standby has below it that the primary does not.
    if (was?.startsWith('dir:') === true) this.remember(toRoot, to, was);
    for (const [sub, sig] of below) this.remember(toRoot, `${to}/${sub}`, sig);
    if (was !== now) this.markDirty(root, parentOf(to), Date.now() + this.pace.settleMs);
  }

  /** What is known below directory `rel`, as paths relative to it, parents first. */
  private subtree(rootName: string, rel: string): [string, string][] {
    const out: [string, string][] = [];
    const walk = (dir: string, prefix: string): void => {
      for (const name of this.children.get(key(rootName, dir)) ?? []) {
        const sig = this.known.get(key(rootName, join(dir, name)));
        // A name without a signature is a directory never journaled itself, with what the agent wrote into it below.
        if (sig !== undefined) out.push([prefix + name, sig]);
        if (sig === undefined || sig.startsWith('dir:')) walk(join(dir, name), `${prefix}${name}/`);
      }
    };
    walk(rel, '');
    return out;
  }

  /** The kernel would not watch `abs` (inotify limits): it is listed again every pollMs instead. */
  poll(abs: string): void {
    const at = this.locate(abs);
    if (at === undefined) return;
    this.polled.set(key(at.root.name, at.rel), at);
    this.pollTimer ??= setInterval(() => {
      for (const p of this.polled.values()) this.guard(() => this.reconcileDir(p.root, p.rel, 'poll'));
    }, this.pace.pollMs).unref();
  }

  /** How many directories are polled instead of watched. */
  get polledCount(): number {
    return this.polled.size;
  }

  close(): void {
    if (!this.closed) this.save();
    this.closed = true;
    for (const t of [this.timer, this.passTimer]) if (t !== undefined) clearTimeout(t);
    if (this.pollTimer !== undefined) clearInterval(this.pollTimer);
  }

  /** Lists every dirty directory now, whether or not it settled: for an orderly stop. */
  flush(): void {
    for (const [k, d] of this.dirty) {
      this.dirty.delete(k);
      this.guard(() => this.reconcileDir(d.root, d.rel, 'event'));
    }
  }

  private markDirty(root: Root, rel: string, due: number): void {
    const k = key(root.name, rel);
    // A directory that keeps changing is still listed when first due, not put off for ever.
    const was = this.dirty.get(k);
    if (was === undefined || due < was.due) this.dirty.set(k, { root, rel, due });
    this.timer ??= setTimeout(() => this.runDirty(), this.pace.settleMs).unref();
  }

  /**
   * A directory that just appeared is listed again twice: until chokidar watches it (which it
   * begins only once it has seen it, later under load), what changes in it raises no event.
   */
  private lookAgain(root: Root, rel: string): void {
    for (const after of R.secondLooksMs) {
      setTimeout(() => {
        if (!this.closed) this.markDirty(root, rel, Date.now());
      }, Math.max(after, this.pace.settleMs)).unref();
    }
  }

  private runDirty(): void {
    this.timer = undefined;
    if (this.closed) return;
    const now = Date.now();
    let next = Infinity;
    for (const [k, d] of this.dirty) {
      if (d.due > now) {
        next = Math.min(next, d.due);
        continue;
      }
      this.dirty.delete(k);
      this.guard(() => this.reconcileDir(d.root, d.rel, 'event'));
    }
    if (this.dirty.size > 0) {
      for (const d of this.dirty.values()) next = Math.min(next, d.due);
      this.timer = setTimeout(() => this.runDirty(), Math.max(R.minRecheckMs, next - Date.now())).unref();
    }
  }

  /**
   * Lists directory `rel` and journals what differs from what the journal has: new or changed
   * objects (a new directory with everything in it), and removed ones. Returns how many.
   */
  private reconcileDir(root: Root, rel: string, why: Why, fromParent = false): string[] {
    // A directory the journal does not have as it is now (made again since, or never seen) is
    // journaled by its parent's listing first: its entries must not land under a name whose
    // own making, or later removal, the journal would then miss.
    if (rel !== '' && !fromParent && this.known.get(key(root.name, rel)) !== signature(under(root.dir, rel))) {
      const out = this.reconcileDir(root, parentOf(rel), why);
      // Known now (the parent journaled it): what brought us here is in it, whatever the parent did.
      if (this.known.get(key(root.name, rel))?.startsWith('dir:') === true) out.push(...this.reconcileDir(root, rel, why, true));
      return out;
    }
    const mended: string[] = [];
    const listed = this.list(root, rel);
    const names = listed?.names;
    if (names === undefined) {
      // Gone: its parent's listing journals the removal.
      if (rel !== '' && this.known.has(key(root.name, rel))) this.markDirty(root, parentOf(rel), Date.now());
      return mended;
    }
    const seen = new Set<string>();
    const now = Date.now();
    for (const name of names) {
      const crel = join(rel, name);
      if (this.excluded(crel)) continue;
      seen.add(name);
      const abs = under(root.dir, crel);
      const st = lstat(abs);
      if (st === undefined) continue;
      const sig = sigOf(abs, st);
      const prev = this.known.get(key(root.name, crel));
      if (sig === prev) continue;
      // Still being written: look again once it held still, rather than journal it torn.
      if (st.isFile() && now - st.mtimeMs < this.pace.settleMs && why !== 'poll') {
        this.markDirty(root, rel, st.mtimeMs + this.pace.settleMs);
        continue;
      }
      if (!this.stillListed(root, rel, listed!.ino)) return mended;
      this.journal(root, crel, why);
      mended.push(`${root.name}/${crel}`);
      // A directory that appeared (or replaced another) may have been filled before anyone looked.
      if (st.isDirectory() && (prev === undefined || !sameDir(prev, sig))) {
        mended.push(...this.reconcileDir(root, crel, why, true));
        this.lookAgain(root, crel);
      }
    }
    const dk = key(root.name, rel);
    for (const name of [...(this.children.get(dk) ?? [])]) {
      if (seen.has(name)) continue;
      const crel = join(rel, name);
      if (!this.stillListed(root, rel, listed!.ino)) return mended;
      this.journal(root, crel, why);
      mended.push(`${root.name}/${crel}`);
      // A directory made again at the name since the listing: all it holds is new to the journal.
      if (this.known.get(key(root.name, crel))?.startsWith('dir:') === true) {
        mended.push(...this.reconcileDir(root, crel, why, true));
        this.lookAgain(root, crel);
      }
    }
    return mended;
  }

  /** Journals the object as it is now (its removal when nothing is there) and remembers it so. */
  private journal(root: Root, rel: string, why: Why): void {
    const abs = under(root.dir, rel);
    // The signature is taken before the read: a change after it is then seen as a difference next time, never hidden.
    const sig = signature(abs);
    const prev = this.known.get(key(root.name, rel));
    if (prev?.startsWith('dir:') === true && (sig === ABSENT || !sameDir(prev, sig))) {
      // The directory the journal has is gone (removed, or replaced by another): its removal goes
      // first and on its own. A mkdir on the standby keeps what the old one held, so a directory
      // made again at its name, even between this look and the read, must never be journaled over it.
      this.snap.removed(root.name, rel);
      this.forget(root.name, rel);
      this.journaledCount++;
      this.told(root.name, rel, 'removed', why);
      // Made again since the look: it is new to the journal, and the next listing of its parent journals it whole.
      if (sig === ABSENT) {
        if (lstat(abs) !== undefined) this.markDirty(root, parentOf(rel), Date.now());
        return;
      }
    }
    const s = this.snap.snapshot(root.name, rel, abs, true);
    if (s.kind === 'locked') return this.lockedNow(root, rel);
    this.lockedLooks.delete(key(root.name, rel));
    this.journaledCount++;
    if (s.kind === 'removed' || s.kind === 'absent' || sig === ABSENT) this.forget(root.name, rel);
    // A directory's signature has no time that moves (its entries would move it): known by the mode
    // the journal gave it, a chmod between the look and the read and back again is still a difference.
    else if (s.kind === 'dir') this.remember(root.name, rel, `dir:${s.mode}:${s.ino}`);
    else if (s.kind === 'symlink') this.remember(root.name, rel, `link:${s.target}`);
    else this.remember(root.name, rel, sig);
    if (s.kind !== 'absent') this.told(root.name, rel, s.kind, why);
  }

  /**
   * Left unread: what the journal had of it stays, so it differs at every look until it is read.
   * A lock held for a transaction goes soon, so its directory is looked at again a few times; one
   * held for good (a store's lock file) is left to the full passes.
   */
  private lockedNow(root: Root, rel: string): void {
    const k = key(root.name, rel);
    const looks = this.lockedLooks.get(k) ?? 0;
    this.lockedLooks.set(k, looks + 1);
    if (looks === 0) this.onLocked(root.name, rel);
    if (looks < R.lockedQuickLooks) this.markDirty(root, parentOf(rel), Date.now() + this.pace.settleMs);
  }

  /** How many files are left unread now because this process holds a lock on them. */
  get lockedCount(): number {
    return this.lockedLooks.size;
  }

  private told(rootName: string, rel: string, kind: string, why: Why): void {
    this.onJournaled(rootName, rel, why === 'event' ? kind : `${kind} (${why === 'pass' ? 'mended by a full pass' : 'polled'})`);
  }

  /**
   * Remembers `rel` as `sig`, and its name in its parent's, and so on up: a directory never
   * journaled itself (another process made it, the agent wrote into it, and the standby made it
   * for that) is then a name its parent's listing finds removed, or new and journals whole.
   */
  private remember(rootName: string, rel: string, sig: string): void {
    this.known.set(key(rootName, rel), sig);
    for (let q = rel; q !== ''; q = parentOf(q)) {
      const pk = key(rootName, parentOf(q));
      let set = this.children.get(pk);
      if (set === undefined) this.children.set(pk, (set = new Set()));
      if (set.has(basename(q)) && q !== rel) return;
      set.add(basename(q));
    }
  }

  /** Forgets `rel` and everything known below it. */
  private forget(rootName: string, rel: string): void {
    const k = key(rootName, rel);
    this.known.delete(k);
    this.children.get(key(rootName, parentOf(rel)))?.delete(basename(rel));
    const below = this.children.get(k);
    this.children.delete(k);
    for (const name of below ?? []) this.forget(rootName, join(rel, name));
  }

  private schedulePass(): void {
    if (this.closed) return;
    this.passTimer = setTimeout(() => void this.fullPass().then(() => this.schedulePass()), this.pace.fullPassEveryMs).unref();
  }

  /** Every directory of every root, at most objectsPerSecond objects a second. */
  private async fullPass(): Promise<void> {
    const startedAt = Date.now();
    const mended: string[] = [];
    let objects = 0;
    const slice = Math.max(1, Math.floor((this.pace.objectsPerSecond * R.passPauseMs) / 1000));
    for (const root of this.roots) {
      const stack = [''];
      while (stack.length > 0 && !this.closed) {
        const rel = stack.pop()!;
        this.guard(() => mended.push(...this.reconcileDir(root, rel, 'pass')));
        const names = this.children.get(key(root.name, rel)) ?? new Set<string>();
        for (const name of names) {
          const crel = join(rel, name);
          if (this.known.get(key(root.name, crel))?.startsWith('dir:') === true) stack.push(crel);
        }
        const was = objects;
        objects += names.size + 1;
        if (Math.floor(objects / slice) > Math.floor(was / slice)) await sleep(R.passPauseMs);
      }
    }
    if (this.closed) return;
    this.lastPass = { startedAt, finishedAt: Date.now(), objects, mended: mended.length, examples: mended.slice(0, R.passExamples) };
    this.mendedTotal += mended.length;
    this.save();
  }

  /**
   * The names in directory `rel` and its inode; undefined when it is not a directory, never
   * through a link: a directory replaced by a link to another (ln -sfn, or `..`) between a look
   * and this listing would have the journal say that directory's objects are below the link,
   * which the standby refuses to write through (and stops). A root itself may be a link.
   */
  private list(root: Root, rel: string): { names: string[]; ino: number } | undefined {
    const abs = rel === '' ? root.dir : under(root.dir, rel);
    const st = rel === '' ? undefined : lstat(abs);
    if (rel !== '' && st?.isDirectory() !== true) return undefined;
    try {
      const names = fs.readdirSync(abs);
      if (st !== undefined && !this.stillListed(root, rel, st.ino)) return undefined;
      return { names, ino: st?.ino ?? 0 };
    } catch {
      return undefined;
    }
  }

  /**
   * Whether directory `rel` is still the one listed (inode `ino`), looked at before each object
   * below it is journaled: once a link took its name, the objects' paths lead elsewhere. If not,
   * its parent is listed again, which journals what took its name.
   */
  private stillListed(root: Root, rel: string, ino: number): boolean {
    if (rel === '') return true;
    const st = lstat(under(root.dir, rel));
    if (st?.isDirectory() === true && st.ino === ino) return true;
    this.markDirty(root, parentOf(rel), Date.now());
    return false;
  }

  private guard(fn: () => unknown): void {
    try {
      fn();
    } catch (err) {
      this.onError(err as Error);
    }
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

const ABSENT = 'absent';
/** Before a signature the journal may not match: never equal to what is found. */
const UNSURE = 'unsure:';
const R = DEFAULTS.reconcile;

/** What an object is now, as far as journaling cares: type, size, times, mode, link target; a directory's inode tells one replaced. */
export function signature(abs: string): string {
  const st = lstat(abs);
  return st === undefined ? ABSENT : sigOf(abs, st);
}

function sigOf(abs: string, st: fs.Stats): string {
  if (st.isSymbolicLink()) {
    try {
      return `link:${fs.readlinkSync(abs)}`;
    } catch {
      return ABSENT;
    }
  }
  if (st.isDirectory()) return `dir:${st.mode & 0o7777}:${st.ino}`;
  return `${st.isFile() ? 'file' : 'other'}:${st.size}:${st.mtimeMs}:${st.ctimeMs}:${st.mode & 0o7777}:${st.ino}`;
}

/** Two signatures of the same directory (a chmod is not a new directory). */
function sameDir(a: string, b: string): boolean {
  return a.startsWith('dir:') && b.startsWith('dir:') && a.slice(a.lastIndexOf(':')) === b.slice(b.lastIndexOf(':'));
}

function lstat(abs: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(abs);
  } catch {
    return undefined;
  }
}

const key = (root: string, rel: string): string => `${root}\0${rel}`;
const join = (rel: string, name: string): string => (rel === '' ? name : `${rel}/${name}`);
const parentOf = (rel: string): string => (rel.includes('/') ? rel.slice(0, rel.lastIndexOf('/')) : '');
const basename = (rel: string): string => rel.slice(rel.lastIndexOf('/') + 1);
const under = (dir: string, rel: string): string => (rel === '' ? dir : path.join(dir, ...rel.split('/')));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
