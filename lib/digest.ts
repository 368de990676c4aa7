import * as fs from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { describe, walk, Yielder, type ObjectType, type TreeObject } from './walk';
import { DEFAULTS } from './settings';
import { databaseHash, isDatabaseFile, isSidecar, MIN_DATABASE_BYTES } from './sqlite-files';

/** Content hashes verify can use: xxh64 is fast; sha256 resists a forger. */
export const HASHES = ['xxh64', 'sha256'] as const;
export type HashName = (typeof HASHES)[number];

/** What verify compares of one object: type, permission bits, and content or link target. */
export interface Digest {
  /** Path relative to its root. */
  p: string;
  type: ObjectType;
  mode: number;
  size?: number;
  hash?: string;
  target?: string;
}

/** How two digests of the same path differ, in the order an operator cares about. */
export type DiffKind = 'missing' | 'extra' | 'type' | 'link' | 'content' | 'mode';

/** The part of xxhash-wasm used here; the package's types are ESM-only, its CommonJS build is the same API. */
interface Xxh64 { create64(): { update(b: Uint8Array): unknown; digest(): bigint } }
// eslint-disable-next-line @typescript-eslint/no-require-imports
const loadXxhash = require('xxhash-wasm') as () => Promise<Xxh64>;
let hasher: Xxh64 | undefined;

/** One read buffer for every hash: allocating one per file was a tenth of verify's time. */
const buffer = Buffer.allocUnsafe(DEFAULTS.digestBufferBytes);

/**
 * Hashes a file's bytes without loading it whole; a file that changes while read gets a hash
 * of what was read. Synchronous reads (see lib/walk), yielding to the event loop between them.
 */
export async function hashFile(abs: string, name: HashName, yielder = new Yielder()): Promise<string> {
  hasher ??= await loadXxhash();
  const h = name === 'sha256' ? createHash('sha256') : hasher.create64();
  const fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    for (;;) {
      const n = fs.readSync(fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      h.update(buffer.subarray(0, n));
      await yielder.maybe();
    }
  } finally {
    fs.closeSync(fd);
  }
  const d = h.digest();
  return typeof d === 'bigint' ? d.toString(16).padStart(16, '0') : d.toString('hex');
}

/** The digest of an object already described by lstat. */
export async function digestOf(o: TreeObject, hash: HashName, yielder?: Yielder): Promise<Digest> {
  const d: Digest = { p: o.rel, type: o.type, mode: o.mode };
  if (o.type === 'file' && o.size >= MIN_DATABASE_BYTES && isDatabaseFile(o.abs)) {
    // Compared by what it holds (lib/sqlite-files): the standby's file is laid out its own way,
    // and its permission bits are the standby's (an image carries none).
    try {
      d.hash = `sqlite:${databaseHash(o.abs)}`;
    } catch (err) {
      d.hash = `unreadable:${(err as { code?: string }).code ?? (err as Error).message}`;
    }
    d.size = 0;
    d.mode = 0;
    return d;
  }
  if (o.type === 'file') {
    d.size = o.size;
    try {
      d.hash = await hashFile(o.abs, hash, yielder);
    } catch (err) {
      // Replaced by a link or removed between lstat and open: report what is there now, next round.
      d.hash = `unreadable:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
    }
  }
  if (o.type === 'symlink') d.target = o.target;
  return d;
}

/** The digest of one path, or undefined when nothing is there. */
export async function digestPath(abs: string, rel: string, hash: HashName, yielder?: Yielder): Promise<Digest | undefined> {
  // SQLite's files beside a database are part of it: neither side has them as objects.
  const o = isSidecar(abs) ? undefined : describe(abs, rel);
  return o === undefined ? undefined : digestOf(o, hash, yielder);
}

/** Digests of everything below `dir`, in walk order. */
export async function* digestTree(dir: string, hash: HashName, skip?: (rel: string, name: string) => boolean): AsyncGenerator<Digest> {
  const yielder = new Yielder();
  const skipping = (rel: string, name: string): boolean => skip?.(rel, name) === true || isSidecar(path.join(dir, rel));
  for await (const o of walk(dir, skipping, '', yielder)) yield await digestOf(o, hash, yielder);
}

/** How `standby` differs from `primary` (either may be absent), or undefined when they are equal. */
export function compareDigests(primary: Digest | undefined, standby: Digest | undefined): DiffKind | undefined {
  if (primary === undefined) return standby === undefined ? undefined : 'extra';
  if (standby === undefined) return 'missing';
  if (primary.type !== standby.type) return 'type';
  if (primary.type === 'symlink') return primary.target === standby.target ? undefined : 'link';
  if (primary.type === 'file' && (primary.size !== standby.size || primary.hash !== standby.hash)) return 'content';
  if (primary.mode !== standby.mode) return 'mode';
  return undefined;
}
