/**
 * Positions the application thread and the shipper worker share, in one
 * SharedArrayBuffer, so the application can wait for the shipper (on exit, or
 * in sync mode) without a message round trip.
 */
export const APPENDED = 0; // last seq written to the spool (application thread)
export const ACKED = 1; // last seq JetStream acknowledged (worker)
export const APPLIED = 2; // last seq the standby reported applied (worker)
export const REPORTED = 3; // last appended seq the worker has put in its heartbeat (worker)
export const DROPPED = 4; // changes not journaled because the spool was full (application thread)
export const HURRY = 5; // raised by the application thread when it waits for the shipper (exit, flush): ship now, no lingering
export const SLOTS = 6;

/** Creates the shared positions. */
export function createShared(): BigInt64Array {
  return new BigInt64Array(new SharedArrayBuffer(SLOTS * BigInt64Array.BYTES_PER_ELEMENT));
}

/** Sets a position and wakes whoever waits on it. */
export function publishPosition(shared: BigInt64Array, slot: number, seq: number): void {
  Atomics.store(shared, slot, BigInt(seq));
  Atomics.notify(shared, slot);
}

/** Reads a position. */
export function readPosition(shared: BigInt64Array, slot: number): number {
  return Number(Atomics.load(shared, slot));
}

/**
 * Blocks the calling thread until `slot` reaches `seq` or `timeoutMs` passes.
 * Returns whether it was reached. Only for the application thread at exit or
 * in sync mode: it stops that thread's event loop while it waits.
 */
export function waitForPosition(shared: BigInt64Array, slot: number, seq: number, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = Atomics.load(shared, slot);
    if (Number(now) >= seq) return true;
    const left = deadline - Date.now();
    if (left <= 0) return false;
    Atomics.wait(shared, slot, now, left);
  }
}
