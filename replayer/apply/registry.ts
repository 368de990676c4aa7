import type { EntryHeader } from '../../lib/entry';
import { BadEntryError } from '../../lib/errors';
import type { Applier, ApplierContext, Data, Outcome } from './applier';
import { CONFIG_REPLICAS } from './config';
import { FsApplier } from './fs';
import { ObjectApplier, ObjectStore } from './object-store';
import { QUEUE_REPLICAS } from './queue';
import { SqliteApplier } from './sqlite';

/** What a registry line gets: the context, and the store the replicas under --state share. */
export type ApplierFactory = (ctx: ApplierContext & { objects: ObjectStore }) => Applier;

/** Every applier, one line each: adding one is a new file and a line here. Synced in this order. */
export const APPLIERS: readonly ApplierFactory[] = [
  (ctx) => new FsApplier(ctx.roots, ctx),
  (ctx) => new SqliteApplier(ctx.roots, ctx),
  (ctx) => new ObjectApplier(ctx.objects, CONFIG_REPLICAS),
  (ctx) => new ObjectApplier(ctx.objects, QUEUE_REPLICAS),
];

/** The appliers of one replayer: each entry goes to the one that takes it; commit, close and clean-up go to all. */
export class Appliers {
  private constructor(readonly all: readonly Applier[], private readonly keepSync: () => void = () => undefined) {}

  /** Builds every applier of `factories` (the registry), then opens the replicas under --state (applying again what a killed replayer logged). */
  static open(ctx: ApplierContext, factories: readonly ApplierFactory[] = APPLIERS): Appliers {
    const objects = new ObjectStore(ctx.stateDir, ctx.applied, ctx.keep, ctx.keepSync);
    const all = factories.map((make) => make({ ...ctx, objects }));
    objects.open();
    return new Appliers(all, ctx.keepSync);
  }

  /** The applier that takes `h`; BadEntryError naming the operation when none does. */
  for(h: EntryHeader): Applier {
    const applier = this.all.find((a) => a.handles(h));
    if (applier === undefined) throw new BadEntryError(`no applier takes ${JSON.stringify(h.op)} entries (${this.all.map((a) => a.name).join(', ')})`);
    return applier;
  }

  /** Applies `h` with the applier that takes it. */
  apply(h: EntryHeader, data: Data): Outcome {
    const applier = this.for(h);
    for (const a of this.all) if (a !== applier) a.beforeOther?.(h);
    return applier.apply(h, data);
  }

  /** Group commit: makes what the checkpoints kept durable, then every applier's changes, one after another; the first failure stops it. */
  async sync(): Promise<void> {
    this.keepSync();
    for (const a of this.all) await a.sync();
  }

  /** Closes every applier, even when one fails; throws the first failure once all were tried. */
  close(): void {
    let first: unknown;
    for (const a of this.all) {
      try {
        a.close();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  /** Removes what a killed replayer left, for every applier; how many objects were removed. */
  cleanUp(): number {
    return this.all.reduce((n, a) => n + a.cleanUp(), 0);
  }
}
