import { DELETED, objectJournal } from '../objects';
import { STORES } from './libs/types';

const INSTALLED = Symbol.for('understudy.envProxy');

/** A change to process.env waits at the freeze gate like any other state-changing call. */
function gated(fn: () => boolean): boolean {
  const oj = objectJournal();
  return oj === undefined ? fn() : oj.gated(fn);
}

/**
 * process.env has no functions to wrap: assignment and `delete` are its API. It is
 * replaced by a Proxy over the real object, whose traps do the real set or delete
 * first (the real object coerces values to strings) and journal the key after.
 * Reads, enumeration and child processes go to the real object unchanged.
 */
export function installEnv(): void {
  const current = process.env as NodeJS.ProcessEnv & { [INSTALLED]?: true };
  if (current[INSTALLED] === true) return;
  const real = current;
  const proxy = new Proxy(real, {
    set(target, key, value) {
      return gated(() => {
        const ok = Reflect.set(target, key, value);
        if (ok && typeof key === 'string') objectJournal()?.config(STORES.env, [key], target[key]);
        return ok;
      });
    },
    defineProperty(target, key, desc) {
      return gated(() => {
        const ok = Reflect.defineProperty(target, key, desc);
        if (ok && typeof key === 'string') objectJournal()?.config(STORES.env, [key], target[key]);
        return ok;
      });
    },
    deleteProperty(target, key) {
      return gated(() => {
        const had = typeof key === 'string' && Object.hasOwn(target, key);
        const ok = Reflect.deleteProperty(target, key);
        if (ok && had) objectJournal()?.config(STORES.env, [key as string], DELETED);
        return ok;
      });
    },
    get(target, key) {
      return key === INSTALLED ? true : Reflect.get(target, key);
    },
  });
  // process.env is a writable data property of process; the proxy takes its place.
  process.env = proxy;
}
