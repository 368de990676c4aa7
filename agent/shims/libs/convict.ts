import { DELETED, objectJournal } from '../../objects';
import { journalAfter } from './after';
import { copyOwnProperties, patch } from '../wrap';
import { STORES, type Fn, type LibraryShim } from './types';

interface Config { get(path: string): unknown; getProperties(): unknown }

/**
 * convict: its methods live on each config object, made by the `convict()` factory;
 * the factory is wrapped so every config it makes gets `set`, `load` and `loadFile` wrapped.
 * Each journals the keys it changed (a loaded object: every leaf) with the value the
 * config now resolves, after convict's own coercion and environment overrides.
 */
export const convictShim: LibraryShim = {
  module: 'convict',
  patch(exports) {
    if (typeof exports !== 'function') return exports;
    const orig = exports as Fn;
    const wrapper = function (this: unknown, ...args: unknown[]): unknown {
      const config = orig.apply(this, args);
      if (typeof config === 'object' && config !== null) {
        patch(config, 'set', (o) => journalAfter<Config>(o, 'a convict change', (self, [k]) => journalPath(self, k)));
        patch(config, 'load', (o) => journalAfter<Config>(o, 'a convict change', (self, [obj]) => {
          for (const p of leaves(obj, [])) journalPath(self, p.join('.'));
        }));
        // The files' keys are not known here: the whole store, as convict now resolves it.
        patch(config, 'loadFile', (o) => journalAfter<Config>(o, 'a convict change', (self) => objectJournal()?.config(STORES.convict, [], self.getProperties())));
      }
      return config;
    };
    return copyOwnProperties(wrapper, orig);
  },
};

function journalPath(self: Config, k: unknown): void {
  if (typeof k !== 'string' || k === '') return;
  let value: unknown;
  try {
    value = self.get(k);
  } catch {
    value = undefined; // convict refused the path (its own prototype guard): nothing was set
  }
  objectJournal()?.config(STORES.convict, k.split('.'), value === undefined ? DELETED : value);
}

/** Key paths of the leaves of a plain object (arrays are leaves). */
function leaves(v: unknown, at: string[]): string[][] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return at.length === 0 ? [] : [at];
  const out: string[][] = [];
  for (const k of Object.keys(v)) out.push(...leaves((v as Record<string, unknown>)[k], [...at, k]));
  return out;
}
