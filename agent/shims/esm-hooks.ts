import { register } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Hook as ImportHook } from 'import-in-the-middle';
import { warnOnce } from '../log';
import { LIBRARIES } from './libs';
import { patchOnce } from './hooks';

let importHook: ImportHook | undefined;

/**
 * `--import understudy/agent`: registers import-in-the-middle's loader for the wrapped
 * libraries only (every other module loads untouched), and patches each one as it is
 * imported. What a library exports is its namespace's `default` (module.exports for a
 * CommonJS package); when the patch replaces it, the namespace's bindings follow.
 */
export function installImportHooks(): void {
  if (importHook !== undefined) return;
  const names = LIBRARIES.map((l) => l.module);
  try {
    register('import-in-the-middle/hook.mjs', pathToFileURL(__filename), { data: { include: names } });
  } catch (err) {
    warnOnce('esm', `ESM imports of ${names.join(', ')} are not wrapped (the loader hook could not be registered: ${(err as Error).message})`);
    return;
  }
  const byName = new Map(LIBRARIES.map((l) => [l.module, l]));
  importHook = new ImportHook(names, (exported, name) => {
    const lib = byName.get(name);
    if (lib === undefined) return;
    const orig: unknown = exported.default;
    const out = patchOnce(lib, orig);
    if (out !== orig) {
      exported.default = out;
      // A CommonJS factory's statics are also named exports (fastq's `promise`).
      for (const key of Object.keys(exported)) {
        if (key !== 'default' && typeof out === 'function' && key in out) exported[key] = (out as unknown as Record<string, unknown>)[key];
      }
    }
  });
}
