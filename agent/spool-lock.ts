/**
 * The lock that makes a journal one live writer's: a file created with `wx` in the journal's
 * spool directory, naming its holder. A lock whose holder is gone is taken over, so the
 * next process (or thread) that takes the journal ships what the dead one left spooled.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { threadId } from 'node:worker_threads';
import { processRuns as alive, processStart as startTicks } from '../lib/process-alive';
import { DEFAULTS } from '../lib/settings';

/** Who holds a lock, as written in it: `pid@host start=<ticks> thread=<id>`. */
interface Holder { pid: number; host: string; start?: string; thread?: number }

const { unreadableGraceMs: UNREADABLE_GRACE_MS, takeoverWaitMs: TAKEOVER_WAIT_MS, takeoverPollMs: TAKEOVER_POLL_MS } = DEFAULTS.spoolLock;

/** What this process and thread write into the locks they take. */
export function ownerText(): string {
  const start = startTicks(process.pid);
  return `${process.pid}@${os.hostname()}${start === undefined ? '' : ` start=${start}`} thread=${threadId}\n`;
}

/**
 * Takes the lock at `file`: true when taken, false when a live process (this one's other
 * threads included) holds it. A lock left by a dead process, or by an earlier process that
 * had the same pid (a container's pid 1 after a restart), is taken over.
 */
export function takeLock(file: string, onTakeover?: (previous: string) => void): boolean {
  for (let attempt = 0; attempt < 3; attempt++) {
    if (createExclusive(file)) return true;
    if (!lockIsStale(file)) return false;
    // Several processes may find one stale lock at once (a cluster restarting after a crash):
    // only the one that creates the takeover mark removes it, or two could both end up holding it.
    const mark = `${file}.takeover`;
    if (!createExclusive(mark)) {
      if (!waitForTakeover(mark)) return false;
      continue;
    }
    try {
      if (lockIsStale(file)) {
        onTakeover?.(lockOwner(file));
        fs.rmSync(file, { force: true });
      }
      if (createExclusive(file)) return true;
    } finally {
      fs.rmSync(mark, { force: true });
    }
  }
  return false;
}

/**
 * Marks the lock at `file` as that of a process whose ending was flushed: it stays held until
 * the process is gone, and whoever takes it over then knows nothing was cut short.
 */
export function markEnded(file: string): void {
  fs.writeFileSync(file, `${ownerText().trim()} ended=${Date.now()}\n`, { mode: 0o600 });
}

/** Whether a lock's text says its holder's ending was flushed (see markEnded). */
export function endedCleanly(text: string): boolean {
  return /\bended=\d+/.test(text);
}

/** Who holds the lock at `file`, as its text says (for messages). */
export function lockOwner(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').trim() || '(unreadable)';
  } catch {
    return '(gone)';
  }
}

/** True when nothing holds the lock at `file` or its holder is gone: the journal is free to take. */
export function lockIsFree(file: string): boolean {
  return !fs.existsSync(file) || lockIsStale(file);
}

/**
 * Removes the lock at `file` when worker thread `tid` of this process holds it: that thread
 * has ended (terminate() runs none of its exit handlers), so its journal is free again.
 */
export function releaseLockOfThread(file: string, tid: number): boolean {
  let holder: Holder | undefined;
  try {
    holder = parseHolder(fs.readFileSync(file, 'utf8'));
  } catch {
    return false; // released by the thread itself
  }
  const start = startTicks(process.pid);
  if (holder === undefined || holder.pid !== process.pid || holder.host !== os.hostname() || holder.thread !== tid || holder.start !== start) return false;
  fs.rmSync(file, { force: true });
  return true;
}

function createExclusive(file: string): boolean {
  try {
    fs.writeFileSync(file, ownerText(), { flag: 'wx', mode: 0o600 });
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
}

function lockIsStale(file: string): boolean {
  let text: string;
  let age: number;
  try {
    text = fs.readFileSync(file, 'utf8');
    age = Date.now() - fs.statSync(file).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  const holder = parseHolder(text);
  // A crash between the lock's creation and its first write leaves it empty.
  if (holder === undefined) return age > UNREADABLE_GRACE_MS;
  // Another host's process cannot be checked from here (a spool on a shared disk): it is live.
  if (holder.host !== os.hostname()) return false;
  if (!alive(holder.pid)) return true;
  if (holder.start === undefined) {
    // Written by an agent that did not record start times: this process never did, so it was an earlier one.
    return holder.pid === process.pid;
  }
  return startTicks(holder.pid) !== holder.start;
}

function parseHolder(text: string): Holder | undefined {
  const m = /^(\d+)@(\S+)(?: start=(\d+))?(?: thread=(\d+))?/.exec(text.trim());
  if (m === null) return undefined;
  const pid = Number(m[1]);
  return Number.isSafeInteger(pid) && pid > 0 ? { pid, host: m[2], start: m[3], thread: m[4] === undefined ? undefined : Number(m[4]) } : undefined;
}

/** Blocks (bounded) until another taker's takeover mark is gone; false when it stays (then it was left by a crash). */
function waitForTakeover(mark: string): boolean {
  const deadline = Date.now() + TAKEOVER_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (fs.existsSync(mark)) {
    if (Date.now() > deadline) {
      try {
        if (Date.now() - fs.statSync(mark).mtimeMs > UNREADABLE_GRACE_MS) fs.rmSync(mark, { force: true });
      } catch {
        // gone meanwhile
      }
      return false;
    }
    Atomics.wait(pause, 0, 0, TAKEOVER_POLL_MS);
  }
  return true;
}
