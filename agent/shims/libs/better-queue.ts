import type { EventEmitter } from 'node:events';
import { objectJournal } from '../../objects';
import { gatedCall } from './after';
import { patch } from '../wrap';
import { queueName } from '../queue-name';
import { constructorTagging } from './construct';
import type { Fn, LibraryShim } from './types';

type Ticket = EventEmitter & { isFailed?: boolean; isFinished?: boolean };

/**
 * better-queue: `push` journals the task as enqueued before the real call, and its
 * ticket's `started`, `finish` and `failed` events (after retries: better-queue fails a
 * ticket only when it gives up) journal the rest of its life. Our listeners go first,
 * so a caller's callback that changes state is journaled after the job's end.
 */
export const betterQueueShim: LibraryShim = {
  module: 'better-queue',
  patch(exports) {
    if (typeof exports !== 'function') return exports;
    patch((exports as { prototype: object }).prototype, 'push', (orig) => gatedCall(wrapPush(orig)));
    return constructorTagging(exports as Fn);
  },
};

function wrapPush(orig: Fn): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const oj = objectJournal();
    if (oj === undefined || typeof this !== 'object' || this === null) return orig.apply(this, args);
    const name = queueName(this);
    const id = oj.newJobId();
    oj.enqueued(name, id, args[0]);
    let ticket: unknown;
    try {
      ticket = orig.apply(this, args);
    } catch (err) {
      oj.job(name, id, 'failed');
      throw err;
    }
    const t = ticket as Ticket | undefined;
    if (t === undefined || typeof t.prependListener !== 'function') return ticket;
    // A filter that refuses the task fails the ticket inside push, before we could listen.
    if (t.isFailed === true) {
      oj.job(name, id, 'failed');
      return ticket;
    }
    let ended = false;
    const end = (ev: 'completed' | 'failed') => (): void => {
      if (ended) return;
      ended = true;
      oj.job(name, id, ev);
    };
    t.prependListener('started', () => {
      if (!ended) oj.job(name, id, 'started');
    });
    t.prependListener('finish', end('completed'));
    t.prependListener('failed', end('failed'));
    return ticket;
  };
}
