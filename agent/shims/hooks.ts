import { Hook as RequireHook } from 'require-in-the-middle';
import { warnOnce } from '../log';
import { LIBRARIES } from './libs';
import type { LibraryShim } from './libs/types';

/**
 * Hooks the configuration and queue libraries as they load. Under `--require` that
 * is require-in-the-middle (CommonJS `require`); `--import` adds import-in-the-middle
 * for `import` (see esm-hooks.ts). A module reached both ways is patched once: the
 * result for each original exports object is remembered.
 */
const done = new WeakMap<object, unknown>();
const results = new WeakSet<object>();
let requireHook: RequireHook | undefined;

/** Patches `exports` of `lib` once; a failure is said and the library runs unwrapped. */
export function patchOnce(lib: LibraryShim, exports: unknown): unknown {
  if ((typeof exports !== 'object' && typeof exports !== 'function') || exports === null) return exports;
  if (results.has(exports)) return exports;
  if (done.has(exports)) return done.get(exports);
  let out: unknown = exports;
  try {
    out = lib.patch(exports);
  } catch (err) {
    warnOnce(`lib:${lib.module}`, `${lib.module} could not be wrapped; its changes are not journaled: ${(err as Error).message}`);
  }
  done.set(exports, out);
  if ((typeof out === 'object' || typeof out === 'function') && out !== null) results.add(out);
  return out;
}

/** Starts wrapping the CommonJS libraries as they are required. */
export function installRequireHooks(): void {
  if (requireHook !== undefined) return;
  const byName = new Map(LIBRARIES.filter((l) => l.esmOnly !== true).map((l) => [l.module, l]));
  requireHook = new RequireHook([...byName.keys()], (exports, name) => {
    const lib = byName.get(name);
    return (lib === undefined ? exports : patchOnce(lib, exports)) as typeof exports;
  });
}
