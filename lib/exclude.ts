import * as path from 'node:path';
import picomatch from 'picomatch';

/** UNDERSTUDY_EXCLUDE as a test of a root-relative path: a pattern matches the path or its base name. */
export function excludeMatcher(patterns: readonly string[]): (rel: string) => boolean {
  if (patterns.length === 0) return () => false;
  const match = picomatch(patterns as string[], { dot: true });
  return (rel) => match(rel) || match(path.posix.basename(rel));
}
