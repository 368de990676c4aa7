import * as fs from 'node:fs';

/**
 * The host's order of changes, in microseconds, shared by every process and thread on one
 * machine: the boot's start (from /proc/stat, the same number in every process of a boot)
 * plus the monotonic clock, which no process can see go back. A change stamped after its
 * call returned is stamped before anything it caused elsewhere on the host (an IPC message,
 * another process's write), so two journals' entries on one object compare in causal order.
 * Across a reboot the new boot begins after the old one ended. Where /proc/stat is missing
 * the offset of the wall clock from the monotonic one stands in (right unless the wall clock
 * is stepped between two processes' starts).
 */
export function hostStamp(): number {
  return BOOT_US + Number(process.hrtime.bigint() / 1000n);
}

function bootMicros(): number {
  try {
    const m = /^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'latin1'));
    if (m !== null) return Number(m[1]) * 1_000_000;
  } catch {
    // not Linux: fall through
  }
  return Date.now() * 1000 - Number(process.hrtime.bigint() / 1000n);
}

const BOOT_US = bootMicros();
