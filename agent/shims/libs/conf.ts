import { DELETED, objectJournal } from '../../objects';
import { journalAfter } from './after';
import { patch } from '../wrap';
import { STORES, type LibraryShim } from './types';

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
    patch(proto, 'set', (orig) => journalAfter<Conf>(orig, 'a conf change', (self, [key]) => {
      if (typeof key === 'string') journalKey(self, key);
      else if (typeof key === 'object' && key !== null) for (const k of Object.keys(key)) journalKey(self, k);
    }));
    patch(proto, 'delete', (orig) => journalAfter<Conf>(orig, 'a conf change', (_self, [key]) => {
      if (typeof key === 'string' && key !== '') objectJournal()?.config(STORES.conf, key.split('.'), DELETED);
    }));
    patch(proto, 'clear', (orig) => journalAfter<Conf>(orig, 'a conf change', (self) => objectJournal()?.config(STORES.conf, [], self.store)));
    return exports;
  },
};

function journalKey(self: Conf, key: string): void {
  if (key === '') return;
  const value = self.get(key);
  objectJournal()?.config(STORES.conf, key.split('.'), value === undefined ? DELETED : value);
}
