import { writeSync } from 'node:fs';

/**
 * The agent's only voice: one line on stderr per kind of trouble, so an
 * application that degrades is told once, not flooded.
 */
const said = new Set<string>();

/** Prints `message` the first time `key` is seen; later calls with the same key are silent. */
export function warnOnce(key: string, message: string): void {
  if (said.has(key)) return;
  said.add(key);
  try {
    // Straight to fd 2: a worker's process.stderr goes through the application thread,
    // which may be blocked in its exit flush or gone before the line is printed.
    writeSync(2, `understudy: ${message}\n`);
  } catch {
    // stderr closed: nothing better to do, and the host must not see our error.
  }
}

/** Forgets what was said (tests only). */
export function resetWarnings(): void {
  said.clear();
}
