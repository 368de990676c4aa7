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
/** Freeze deadline, ms since 1970, while a checkpoint holds the application's changes (worker). */
export const DEADLINE = 6;
/** Slots 7 and 8 are read as four Int32 cells (gateCells): the freeze gate's hot path loads one of them, allocation-free. */
const GATE_SLOT = 7;
export const SLOTS = 9;

/** Gate cells (Int32, see gateCells): the freeze state (FreezeState in agent/freeze). */
export const FROZEN = 0;
/** Gate cells: calls that passed the gate and are not yet journaled (application thread). */
export const INFLIGHT = 1;
/** Gate cells: transactions open in this journal (application thread). */
export const TXOPEN = 2;
/** Gate cells: non-zero while a checkpoint holds back new transactions (worker). */
export const TXHOLD = 3;

/** The gate's four Int32 cells inside `shared`: BigInt atomics allocate, and the gate runs on every call. */
export function gateCells(shared: BigInt64Array): Int32Array {
  return new Int32Array(shared.buffer, shared.byteOffset + GATE_SLOT * BigInt64Array.BYTES_PER_ELEMENT, 4);
}

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
