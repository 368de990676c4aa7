import { DELETED, objectJournal } from '../../objects';
import { warnOnce } from '../../log';
import { patch } from '../wrap';
import { STORES, type Fn, type LibraryShim } from './types';

interface Conf { get(key: string): unknown; store: unknown }

/**
 * conf (ESM-only, so only under `--import understudy/agent`): `set` (a key or an
 * object of keys), `delete` and `clear` journal what they changed with the value conf
 * now holds. conf keys use `.` between levels. Its own file write goes through fs.
 */
export const confShim: LibraryShim = {
  module: 'conf',
  esmOnly: true,
  patch(exports) {
    const proto = (exports as { prototype?: object } | null)?.prototype;
    if (typeof exports !== 'function' || proto === undefined) return exports;
    patch(proto, 'set', (orig) => after(orig, (self, [key]) => {
      if (typeof key === 'string') journalKey(self, key);
      else if (typeof key === 'object' && key !== null) for (const k of Object.keys(key)) journalKey(self, k);
    }));
    patch(proto, 'delete', (orig) => after(orig, (_self, [key]) => {
      if (typeof key === 'string' && key !== '') objectJournal()?.config(STORES.conf, key.split('.'), DELETED);
    }));
    patch(proto, 'clear', (orig) => after(orig, (self) => objectJournal()?.config(STORES.conf, [], self.store)));
    return exports;
  },
};

function after(orig: Fn, journal: (self: Conf, args: unknown[]) => void): Fn {
  return function (this: unknown, ...args: unknown[]) {
    const result = orig.apply(this, args);
    if (objectJournal() !== undefined) {
      try {
        journal(this as Conf, args);
      } catch (err) {
        warnOnce(`conf:${(err as Error).message}`, `a conf change was made but could not be journaled: ${(err as Error).message}`);
      }
    }
    return result;
  };
}

function journalKey(self: Conf, key: string): void {
  if (key === '') return;
  const value = self.get(key);
  objectJournal()?.config(STORES.conf, key.split('.'), value === undefined ? DELETED : value);
}
