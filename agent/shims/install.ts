// The module object itself, not an import namespace copy: patches must land where every caller looks.
import fs = require('node:fs');
import { syncBuiltinESMExports } from 'node:module';
import type { Recorder } from '../recorder';
import { openFlags } from './args';
import { FILEHANDLE_ROWS, FS_ROWS, OPEN_ROW, type FsRow } from './fs-table';
import { callbackWrapper, patch, promiseWrapper, syncWrapper, unpatch } from './wrap';

type Fn = (this: unknown, ...args: unknown[]) => unknown;

/** Undo list of what install() patched. */
const patched: { target: object; name: string }[] = [];
let fileHandlePatched = false;

function apply(target: object, name: string, make: (orig: Fn) => Fn): void {
  if (patch(target, name, make)) patched.push({ target, name });
}

function applyRow(r: Recorder, row: FsRow): void {
  if (row.sync === true) apply(fs, `${row.name}Sync`, (o) => syncWrapper(r, o, row));
  if (row.callback === true) apply(fs, row.name, (o) => callbackWrapper(r, o, row));
  if (row.promise === true) apply(fs.promises, row.name, (o) => promiseWrapper(r, o, row));
}

/**
 * Wraps every state-changing fs function (callback, sync, fs.promises and,
 * from the first open, FileHandle), then re-syncs ESM named exports of
 * node:fs so `import { writeFileSync } from 'node:fs'` sees the wrappers too.
 */
export function install(r: Recorder): void {
  uninstall();
  for (const row of FS_ROWS) applyRow(r, row);
  // fs.promises.open yields FileHandles; their prototype is only reachable from one, so it is patched on first sight.
  apply(fs.promises, 'open', (orig) => promiseWrapper(r, orig, {
    target: OPEN_ROW.target,
    after: (rec, [p, flags], handle) => {
      const h = handle as { fd: number };
      if (!fileHandlePatched) patchFileHandle(r, Object.getPrototypeOf(h) as object);
      rec.opened(p, openFlags(flags), undefined, h);
    },
  }));
  syncBuiltinESMExports();
}

function patchFileHandle(r: Recorder, proto: object): void {
  fileHandlePatched = true;
  for (const row of FILEHANDLE_ROWS) apply(proto, row.name, (o) => promiseWrapper(r, o, row));
}

/** Restores every function install() wrapped. */
export function uninstall(): void {
  for (const { target, name } of patched.splice(0)) unpatch(target, name);
  fileHandlePatched = false;
  syncBuiltinESMExports();
}
