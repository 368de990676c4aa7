import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { excludeMatcher } from '../lib/exclude';
import { isInside, type Root } from '../lib/roots';
import { realFs } from './real-fs';

/** A primary path mapped into the journal's address space. */
export interface Located {
  root: string;
  rel: string;
  /** Absolute real path on the primary (symlinks resolved as far as the operation follows them). */
  abs: string;
}

/**
 * Maps paths the application uses to (root, relative path), by where they
 * really are: a path under a root that reaches outside it through a symlink is
 * not journaled, nor is anything excluded.
 */
export class Locator {
  private readonly excluded: (rel: string) => boolean;

  constructor(private readonly roots: readonly Root[], exclude: readonly string[]) {
    this.excluded = excludeMatcher(exclude);
  }

  /** The absolute form of a PathLike, or undefined for a descriptor or something unusable. */
  absolute(p: unknown): string | undefined {
    let s: string;
    if (typeof p === 'string') s = p;
    else if (Buffer.isBuffer(p)) s = p.toString('utf8');
    else if (p instanceof URL) {
      if (p.protocol !== 'file:') return undefined;
      s = fileURLToPath(p);
    } else return undefined;
    if (s === '' || s.includes('\0')) return undefined;
    return path.resolve(s);
  }

  /**
   * Where `p` really is. `follow` resolves a final symlink (a write through a link
   * changes its target); without it the link itself is the object (unlink, rename).
   */
  locate(p: unknown, follow: boolean): Located | undefined {
    const abs = this.absolute(p);
    if (abs === undefined || !this.lexicallyUnderRoot(abs)) return undefined;
    let real: string;
    try {
      real = follow ? realFs.realpathNative(abs) : path.join(realFs.realpathNative(path.dirname(abs)), path.basename(abs));
    } catch {
      if (!follow) return undefined;
      try {
        real = path.join(realFs.realpathNative(path.dirname(abs)), path.basename(abs));
      } catch {
        return undefined;
      }
    }
    for (const r of this.roots) {
      if (real !== r.realDir && isInside(real, r.realDir)) {
        const rel = real.slice(r.realDir.length + 1);
        return this.excluded(rel) ? undefined : { root: r.name, rel, abs: real };
      }
    }
    return undefined;
  }

  private lexicallyUnderRoot(abs: string): boolean {
    for (const r of this.roots) if (isInside(abs, r.dir) || isInside(abs, r.realDir)) return true;
    return false;
  }
}
