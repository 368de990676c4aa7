import * as fs from 'node:fs';
import type { EntryHeader, OpName } from '../../lib/entry';
import { BadEntryError } from '../../lib/errors';
import type { Applier, Data, Outcome } from './applier';

/**
 * What a memory applier keeps, outliving the applier as a disk outlives a killed process:
 * each object's bytes as a reader sees them, and as the last sync made them durable.
 */
export class MemoryDisk {
  visible = new Map<string, Buffer>();
  durable = new Map<string, Buffer>();
  /** Temporaries a killed applier left (a test plants them as a kill would); cleanUp removes them. */
  leftovers = 0;

  /** A power loss: what no sync made durable is gone. */
  powerLoss(): void {
    this.visible = new Map(this.durable);
  }
}

/**
 * An Applier in memory, for unit tests of what drives appliers (ordering, commits): it keeps
 * each object's last bytes under "root/path" (an `rm` removes it), remembers every entry it
 * applied in order, and refuses a root it was not given, as the fs applier does.
 */
export class MemoryApplier implements Applier {
  readonly name = 'memory';
  /** Every entry applied, in the order applied. */
  readonly applied: EntryHeader[] = [];
  private closed = false;

  constructor(readonly disk: MemoryDisk, private readonly ops: ReadonlySet<OpName>, private readonly roots: ReadonlySet<string>) {}

  /** True for the operations it was given. */
  handles(h: EntryHeader): boolean {
    return this.ops.has(h.op);
  }

  /** Keeps the entry's bytes as its object's; BadEntryError for a root it was not given. */
  apply(h: EntryHeader, data: Data): Outcome {
    if (this.closed) throw new Error('memory applier used after close');
    if (!this.roots.has(h.r)) throw new BadEntryError(`entry names root "${h.r}", which this applier does not have`);
    const key = `${h.r}/${h.p}`;
    if (h.op === 'rm') this.disk.visible.delete(key);
    else this.disk.visible.set(key, data.buf ?? fs.readFileSync(data.file));
    this.applied.push(h);
    return 'applied';
  }

  /** What a reader sees now is what a power loss keeps. */
  async sync(): Promise<void> {
    this.disk.durable = new Map(this.disk.visible);
  }

  /** Refuses any later apply, as a closed file would. */
  close(): void {
    this.closed = true;
  }

  /** Removes the planted leftovers; how many there were. */
  cleanUp(): number {
    const n = this.disk.leftovers;
    this.disk.leftovers = 0;
    return n;
  }
}
