import { serialize } from 'node:v8';
import { OBJECT_ROOT, type JobEvent } from '../lib/entry';
import { checkConfigKey, checkObjectName } from '../lib/objects';
import type { Recorder } from './recorder';
import { warnOnce } from './log';

/** The value of a configuration key was removed rather than set. */
export const DELETED: unique symbol = Symbol('understudy.deleted');

/**
 * Journals configuration and job changes into the same journal, and so the same
 * sequence, as file changes: the standby sees them in the order they happened.
 * Every method is called after the real call succeeded (enqueues: just before the
 * job can start, see the queue shims) and never throws into the application.
 */
export class ObjectJournal {
  private jobs = 0;

  constructor(private readonly r: Recorder, private readonly epoch: number) {}

  /** A new job id, unique within this journal across restarts (the epoch grows). */
  newJobId(): string {
    return `${this.epoch}.${++this.jobs}`;
  }

  /** Key `key` of configuration store `store` is now `value` (or was deleted). */
  config(store: string, key: readonly string[], value: unknown): void {
    this.guard(`config:${store}`, () => {
      checkObjectName(store, 'configuration store name');
      const k = checkConfigKey([...key]);
      if (value === DELETED) {
        this.record(store, { op: 'config', key: k, del: true });
        return;
      }
      const json = JSON.stringify(value);
      // undefined (and functions) have no JSON form: for a replica, the key is gone.
      if (json === undefined) this.record(store, { op: 'config', key: k, del: true });
      else this.record(store, { op: 'config', key: k }, Buffer.from(json, 'utf8'));
    });
  }

  /** A job was enqueued on `queue`: its payload is snapshotted now, so later changes to it do not leak in. */
  enqueued(queue: string, id: string, payload: unknown, opts: { front?: boolean; label?: string } = {}): void {
    this.guard(`job:${queue}`, () => {
      checkObjectName(queue, 'queue name');
      let data: Buffer | undefined;
      try {
        data = serialize(payload);
      } catch (err) {
        warnOnce(`uncloneable:${queue}`, `queue "${queue}": a job's payload cannot be structured-cloned (${(err as Error).message.slice(0, 120)}); it is journaled as "not captured" and the standby knows only that it was pending`);
      }
      const label = opts.label === undefined || opts.label === '' ? undefined : opts.label.slice(0, 128);
      this.record(queue, { op: 'job', id, ev: 'enqueued', captured: data !== undefined, ...(opts.front === true ? { front: true as const } : {}), ...(label === undefined ? {} : { label }) }, data);
    });
  }

  /** A job of `queue` started, completed or failed. */
  job(queue: string, id: string, ev: Exclude<JobEvent, 'enqueued'>): void {
    this.guard(`job:${queue}`, () => this.record(queue, { op: 'job', id, ev }));
  }

  private record(name: string, op: Parameters<Recorder['sink']['record']>[2], data?: Buffer): void {
    // The journal's own fs calls must not be journaled as the application's.
    this.r.depth++;
    try {
      this.r.lastSeq = this.r.sink.record(OBJECT_ROOT, name, op, data);
    } finally {
      this.r.depth--;
    }
  }

  private guard(key: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      warnOnce(`objects:${key}:${(err as Error).message}`, `a change to ${key.replace(':', ' ')} was made but could not be journaled: ${(err as Error).message}`);
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
