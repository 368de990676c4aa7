import { DELETED, objectJournal } from '../../objects';
import { warnOnce } from '../../log';
import { journalAfter } from './after';
import { patch } from '../wrap';
import { STORES, type LibraryShim } from './types';

interface Provider { get(key?: string): unknown }

/**
 * nconf: `set`, `clear`, `merge` and `reset` of every Provider (the nconf singleton is
 * one) journal the key they changed with the value nconf now resolves for it: that is
 * the configuration the application sees. nconf keys use `:` between levels.
 * `save` writes the stores' files through fs, which is journaled as files.
 */
export const nconfShim: LibraryShim = {
  module: 'nconf',
  patch(exports) {
    const proto = (exports as { Provider?: { prototype?: object } } | null)?.Provider?.prototype;
    if (proto === undefined) {
      warnOnce('nconf', 'nconf has no Provider prototype in this version; its changes are not journaled');
      return exports;
    }
    patch(proto, 'set', (orig) => journalAfter<Provider>(orig, 'an nconf change', (self, [key]) => journalKey(self, key)));
    patch(proto, 'clear', (orig) => journalAfter<Provider>(orig, 'an nconf change', (self, [key]) => journalKey(self, key)));
    patch(proto, 'merge', (orig) => journalAfter<Provider>(orig, 'an nconf change', (self, args) => {
      const plain = args.filter((a) => typeof a !== 'function');
      if (plain.length >= 2 && typeof plain[0] === 'string') return journalKey(self, plain[0]);
      const value = plain.at(-1);
      if (typeof value === 'object' && value !== null) for (const k of Object.keys(value)) journalKey(self, k);
    }));
    patch(proto, 'reset', (orig) => journalAfter<Provider>(orig, 'an nconf change', () => objectJournal()?.config(STORES.nconf, [], DELETED)));
    return exports;
  },
};

function journalKey(self: Provider, key: unknown): void {
  if (typeof key !== 'string' || key === '') return;
  const value = self.get(key);
  objectJournal()?.config(STORES.nconf, key.split(':'), value === undefined ? DELETED : value);
}
