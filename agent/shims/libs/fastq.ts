import { objectJournal } from '../../objects';
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

function patchCallbackQueue(q: object): void {
  for (const [method, front] of [['push', false], ['unshift', true]] as const) {
    patch(q, method, (orig) => function (this: unknown, ...args: unknown[]) {
      const oj = objectJournal();
      const done = args[1];
      // A done that is neither absent nor a function is fastq's to complain about, as without us.
      if (oj === undefined || (done !== undefined && done !== null && typeof done !== 'function')) return orig.apply(this, args);
      const name = queueName(q);
      const id = oj.newJobId();
      oj.enqueued(name, id, args[0], { front });
      const wrappedDone: Done = function (this: unknown, err, result) {
        oj.job(name, id, err ? 'failed' : 'completed');
        if (typeof done === 'function') return (done as Done).call(this, err, result);
        return undefined;
      };
      try {
        return orig.call(this, args[0], wrappedDone, ...args.slice(2));
      } catch (err) {
        oj.job(name, id, 'failed');
        throw err;
      }
    });
  }
}

function patchPromiseQueue(q: object): void {
  for (const [method, front] of [['push', false], ['unshift', true]] as const) {
    patch(q, method, (orig) => function (this: unknown, ...args: unknown[]) {
      const oj = objectJournal();
      if (oj === undefined) return orig.apply(this, args);
      const name = queueName(q);
      const id = oj.newJobId();
      oj.enqueued(name, id, args[0], { front });
      let p: unknown;
      try {
        p = orig.apply(this, args);
      } catch (err) {
        oj.job(name, id, 'failed');
        throw err;
      }
      // Our branch of the promise handles its own rejection; the caller's promise is returned untouched.
      if (p instanceof Promise) p.then(() => oj.job(name, id, 'completed'), () => oj.job(name, id, 'failed'));
      return p;
    });
  }
}
