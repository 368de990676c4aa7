import { serialize } from 'node:v8';
import { OBJECT_ROOT, type JobEvent, type Op, type SqliteOp } from '../lib/entry';
import { checkConfigKey, checkObjectName } from '../lib/objects';
import { DEFAULTS } from '../lib/settings';
import type { Recorder } from './recorder';
import type { Located } from './locate';
import type { ReadTime } from './sink';
import { warnOnce } from './log';

/** The value of a configuration key was removed rather than set. */
export const DELETED: unique symbol = Symbol('understudy.deleted');

/**
 * Journals configuration and job changes into the same journal, and so the same
 * sequence, as file changes: the standby sees them in the order they happened.
 * Every method is called after the real call succeeded (enqueues: just before the
 * job can start, see the queue shims). In sync and strong modes it returns once the
 * entry is confirmed, as a wrapped fs call does; the only error it lets through is a
 * configuration change not confirmed in time under UNDERSTUDY_ON_TIMEOUT=fail.
 */
export class ObjectJournal {
  private jobs = 0;

  constructor(private readonly r: Recorder, private readonly epoch: number) {}

  /**
   * Runs an application's state-changing call (a config library's set, a queue's push) through
   * the freeze gate (agent/freeze): while a checkpoint holds the journal it waits, blocking the
   * thread, up to the freeze deadline. Nested gated calls pass at once.
   */
  gated<T>(fn: () => T): T {
    const gate = this.r.gate;
    gate.enterSync();
    try {
      return fn();
    } finally {
      gate.leaveSync();
    }
  }

  /** A new job id, unique within this journal across restarts (the epoch grows). */
  newJobId(): string {
    return `${this.epoch}.${++this.jobs}`;
  }

  /** Key `key` of configuration store `store` is now `value` (or was deleted). */
  config(store: string, key: readonly string[], value: unknown): void {
    const seq = this.guard(`config:${store}`, () => {
      checkObjectName(store, 'configuration store name');
      const k = checkConfigKey([...key]);
      if (value === DELETED) return this.record(store, { op: 'config', key: k, del: true });
      const json = JSON.stringify(value);
      // undefined (and functions) have no JSON form: for a replica, the key is gone.
      if (json === undefined) return this.record(store, { op: 'config', key: k, del: true });
      return this.record(store, { op: 'config', key: k }, Buffer.from(json, 'utf8'));
    });
    // The change is made and is the caller's: a timeout may fail the call, as it would a write.
    if (seq > 0) this.r.commit?.waitSync(seq, `the change of key "${key.join('.')}" of configuration store ${store}`);
  }

  /** A job was enqueued on `queue`: its payload is snapshotted now, so later changes to it do not leak in. */
  enqueued(queue: string, id: string, payload: unknown, opts: { front?: boolean; label?: string } = {}): void {
    const seq = this.guard(`job:${queue}`, () => {
      checkObjectName(queue, 'queue name');
      let data: Buffer | undefined;
      try {
        data = serialize(payload);
      } catch (err) {
        warnOnce(`uncloneable:${queue}`, `queue "${queue}": a job's payload cannot be structured-cloned (${(err as Error).message.slice(0, 120)}); it is journaled as "not captured" and the standby knows only that it was pending`);
      }
      const label = opts.label === undefined || opts.label === '' ? undefined : opts.label.slice(0, DEFAULTS.journal.jobLabelChars);
      return this.record(queue, { op: 'job', id, ev: 'enqueued', captured: data !== undefined, ...(opts.front === true ? { front: true as const } : {}), ...(label === undefined ? {} : { label }) }, data);
    });
    this.confirmJob(seq, `job ${id} enqueued on queue ${queue}`);
  }

  /** A job of `queue` started, completed or failed. */
  job(queue: string, id: string, ev: Exclude<JobEvent, 'enqueued'>): void {
    const seq = this.guard(`job:${queue}`, () => this.record(queue, { op: 'job', id, ev }));
    this.confirmJob(seq, `job ${id} ${ev} on queue ${queue}`);
  }

  /** Where absolute path `abs` is journaled (root, relative path), or undefined when outside the roots or excluded. */
  locate(abs: string): Located | undefined {
    return this.r.locator.locate(abs, true);
  }

  /**
   * Journals committed transactions of the SQLite database at `at` (agent/sqlite), in the same
   * sequence as every other change; returns the sequence number, or 0 when the spool dropped it.
   * In sync and strong modes it returns once confirmed, as a file write does.
   */
  database(at: Located, op: SqliteOp, data: Buffer, read: ReadTime | undefined, what: string): number {
    const before = this.r.lastSeq;
    const seq = this.gated(() => this.r.record({ root: at.root, path: at.rel, op, data, read }));
    if (seq === before) return 0;
    this.r.commit?.waitSync(seq, what);
    return seq;
  }

  /** A library wrote the file at `abs` from native code (better-sqlite3's backup): journal what is there now, as a copy is. */
  fileWritten(abs: string, what: string): void {
    const before = this.r.lastSeq;
    this.gated(() => {
      this.r.depth++;
      try {
        this.r.copied(abs);
      } finally {
        this.r.depth--;
      }
    });
    if (this.r.lastSeq !== before) this.r.commit?.waitSync(this.r.lastSeq, what);
  }

  /**
   * Waits for a job entry like any other, but never fails the queue's own call: an enqueue is
   * journaled before the real call (a free worker may run the job inside it), and a start or
   * an end happens inside the library, where an error would break the queue, not the caller.
   */
  private confirmJob(seq: number, what: string): void {
    if (seq === 0 || this.r.commit === undefined) return;
    try {
      this.r.commit.waitSync(seq, what);
    } catch (err) {
      warnOnce('objects:job-timeout', `${(err as Error).message}; the queue goes on (job entries never fail a queue's calls)`);
    }
  }

  /**
   * Journals one entry through the recorder (so a wrapper's wait sees it); returns its sequence
   * number. Gated too: a job's start or end is journaled from inside its library, past any call.
   */
  private record(name: string, op: Op, data?: Buffer): number {
    return this.gated(() => this.r.record({ root: OBJECT_ROOT, path: name, op, data }));
  }

  /** Runs `fn`; what it throws is said once, never thrown: the change itself was made. Returns its seq, or 0. */
  private guard(key: string, fn: () => number): number {
    try {
      return fn();
    } catch (err) {
      warnOnce(`objects:${key}:${(err as Error).message}`, `a change to ${key.replace(':', ' ')} was made but could not be journaled: ${(err as Error).message}`);
      return 0;
    }
  }
}

const KEY = Symbol.for('understudy.objects');
type Holder = { [KEY]?: ObjectJournal };

/** The object journal of the running agent; undefined when none runs (the wrappers then only pass through). */
export function objectJournal(): ObjectJournal | undefined {
  return (globalThis as Holder)[KEY];
}

/** Makes `j` the journal the config and queue wrappers use. */
export function setObjectJournal(j: ObjectJournal | undefined): void {
  (globalThis as Holder)[KEY] = j;
}
