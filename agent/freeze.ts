/**
 * The freeze gate: every state-changing call of the application passes it before its real
 * function runs. While a checkpoint holds the journal (set by the shipper worker, see
 * agent/ship/checkpoint-service), a call waits: a synchronous one blocks its thread with
 * Atomics.wait, an asynchronous one awaits the thaw; neither ever past the freeze deadline.
 * Calls that passed are counted in flight until they are journaled, so the worker can tell
 * when the journal stands still without the application thread's help.
 *
 * The freeze state (gate cell FROZEN):
 *   0                 open
 *   2·gen             draining: asynchronous calls wait, synchronous ones pass (they need no event
 *                     loop, while asynchronous calls in flight need it to be journaled)
 *   2·gen + 1         frozen: every call waits
 *   COMMIT_PENDING    the worker sent the checkpoint entry to write (control port): whoever
 *                     passes next writes it first, so it lands at the position promised
 *
 * Not frozen, a call costs an Atomics.add and an Atomics.load on the way in and an
 * Atomics.sub on the way out, on Int32 cells (bench/overhead.js measures the hot path).
 */
import * as path from 'node:path';
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { DEADLINE, FROZEN, INFLIGHT, TXHOLD, gateCells, readPosition } from './shared-state';

/** FROZEN while a written-or-refused answer for a commit is due. */
export const COMMIT_PENDING = -1;

/** True for a FROZEN value that holds every call (odd and positive). */
export function holdsAll(v: number): boolean {
  return v > 0 && (v & 1) === 1;
}

/** Frames of our own wrappers, skipped when looking for who called. */
const OWN_DIR = path.dirname(__dirname);
/**
 * Node's compound fs functions, which call the public fs functions from their own callbacks
 * (fs.writeFile calls fs.write and fs.close once its fs.open returned; fs.cp and fs.rm call
 * fs.promises and fs functions): those calls are part of a call that passed the gate and is in
 * flight, and holding them would hold it until the deadline. Streams are not among them: a write
 * stream's fs.write is the application's call.
 */
const NODE_FS_FRAME = /\(?node:(?:fs|internal\/fs\/(?:cp\/cp|rimraf|promises|utils)):\d/;

/**
 * True when the wrapped call was made by Node's own fs (one of its compound functions) rather than
 * by the application. Only asked while frozen: reading the stack costs microseconds.
 */
function calledByNodeFs(): boolean {
  const frames = (new Error().stack ?? '').split('\n').slice(1);
  const caller = frames.find((f) => !f.includes(OWN_DIR));
  return caller !== undefined && NODE_FS_FRAME.test(caller);
}

/** The application thread's side of the freeze. */
export class FreezeGate {
  private readonly cells: Int32Array;
  /** Synchronous gated calls on this thread's stack (a config library's set writes its file through fs). */
  private depth = 0;
  private port: MessagePort | undefined;
  private handle: (message: unknown) => void = () => {};

  constructor(private readonly shared: BigInt64Array) {
    this.cells = gateCells(shared);
  }

  /** Takes the worker's control messages on `port`: `handle` writes a checkpoint entry (agent/checkpoint-entry). */
  listen(port: MessagePort, handle: (message: unknown) => void): void {
    this.port = port;
    this.handle = handle;
    port.on('message', (m: unknown) => {
      handle(m);
      Atomics.compareExchange(this.cells, FROZEN, COMMIT_PENDING, 0);
    });
    // The control port must never keep the application alive.
    port.unref();
  }

  /** A synchronous call begins: returns once it may run (blocking the thread while frozen, up to the deadline). */
  enterSync(): void {
    if (this.depth++ > 0) return;
    Atomics.add(this.cells, INFLIGHT, 1);
    if (Atomics.load(this.cells, FROZEN) !== 0) this.holdSync();
  }

  /** The synchronous call entered with enterSync was journaled (or failed). */
  leaveSync(): void {
    if (--this.depth > 0) return;
    this.leave();
  }

  /**
   * An asynchronous call begins: true when it may run now (then `leave` once it is journaled),
   * false when it must wait for `thawed()` and try again.
   */
  tryEnter(): boolean {
    Atomics.add(this.cells, INFLIGHT, 1);
    // Inside a synchronous gated call: that one passed already, and this one is part of it.
    if (this.depth > 0 || Atomics.load(this.cells, FROZEN) === 0) return true;
    const v = Atomics.load(this.cells, FROZEN);
    if (v === COMMIT_PENDING) {
      this.drain();
      return true;
    }
    if (v <= 0) return true;
    if (Date.now() >= this.deadline()) {
      this.expire(v);
      return true;
    }
    // Part of a call in flight (Node's own compound fs): it passes, and the freeze holds.
    if (calledByNodeFs()) return true;
    this.leave();
    return false;
  }

  /** An asynchronous call entered with tryEnter was journaled (or failed). */
  leave(): void {
    if (Atomics.sub(this.cells, INFLIGHT, 1) === 1 && Atomics.load(this.cells, FROZEN) !== 0) Atomics.notify(this.cells, INFLIGHT);
  }

  /** Resolves when the freeze ends (or its deadline passes); at once when not frozen. */
  thawed(): Promise<void> {
    return this.waitCell(FROZEN);
  }

  /** True while a checkpoint holds back new transactions (until its deadline). */
  holdsTransactions(): boolean {
    const v = Atomics.load(this.cells, TXHOLD);
    if (v === 0) return false;
    if (Date.now() < this.deadline()) return true;
    Atomics.compareExchange(this.cells, TXHOLD, v, 0);
    return false;
  }

  /** Resolves when new transactions may begin again. */
  transactionsReleased(): Promise<void> {
    return this.waitCell(TXHOLD);
  }

  /** Writes a checkpoint entry the worker sent, if one is waiting. */
  drain(): void {
    const port = this.port;
    if (port !== undefined) {
      for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) this.handle(m.message);
    }
    Atomics.compareExchange(this.cells, FROZEN, COMMIT_PENDING, 0);
  }

  private holdSync(): void {
    for (;;) {
      const v = Atomics.load(this.cells, FROZEN);
      if (v === 0) return;
      if (v === COMMIT_PENDING) {
        this.drain();
        continue;
      }
      if (!holdsAll(v)) return;
      const left = this.deadline() - Date.now();
      if (left <= 0) {
        this.expire(v);
        return;
      }
      // Not in flight while it waits: the worker's drain must not wait for a call that cannot run.
      this.leave();
      Atomics.wait(this.cells, FROZEN, v, left);
      Atomics.add(this.cells, INFLIGHT, 1);
    }
  }

  private async waitCell(cell: number): Promise<void> {
    for (;;) {
      const v = Atomics.load(this.cells, cell);
      if (v <= 0) return;
      const left = this.deadline() - Date.now();
      if (left <= 0) {
        if (cell === FROZEN) this.expire(v);
        else Atomics.compareExchange(this.cells, cell, v, 0);
        return;
      }
      const w = Atomics.waitAsync(this.cells, cell, v, left);
      if (!w.async) continue;
      // Atomics.waitAsync holds no handle on the event loop: without this timer a process whose
      // only work is a frozen call could end with the call never made.
      const keepAlive = setTimeout(() => undefined, left);
      try {
        await w.value;
      } finally {
        clearTimeout(keepAlive);
      }
    }
  }

  /** The deadline passed: the application goes on, whatever the worker does (it may be gone). */
  private expire(v: number): void {
    if (Atomics.compareExchange(this.cells, FROZEN, v, 0) === v) Atomics.notify(this.cells, FROZEN);
    Atomics.store(this.cells, TXHOLD, 0);
    Atomics.notify(this.cells, TXHOLD);
  }

  private deadline(): number {
    return readPosition(this.shared, DEADLINE);
  }
}
