import * as path from 'node:path';
import * as fs from 'node:fs';
import { SettingsError } from './errors';

/** A replicated directory: entries address objects in it as (name, relative path). */
export interface Root {
  readonly name: string;
  /** Absolute directory as configured. */
  readonly dir: string;
  /** The same directory with symlinks resolved, when it exists; used to confine real locations. */
  readonly realDir: string;
}

const ROOT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Parses `name=/abs/dir[,name=/abs/dir…]` (or a list of such items) into roots. */
export function parseRoots(specs: string | readonly string[], what = 'UNDERSTUDY_ROOTS'): Root[] {
  const items = (typeof specs === 'string' ? [specs] : specs)
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  const roots: Root[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new SettingsError(`${what}: "${item}" is not name=/absolute/dir`);
    const name = item.slice(0, eq);
    const dir = item.slice(eq + 1);
    if (!ROOT_NAME.test(name)) {
      throw new SettingsError(`${what}: root name "${name}" must be 1-64 of A-Z a-z 0-9 _ -`);
    }
    if (!path.isAbsolute(dir)) throw new SettingsError(`${what}: root "${name}" dir "${dir}" is not absolute`);
    if (roots.some((r) => r.name === name)) throw new SettingsError(`${what}: root name "${name}" given twice`);
    const clean = path.resolve(dir);
    roots.push({ name, dir: clean, realDir: realOrSelf(clean) });
  }
  for (const a of roots) {
    for (const b of roots) {
      if (a !== b && isInside(a.realDir, b.realDir)) {
        throw new SettingsError(`${what}: root "${a.name}" (${a.dir}) lies inside root "${b.name}" (${b.dir}); roots must not nest`);
      }
    }
  }
  return roots;
}

/** True when `p` is `dir` itself or lies below it (both absolute, normalised). */
export function isInside(p: string, dir: string): boolean {
  if (p === dir) return true;
  const base = dir.endsWith(path.sep) ? dir : dir + path.sep;
  return p.startsWith(base);
}

function realOrSelf(dir: string): string {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return dir;
  }
}
