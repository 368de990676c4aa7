import { objectJournal } from '../../objects';
import { gatedCall } from './after';
import { patch } from '../wrap';
import { queueName } from '../queue-name';
import { constructorTagging } from './construct';
import type { Fn, LibraryShim } from './types';

/**
 * p-queue (ESM-only, so only under `--import understudy/agent`): `add` journals the
 * task as enqueued before the real call, started when p-queue runs it, and completed
 * or failed when its promise settles. `addAll` goes through `add`, so it is covered
 * once. A p-queue task is a function: code has no structured clone, so its payload is
 * "not captured" (said once per queue) and the function's name is kept as its label.
 * `clear` throws away the tasks not started, whose promises then never settle: each is
 * journaled failed, or the standby would keep it pending for ever.
 */
export const pQueueShim: LibraryShim = {
  module: 'p-queue',
  esmOnly: true,
  patch(exports) {
    if (typeof exports !== 'function') return exports;
    patch((exports as { prototype: object }).prototype, 'add', (orig) => gatedCall(wrapAdd(orig)));
    patch((exports as { prototype: object }).prototype, 'clear', (orig) => gatedCall(wrapClear(orig)));
    return constructorTagging(exports as Fn);
  },
};

/** Per queue: jobs enqueued and not started yet (id → the name they were journaled under). */
const waiting = new WeakMap<object, Map<string, string>>();

function wrapClear(orig: Fn): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const result = orig.apply(this, args);
    const oj = objectJournal();
    const jobs = typeof this === 'object' && this !== null ? waiting.get(this) : undefined;
    if (oj !== undefined && jobs !== undefined) {
      const dropped = [...jobs];
      jobs.clear();
      for (const [id, name] of dropped) oj.job(name, id, 'failed');
    }
    return result;
  };
}

function wrapAdd(orig: Fn): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const oj = objectJournal();
    const task = args[0];
    if (oj === undefined || typeof task !== 'function' || typeof this !== 'object' || this === null) return orig.apply(this, args);
    const name = queueName(this);
    const id = oj.newJobId();
    let jobs = waiting.get(this);
    if (jobs === undefined) waiting.set(this, (jobs = new Map()));
    const notStarted = jobs;
    oj.enqueued(name, id, task, { label: (task as Fn).name });
    notStarted.set(id, name);
    const started = function (this: unknown, ...a: unknown[]): unknown {
      notStarted.delete(id);
      oj.job(name, id, 'started');
      return (task as Fn).apply(this, a);
    };
    let p: unknown;
    try {
      p = orig.apply(this, [started, ...args.slice(1)]);
    } catch (err) {
      notStarted.delete(id);
      oj.job(name, id, 'failed');
      throw err;
    }
    // A task aborted before it started settles here too: a later clear() must not end it again.
    if (p instanceof Promise) p.then(() => oj.job(name, id, 'completed'), () => oj.job(name, id, 'failed')).finally(() => notStarted.delete(id));
    return p;
  };
}
