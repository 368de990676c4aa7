import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { SettingsError } from '../lib/errors';
import { processRuns, processStart as startTime } from '../lib/process-alive';
import { DEFAULTS } from '../lib/settings';

/** Who holds a state directory. */
interface Holder { pid: number; host: string; command: string; since: string; start?: string }

/** The lock of one state directory, held by this process until released. */
export interface StateLock {
  readonly file: string;
  release(): void;
}

/**
 * Takes the lock of `dir` for `command` (replay, promote): one process at a time applies to
 * a state directory and its roots, or two would interleave their positions and remove each
 * other's temporary files. A lock left by a process that is gone (same host, pid not running,
 * or running but started at another time: a reused pid) is taken over. Refuses with one line
 * naming the holder otherwise.
 */
export function lockState(dir: string, command: string): StateLock {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'lock');
  const me: Holder = { pid: process.pid, host: os.hostname(), command, since: new Date().toISOString(), start: startTime(process.pid) };
  const text = JSON.stringify(me) + '\n';
  for (let attempt = 0; attempt < DEFAULTS.standby.stateLockAttempts; attempt++) {
    try {
      fs.writeFileSync(file, text, { flag: 'wx', mode: 0o600 });
      return held(file, text);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readHolder(file);
    if (holder !== undefined && isLive(holder)) {
      throw new SettingsError(`--state ${dir} is in use by understudy ${holder.command} (pid ${holder.pid} on ${holder.host}, since ${holder.since}); one process per state directory: stop it, or give this one its own --state`);
    }
    // Taken over by moving it aside first: of two processes taking over the same stale lock,
    // only one moves the stale file; the other may move the winner's, sees it live, and puts it back.
    const aside = `${file}.${randomUUID()}`;
    try {
      fs.renameSync(file, aside);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const moved = readHolder(aside);
    if (moved !== undefined && isLive(moved)) {
      fs.renameSync(aside, file);
      continue;
    }
    fs.rmSync(aside, { force: true });
  }
  throw new SettingsError(`--state ${dir}: could not take its lock ${file}; another process keeps taking it`);
}

function held(file: string, text: string): StateLock {
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      // Only our own lock is removed: never one another process took over after us.
      try {
        if (fs.readFileSync(file, 'utf8') === text) fs.rmSync(file, { force: true });
      } catch {
        // gone already
      }
    },
  };
}

/** The holder recorded in a lock file; undefined when it cannot be read (a write cut short: stale). */
function readHolder(file: string): Holder | undefined {
  try {
    const h = JSON.parse(fs.readFileSync(file, 'utf8')) as Holder;
    return Number.isInteger(h.pid) && typeof h.host === 'string' ? h : undefined;
  } catch {
    return undefined;
  }
}

/** Whether the holder may still be running. On another host that cannot be told: it is taken as live. */
function isLive(h: Holder): boolean {
  if (h.host !== os.hostname()) return true;
  if (!processRuns(h.pid)) return false;
  const now = startTime(h.pid);
  return h.start === undefined || now === undefined || now === h.start;
}
