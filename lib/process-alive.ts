import * as fs from 'node:fs';

/**
 * When process `pid` began, in clock ticks since boot (Linux /proc/PID/stat, field 22), so that a
 * pid reused by another process is not mistaken for a lock's holder; undefined where it cannot be read.
 */
export function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether a process of this host with that pid runs (one we may not signal counts as running). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
