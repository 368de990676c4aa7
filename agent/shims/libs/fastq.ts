import { objectJournal } from '../../objects';
import { gatedCall } from './after';
import { warnOnce } from '../../log';
import { copyOwnProperties, patch } from '../wrap';
import { creationSite, queueName, tagQueue } from '../queue-name';
import type { Fn, LibraryShim } from './types';

type Done = (this: unknown, err: unknown, result?: unknown) => void;

/**
 * fastq: `push`/`unshift` journal the job as enqueued (before the real call, because a
 * free worker runs it, and may finish it, inside push), and its `done` callback
 * journals it completed or failed. The promise API gets the same through its promise.
 * fastq.promise builds its queue on fastq's inner factory, so the two never overlap.
 */
export const fastqShim: LibraryShim = {
  module: 'fastq',
  patch(exports) {
    if (typeof exports !== 'function') return exports;
    const factory = exports as Fn & { promise?: Fn };
    const wrapped = wrapFactory(factory, patchCallbackQueue);
    if (typeof factory.promise === 'function') (wrapped as Fn & { promise?: Fn }).promise = wrapFactory(factory.promise, patchPromiseQueue);
    return wrapped;
  },
};

function wrapFactory(orig: Fn, patchQueue: (q: object) => void): Fn {
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    const q = orig.apply(this, args);
    if (typeof q === 'object' && q !== null) {
      try {
        tagQueue(q, creationSite());
        patchQueue(q);
      } catch (err) {
        warnOnce('fastq', `a fastq queue could not be wrapped; its jobs are not journaled: ${(err as Error).message}`);
      }
    }
    return q;
  };
  return copyOwnProperties(wrapper, orig);
}

/**
 * Jobs of one queue not finished yet, in the order they were enqueued: what `kill` and
 * `killAndDrain` throw away without calling anyone back is found among them.
 */
type Outstanding = Map<string, { value: unknown; queue: string }>;

/**
 * fastq's `kill`/`killAndDrain` drop the queued jobs silently; each is journaled as
 * failed, or the standby would keep it pending for ever. The dropped values are
 * `getQueue()` before the call; each is matched to the newest outstanding job with
 * that value (running jobs are older, except an unshifted one: equal values are
 * equal payloads, so a mismatch can only swap two identical jobs).
 */
function patchKill(q: object, outstanding: Outstanding): void {
  for (const method of ['kill', 'killAndDrain']) {
    patch(q, method, (orig) => gatedCall(function (this: unknown, ...args: unknown[]) {
      const oj = objectJournal();
      const getQueue = (q as { getQueue?: () => unknown[] }).getQueue;
      const dropped = oj === undefined || typeof getQueue !== 'function' ? [] : getQueue.call(q);
      const result = orig.apply(this, args);
      if (oj !== undefined) {
        const ids = [...outstanding.keys()].reverse();
        // Both lists newest first: a linear walk, but for the few running jobs it steps over.
        let from = 0;
        for (const value of [...dropped].reverse()) {
          let i = from;
          while (i < ids.length && !(outstanding.has(ids[i]) && Object.is(outstanding.get(ids[i])?.value, value))) i++;
          const job = i < ids.length ? outstanding.get(ids[i]) : undefined;
          if (job === undefined) continue;
          outstanding.delete(ids[i]);
          if (i === from) from++;
          // Under the name it was enqueued with, as its other entries.
          oj.job(job.queue, ids[i], 'failed');
        }
      }
      return result;
    }));
  }
}

function patchCallbackQueue(q: object): void {
  const outstanding: Outstanding = new Map();
  patchKill(q, outstanding);
  for (const [method, front] of [['push', false], ['unshift', true]] as const) {
    patch(q, method, (orig) => gatedCall(function (this: unknown, ...args: unknown[]) {
      const oj = objectJournal();
      const done = args[1];
      // A done that is neither absent nor a function is fastq's to complain about, as without us.
      if (oj === undefined || (done !== undefined && done !== null && typeof done !== 'function')) return orig.apply(this, args);
      const name = queueName(q);
      const id = oj.newJobId();
      oj.enqueued(name, id, args[0], { front });
      outstanding.set(id, { value: args[0], queue: name });
      const wrappedDone: Done = function (this: unknown, err, result) {
        // A job dropped by kill() was journaled failed then; it never calls back, but be sure.
        if (outstanding.delete(id)) oj.job(name, id, err ? 'failed' : 'completed');
        if (typeof done === 'function') return (done as Done).call(this, err, result);
        return undefined;
      };
      try {
        return orig.call(this, args[0], wrappedDone, ...args.slice(2));
      } catch (err) {
        outstanding.delete(id);
        oj.job(name, id, 'failed');
        throw err;
      }
    }));
  }
}

function patchPromiseQueue(q: object): void {
  const outstanding: Outstanding = new Map();
  patchKill(q, outstanding);
  for (const [method, front] of [['push', false], ['unshift', true]] as const) {
    patch(q, method, (orig) => gatedCall(function (this: unknown, ...args: unknown[]) {
      const oj = objectJournal();
      if (oj === undefined) return orig.apply(this, args);
      const name = queueName(q);
      const id = oj.newJobId();
      oj.enqueued(name, id, args[0], { front });
      outstanding.set(id, { value: args[0], queue: name });
      let p: unknown;
      try {
        p = orig.apply(this, args);
      } catch (err) {
        outstanding.delete(id);
        oj.job(name, id, 'failed');
        throw err;
      }
      const end = (ev: 'completed' | 'failed') => (): void => {
        if (outstanding.delete(id)) oj.job(name, id, ev);
      };
      // Our branch of the promise handles its own rejection; the caller's promise is returned untouched.
      if (p instanceof Promise) p.then(end('completed'), end('failed'));
      return p;
    }));
  }
}
