/**
 * The worker threads' journals of one process, in one SharedArrayBuffer every thread of it
 * sees (environment data is cloned into each new thread, and a clone of a SharedArrayBuffer
 * is the same memory). Two things need it that no thread can do for itself:
 * - at the process's exit, the main thread waits (bounded) for the journals of threads that
 *   are still running — a logger's transport thread lives until the end and is stopped
 *   without an exit event, with its last lines not yet shipped;
 * - a thread stopped with terminate() (a pool shrinking) runs no exit handler either: its
 *   spawner sees the Worker's exit, frees its journal's lock so the next thread takes that
 *   journal (and ships what is left), and the names stay few.
 */
import * as path from 'node:path';
import { getEnvironmentData, setEnvironmentData, threadId } from 'node:worker_threads';
import * as fs from 'node:fs';
import { listSegments, spoolFiles } from '../lib/spool';
import { ACKED, APPENDED, HURRY, SLOTS, publishPosition, readPosition } from './shared-state';
import { releaseLockOfThread } from './spool-lock';
import { warnOnce } from './log';
import { DEFAULTS } from '../lib/settings';

const KEY = 'understudy.threads';
/** Environment data too: the spawning thread's journal, which its threads' journals are named under. */
const JOURNAL_OF_SPAWNER = 'understudy.journal';
const { entries: ENTRIES, nameBytes: NAME_BYTES, stallMs: STALL_MS, pollMs: POLL_MS } = DEFAULTS.threads;
/** Per entry: the owner's threadId + 1 (0: free), then the shipper's positions. */
const WIDTH = 1 + SLOTS;

/** The process's table of thread journals. */
export class ThreadJournals {
  private readonly cells: BigInt64Array;
  private readonly names: Uint8Array;

  private constructor(private readonly buffer: SharedArrayBuffer) {
    this.cells = new BigInt64Array(buffer, 0, ENTRIES * WIDTH);
    this.names = new Uint8Array(buffer, ENTRIES * WIDTH * 8, ENTRIES * NAME_BYTES);
  }

  /**
   * The table this thread's spawner made (or a new one, in the main thread), handed on with
   * `journal`, this thread's journal, to the threads this one starts.
   */
  static open(journal: string): ThreadJournals {
    const inherited = getEnvironmentData(KEY);
    const buffer = inherited instanceof SharedArrayBuffer ? inherited : new SharedArrayBuffer(ENTRIES * (WIDTH * 8 + NAME_BYTES));
    setEnvironmentData(KEY, buffer);
    setEnvironmentData(JOURNAL_OF_SPAWNER, journal);
    return new ThreadJournals(buffer);
  }

  /** This thread's entry for journal `name`: the shipper's positions, or undefined when the table is full. */
  claim(name: string): { shared: BigInt64Array; release(): void } | undefined {
    for (let i = 0; i < ENTRIES; i++) {
      if (Atomics.compareExchange(this.cells, i * WIDTH, 0n, BigInt(threadId + 1)) !== 0n) continue;
      const shared = new BigInt64Array(this.buffer, (i * WIDTH + 1) * 8, SLOTS);
      for (let s = 0; s < SLOTS; s++) Atomics.store(shared, s, 0n);
      const at = i * NAME_BYTES;
      this.names.fill(0, at, at + NAME_BYTES);
      this.names.set(Buffer.from(name, 'latin1').subarray(0, NAME_BYTES), at);
      return { shared, release: () => this.free(i) };
    }
    return undefined;
  }

  /**
   * The journal of thread `tid`, which has ended without closing it (terminate()), and whether
   * it left entries JetStream does not have; its entry is freed.
   */
  ended(tid: number): { name: string; behind: boolean } | undefined {
    for (let i = 0; i < ENTRIES; i++) {
      if (Atomics.load(this.cells, i * WIDTH) !== BigInt(tid + 1)) continue;
      const shared = new BigInt64Array(this.buffer, (i * WIDTH + 1) * 8, SLOTS);
      const found = { name: this.nameAt(i), behind: readPosition(shared, ACKED) < readPosition(shared, APPENDED) };
      this.free(i);
      return found;
    }
    return undefined;
  }

  /**
   * At the process's exit: asks every thread journal's shipper to ship what is spooled now
   * and waits until JetStream has it, or `timeoutMs` passes, or a shipper stops answering.
   * Returns the journals left with entries not in JetStream.
   */
  flushAll(timeoutMs: number): string[] {
    const deadline = Date.now() + timeoutMs;
    const behind: string[] = [];
    for (let i = 0; i < ENTRIES; i++) {
      if (Atomics.load(this.cells, i * WIDTH) === 0n) continue;
      const shared = new BigInt64Array(this.buffer, (i * WIDTH + 1) * 8, SLOTS);
      const appended = readPosition(shared, APPENDED);
      publishPosition(shared, HURRY, appended);
      let acked = readPosition(shared, ACKED);
      let movedAt = Date.now();
      while (acked < appended && Date.now() < deadline && Date.now() - movedAt < STALL_MS) {
        Atomics.wait(shared, ACKED, BigInt(acked), Math.min(POLL_MS, Math.max(1, deadline - Date.now())));
        const now = readPosition(shared, ACKED);
        if (now !== acked) movedAt = Date.now();
        acked = now;
      }
      if (acked < appended) behind.push(this.nameAt(i));
    }
    return behind;
  }

  private nameAt(i: number): string {
    const raw = this.names.subarray(i * NAME_BYTES, (i + 1) * NAME_BYTES);
    const end = raw.indexOf(0);
    return Buffer.from(raw.subarray(0, end < 0 ? NAME_BYTES : end)).toString('latin1');
  }

  private free(i: number): void {
    Atomics.store(this.cells, i * WIDTH, 0n);
  }
}

/** A worker thread's journals are slots under its spawner's journal; without an agent there, under the process's base. */
export function threadBase(processBase: string): string {
  const spawner = getEnvironmentData(JOURNAL_OF_SPAWNER);
  return typeof spawner === 'string' ? spawner : processBase;
}

/**
 * A worker thread stopped by terminate() runs no exit handler: its spawner frees its journal,
 * so the next thread takes that journal rather than a new one, and (in the main thread, with
 * `adopt`) ships at once what it left, in case no thread comes after it.
 */
export function followThreads(threads: ThreadJournals, spoolDir: string, adopt?: (name: string) => void): void {
  process.on('worker', (worker) => {
    const tid = worker.threadId;
    worker.once('exit', () => {
      const ended = threads.ended(tid);
      if (ended === undefined || !releaseLockOfThread(spoolFiles(path.join(spoolDir, ended.name)).lock, tid)) return;
      if (ended.behind) adopt?.(ended.name);
    });
  });
}

/** At the process's exit, after its own journal: worker threads still running are stopped with it, so their journals are flushed here. */
export function flushThreads(threads: ThreadJournals, timeoutMs: number): void {
  const behind = threads.flushAll(timeoutMs);
  if (behind.length > 0) {
    warnOnce('exit-threads', `journal${behind.length > 1 ? 's' : ''} ${behind.map((n) => `"${n}"`).join(', ')} of worker threads: entries not yet in JetStream at exit; they stay spooled and the next thread (or agent) that takes the journal ships them`);
  }
}

/** True when the spool under `dir` holds no entry at all (a thread journal that never journaled). */
export function spoolIsEmpty(dir: string): boolean {
  return listSegments(dir).every((s) => fs.statSync(s.file).size === 0);
}
