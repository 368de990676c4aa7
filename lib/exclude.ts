import * as path from 'node:path';
import type picomatchType from 'picomatch';

/** UNDERSTUDY_EXCLUDE as a test of a root-relative path: a pattern matches the path or its base name. */
export function excludeMatcher(patterns: readonly string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  // Required only when there are patterns: picomatch is ~8 ms of every agent start (issue 15).
  const picomatch = require('picomatch') as typeof picomatchType;
  const match = picomatch(patterns as string[], { dot: true });
  return (rel) => match(rel) || match(path.posix.basename(rel));
}
