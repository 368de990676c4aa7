/**
 * Transactions on the primary: `transaction(fn)` journals a `tx` begin entry, runs `fn` with the
 * transaction's id in an AsyncLocalStorage, so every entry made inside it (fs, config, queue, sync
 * or async) carries `x: id`, and journals the end whether `fn` resolved or threw: the primary's
 * changes happened either way (there is no rollback here). The standby applies the entries of a
 * transaction together once its end arrives, and none of them without it.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { CONTROL_OPS, OBJECT_ROOT, type Op, type TxOp } from '../lib/entry';
import type { JournalSink } from './sink';
import type { FreezeGate } from './freeze';
import { TXOPEN, gateCells } from './shared-state';
import { warnOnce } from './log';

/** `p` of transaction entries (root OBJECT_ROOT). */
export const TX_PATH = 'tx';

/** The transactions of one journal. */
export class Transactions {
  private readonly als = new AsyncLocalStorage<string>();
  private readonly open = new Set<string>();
  private readonly cells: Int32Array;
  private count = 0;
  /** Strong mode: the end waits until the standby applied it, and so the whole transaction (its calls waited for JetStream only). */
  awaitEnd: ((seq: number) => Promise<void>) | undefined;

  /** `epoch` makes ids unique within the journal across restarts, as job ids are. */
  constructor(private readonly sink: JournalSink, private readonly gate: FreezeGate, shared: BigInt64Array, private readonly epoch: number) {
    this.cells = gateCells(shared);
  }

  /** The id of the open transaction a change `op` is made in, if any: the journal's `x` (agent/journal). */
  readonly current = (op: Op): string | undefined => {
    if (this.open.size === 0 || CONTROL_OPS.has(op.op)) return undefined;
    const id = this.als.getStore();
    // A timer set inside a transaction that ended long ago still sees its id: it is no longer one.
    return id !== undefined && this.open.has(id) ? id : undefined;
  };

  /** Runs `fn` as one transaction; inside another one, as part of it. Its result or error passes through unchanged. */
  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    const outer = this.als.getStore();
    if (outer !== undefined && this.open.has(outer)) return fn();
    const id = await this.begin();
    let result: T;
    try {
      result = await this.als.run(id, fn);
    } catch (err) {
      // The function's own error is what the caller sees, whatever the wait for the end comes to.
      const seq = this.end(id);
      if (seq > 0) await this.awaitEnd?.(seq).catch(() => undefined);
      throw err;
    }
    const seq = this.end(id);
    if (seq > 0) await this.awaitEnd?.(seq);
    return result;
  }

  /** Whether the caller runs inside an open transaction. */
  inside(): boolean {
    const id = this.als.getStore();
    return id !== undefined && this.open.has(id);
  }

  /** Transactions open now. */
  get openCount(): number {
    return this.open.size;
  }

  /**
   * At an orderly exit: the end of every transaction still open, since the primary's disk holds
   * its changes; said once. (After SIGKILL there is no end, and the standby keeps none of it.)
   */
  endAll(): void {
    if (this.open.size === 0) return;
    const ids = [...this.open];
    warnOnce('tx-at-exit', `the process ends with ${ids.length} transaction(s) open (${ids.join(', ')}): their end is journaled now, since their changes are on this disk`);
    for (const id of ids) this.end(id);
  }

  /**
   * Journals the begin, once the freeze gate lets it and no checkpoint holds new transactions
   * back (a checkpoint waits until none is open: checkpoints never cut one).
   */
  private async begin(): Promise<string> {
    for (;;) {
      if (!this.gate.tryEnter()) {
        await this.gate.thawed();
        continue;
      }
      // Counted before the hold is looked at, as the worker sets the hold before it counts (agent/ship/checkpoint-service).
      Atomics.add(this.cells, TXOPEN, 1);
      if (this.gate.holdsTransactions()) {
        this.close();
        this.gate.leave();
        await this.gate.transactionsReleased();
        continue;
      }
      break;
    }
    const id = `${this.epoch}.${++this.count}`;
    try {
      this.open.add(id);
      this.journal(id, 'begin');
    } finally {
      this.gate.leave();
    }
    return id;
  }

  /** Journals the end of `id`; its sequence, or 0 when it was not open (or could not be journaled). */
  private end(id: string): number {
    if (!this.open.delete(id)) return 0;
    this.gate.enterSync();
    try {
      return this.journal(id, 'end');
    } finally {
      this.gate.leaveSync();
      this.close();
    }
  }

  private journal(id: string, ev: TxOp['ev']): number {
    try {
      return this.sink.record({ root: OBJECT_ROOT, path: TX_PATH, op: { op: 'tx', id, ev } });
    } catch (err) {
      warnOnce(`tx:${(err as Error).message}`, `the ${ev} of transaction ${id} could not be journaled: ${(err as Error).message}`);
      return 0;
    }
  }

  private close(): void {
    Atomics.sub(this.cells, TXOPEN, 1);
    Atomics.notify(this.cells, TXOPEN);
  }
}
