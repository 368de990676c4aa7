import { warnOnce } from '../../log';
import { creationSite, tagQueue } from '../queue-name';
import type { Fn } from './types';

/**
 * A class whose instances are queues: a Proxy that constructs exactly as the class
 * (subclasses, `instanceof` and statics included) and names each new queue after the
 * application line that created it.
 */
export function constructorTagging(cls: Fn): Fn {
  return new Proxy(cls, {
    construct(target, args, newTarget) {
      const q = Reflect.construct(target, args, newTarget) as object;
      try {
        tagQueue(q, creationSite());
      } catch (err) {
        warnOnce('queue-name', `a queue could not be named after where it was created: ${(err as Error).message}`);
      }
      return q;
    },
  });
}
