import * as fs from 'node:fs';
import type { Recipe, TargetOf, Wrapping } from './wrap';
import { dataBytes, flagOption, openFlags, readIsPositioned, truncateLength, vectorBytes, writeArgs } from './args';

const { O_APPEND, O_CREAT, O_TRUNC, O_WRONLY, O_RDWR } = fs.constants;

/**
 * What the agent wraps, as data. Each row names an fs function, the shapes it
 * comes in on Node 20 (`fs.nameSync`, callback `fs.name`, `fs.promises.name`),
 * and the recipe that journals a successful call. Recipes see the arguments
 * without the callback and the call's first result.
 */
export interface FsRow extends Wrapping {
  name: string;
  sync?: boolean;
  callback?: boolean;
  promise?: boolean;
  /** Runs before the call: for closes, whose descriptor number may be reused as soon as the call is made. */
  before?: Recipe;
  after?: Recipe;
  /**
   * The file whose content the call changes, for calls that derive what they journal from their
   * arguments (data, offsets, positions): two of them in flight on one file are journaled from the file.
   */
  target?: TargetOf;
}

const isFd = (v: unknown): v is number => typeof v === 'number';

/** The followed descriptor or FileHandle's file as a target. */
const fdTarget = (r: Parameters<TargetOf>[0], fd: unknown): ReturnType<TargetOf> => {
  const f = r.fds.get(fd);
  return f === undefined || f.detached ? undefined : { abs: f.at.abs, append: f.append };
};
const handleTarget: TargetOf = (r, _args, self) => {
  const f = typeof self === 'object' && self !== null ? r.fds.handle(self) : undefined;
  return f === undefined || f.detached ? undefined : { abs: f.at.abs, append: f.append };
};

/** writeFile / appendFile: a path (appending when its flag says so) or a descriptor. */
function wholeTarget(defaultFlag: string): TargetOf {
  return (r, [file, , options]) => {
    if (isFd(file)) return fdTarget(r, file);
    const at = r.locator.locate(file, true);
    return at === undefined ? undefined : { abs: at.abs, append: flagOption(options, defaultFlag).includes('a') };
  };
}

/** open: only one that can write; one that cannot truncate changes nothing before the end. */
const openTarget: TargetOf = (r, [p, flags]) => {
  const f = openFlags(flags);
  if ((f & (O_WRONLY | O_RDWR)) === 0 || (f & (O_TRUNC | O_CREAT)) === 0) return undefined;
  const at = r.locator.locate(p, true);
  return at === undefined ? undefined : { abs: at.abs, append: (f & O_TRUNC) === 0 || (f & O_APPEND) !== 0 };
};

/** writeFile / appendFile, on a path or a descriptor. */
function writeWhole(defaultFlag: string): Recipe {
  return (r, [file, data, options]) => {
    const bytes = dataBytes(data, options);
    if (isFd(file)) {
      const f = r.fds.get(file);
      if (bytes !== undefined) r.wrote(f, bytes, null, file);
      else r.rewrote(f);
      return;
    }
    const flag = flagOption(options, defaultFlag);
    if (bytes !== undefined && flag.includes('a')) r.append(file, bytes);
    else if (bytes !== undefined && !flag.includes('w')) r.overwrite(file, bytes); // 'r+': written from 0, not truncated
    else r.put(file, bytes);
  };
}

const write: Recipe = (r, [fd, buffer, a, b, c], written) => {
  const { data, position } = writeArgs(buffer, a, b, c);
  r.wrote(r.fds.get(fd), data.subarray(0, Number(written)), position, fd as number);
};

const writev: Recipe = (r, [fd, buffers, position], written) => {
  r.wrote(r.fds.get(fd), vectorBytes(buffers, Number(written)), typeof position === 'number' ? position : null, fd as number);
};

const read: Recipe = (r, args, bytesRead) => {
  const f = r.fds.get(args[0]);
  if (f !== undefined && !readIsPositioned(args, 4)) r.read(f, Number(bytesRead));
};

const readv: Recipe = (r, args, bytesRead) => {
  const f = r.fds.get(args[0]);
  if (f !== undefined && !readIsPositioned(args, 2)) r.read(f, Number(bytesRead));
};

const remove: Recipe = (r, [p]) => r.remove(p);

/** Node 20's fs, function by function. Unlisted changes (utimes, chown) are not replicated yet. */
export const FS_ROWS: readonly FsRow[] = [
  { name: 'writeFile', sync: true, callback: true, promise: true, target: wholeTarget('w'), after: writeWhole('w') },
  { name: 'appendFile', sync: true, callback: true, promise: true, target: wholeTarget('a'), after: writeWhole('a') },
  { name: 'write', sync: true, callback: true, target: (r, [fd]) => fdTarget(r, fd), after: write },
  { name: 'writev', sync: true, callback: true, target: (r, [fd]) => fdTarget(r, fd), after: writev },
  {
    name: 'truncate', sync: true, callback: true, promise: true,
    target: (r, [p]) => {
      if (isFd(p)) return fdTarget(r, p);
      const at = r.locator.locate(p, true);
      return at === undefined ? undefined : { abs: at.abs, append: false };
    },
    // truncate(fd) is deprecated (DEP0081) but still works on Node 20.
    after: (r, [p, len]) => (isFd(p) ? r.ftruncate(r.fds.get(p), truncateLength(len)) : r.truncate(p, truncateLength(len))),
  },
  { name: 'ftruncate', sync: true, callback: true, target: (r, [fd]) => { const t = fdTarget(r, fd); return t && { abs: t.abs, append: false }; }, after: (r, [fd, len]) => r.ftruncate(r.fds.get(fd), truncateLength(len)) },
  { name: 'rename', sync: true, callback: true, promise: true, after: (r, [from, to]) => r.rename(from, to) },
  { name: 'unlink', sync: true, callback: true, promise: true, after: (r, [p]) => r.remove(p, true) },
  { name: 'rmdir', sync: true, callback: true, promise: true, after: remove },
  // Recursive rm works through the public unlink/rmdir after our wrapper returned; the outer call is journaled once.
  { name: 'rm', sync: true, callback: true, promise: true, quietArg: 0, after: remove },
  {
    name: 'mkdir', sync: true, callback: true, promise: true,
    after: (r, [p, options], first) => r.mkdir(p, typeof options === 'object' && options !== null && (options as { recursive?: boolean }).recursive === true, first),
  },
  { name: 'mkdtemp', sync: true, callback: true, promise: true, after: (r, _args, made) => r.mkdir(made, false, made) },
  { name: 'copyFile', sync: true, callback: true, promise: true, after: (r, [, dest]) => r.copied(dest) },
  // cp is experimental on Node 20 and built from the other fs functions; the outer call journals the result.
  { name: 'cp', sync: true, callback: true, promise: true, quietArg: 1, after: (r, [, dest]) => r.copied(dest) },
  { name: 'symlink', sync: true, callback: true, promise: true, after: (r, [, p]) => r.symlink(p) },
  { name: 'link', sync: true, callback: true, promise: true, after: (r, [existing, p]) => r.link(existing, p) },
  { name: 'chmod', sync: true, callback: true, promise: true, after: (r, [p]) => r.chmod(p) },
  { name: 'fchmod', sync: true, callback: true, after: (r, [fd]) => r.fchmod(r.fds.get(fd)) },
  { name: 'open', sync: true, callback: true, target: openTarget, after: (r, [p, flags], fd) => r.opened(p, openFlags(flags), fd as number) },
  { name: 'close', sync: true, callback: true, before: (r, [fd]) => { if (isFd(fd)) r.fds.set(fd, undefined); } },
  { name: 'read', sync: true, callback: true, after: read },
  { name: 'readv', sync: true, callback: true, after: readv },
  // readFile(fd) moves the descriptor's position through Node's binding, out of our sight.
  { name: 'readFile', sync: true, callback: true, before: (r, [p]) => { if (isFd(p)) r.read(r.fds.get(p), null); } },
];

/** FileHandle methods (fs.promises.open's result); `self` is the handle. */
export const FILEHANDLE_ROWS: readonly FsRow[] = [
  {
    name: 'write', promise: true, target: handleTarget,
    after: (r, [buffer, a, b, c], res, self) => {
      const { data, position } = writeArgs(buffer, a, b, c);
      const n = (res as { bytesWritten: number }).bytesWritten;
      r.wrote(r.fds.handle(self as object), data.subarray(0, n), position, (self as { fd: number }).fd);
    },
  },
  {
    name: 'writev', promise: true, target: handleTarget,
    after: (r, [buffers, position], res, self) => {
      const n = (res as { bytesWritten: number }).bytesWritten;
      r.wrote(r.fds.handle(self as object), vectorBytes(buffers, n), typeof position === 'number' ? position : null, (self as { fd: number }).fd);
    },
  },
  // A handle's writeFile/appendFile write from its current position (Node docs, filehandle.writeFile).
  { name: 'writeFile', promise: true, target: handleTarget, after: handleWhole },
  { name: 'appendFile', promise: true, target: handleTarget, after: handleWhole },
  { name: 'truncate', promise: true, target: (r, a, self) => { const t = handleTarget(r, a, self); return t && { abs: t.abs, append: false }; }, after: (r, [len], _res, self) => r.ftruncate(r.fds.handle(self as object), truncateLength(len)) },
  { name: 'chmod', promise: true, after: (r, _args, _res, self) => r.fchmod(r.fds.handle(self as object)) },
  {
    name: 'read', promise: true,
    after: (r, args, res, self) => {
      const f = r.fds.handle(self as object);
      if (f !== undefined && !readIsPositioned(args, 3)) r.read(f, (res as { bytesRead: number }).bytesRead);
    },
  },
  {
    name: 'readv', promise: true,
    after: (r, args, res, self) => {
      const f = r.fds.handle(self as object);
      if (f !== undefined && !readIsPositioned(args, 1)) r.read(f, (res as { bytesRead: number }).bytesRead);
    },
  },
  { name: 'readFile', promise: true, before: (r, _args, _res, self) => r.read(r.fds.handle(self as object), null) },
  // close is not here: on Node 20 it is a field of each handle, not on the prototype; FdTable listens for the handle's 'close'.
];

function handleWhole(...[r, [data, options], , self]: Parameters<Recipe>): void {
  const f = r.fds.handle(self as object);
  const bytes = dataBytes(data, options);
  if (bytes !== undefined) r.wrote(f, bytes, null, (self as { fd: number }).fd);
  else r.rewrote(f);
}

/** fs.promises.open, wrapped apart (its result patches FileHandle): its target, as for fs.open. */
export const OPEN_ROW: Pick<FsRow, 'target'> = { target: openTarget };
