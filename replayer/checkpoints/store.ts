import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceJson, syncDir } from '../../lib/durable-file';
import { DEFAULTS } from '../../lib/settings';
import type { StandbyCheckpoint, StandbyCheckpoints } from '../../lib/state/checkpoint';
import type { KeepFn } from '../apply/applier';
import type { CheckpointKeeper, CheckpointMark } from './keeper';
import { ChangeKeeper } from './change-keeper';
import { CHECKPOINTS_DIR, MARKS, META, readMarks, readReached, seqDir, type Reached, type ReachedMeta } from './meta';
import { UndoLog } from './undo-log';

export interface CheckpointStoreOptions {
  stateDir: string;
  /** Root name to its real directory on the standby. */
  roots: ReadonlyMap<string, string>;
  /** --keep-checkpoints: the oldest reached beyond this many are dropped (DEFAULTS.checkpoints.keep). */
  keep?: number;
  /** This standby's name, in what is published. */
  standby: string;
  log: (line: string) => void;
  /** Told whenever what this standby holds of checkpoints changed (the replayer puts it in the state bucket). */
  publish?: (record: StandbyCheckpoints) => void;
}

/**
 * Point-in-time copies of the standby's roots and replicas at each reached checkpoint, at a
 * cost proportional to what changes after it: reaching one writes one small file; from then on
 * the appliers' `keep` (ChangeKeeper) saves what each object was before its first change, into
 * the newest checkpoint's undo log only. The logs chain: restoring checkpoint k copies the live
 * tree and undoes the newest log, then the next, down to k's. Dropping the oldest loses
 * nothing the others need. Everything kept is durable before the change it precedes is made.
 */
export class CheckpointStore implements CheckpointKeeper {
  private reachedList: Reached[] = [];
  private logs: UndoLog[] = [];
  private marks: StandbyCheckpoint[] = [];
  private keeper!: ChangeKeeper;
  private readonly dir: string;
  private readonly keepN: number;

  /** Touches nothing on disk until `open`. */
  constructor(private readonly o: CheckpointStoreOptions) {
    this.dir = path.join(o.stateDir, CHECKPOINTS_DIR);
    this.keepN = o.keep ?? DEFAULTS.checkpoints.keep;
  }

  /** Reads what is kept and repairs what a crash left (a half-made or half-dropped checkpoint, a keep cut short). */
  open(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const name of fs.readdirSync(this.dir)) {
      if (name.endsWith('.tmp') || name.endsWith('.drop')) fs.rmSync(path.join(this.dir, name), { recursive: true, force: true });
    }
    this.reachedList = readReached(this.o.stateDir);
    this.logs = this.reachedList.map((r) => new UndoLog(r.dir));
    const repaired = this.logs.reduce((n, l) => n + l.recover(), 0);
    if (repaired > 0) this.o.log(`checkpoints: removed ${repaired} object(s) a stopped replayer left half kept`);
    this.marks = readMarks(this.o.stateDir);
    this.keeper = new ChangeKeeper(this.o.roots, this.o.stateDir, () => this.logs.at(-1), () => this.logs);
    this.dropBeyond();
  }

  /** What the appliers call before each change (ApplierContext.keep). */
  get keep(): KeepFn {
    return this.keeper.keep;
  }

  /**
   * `mark` is reached: one directory with one small file, fsynced, whatever the tree's size.
   * From now on changes are kept for it; the oldest beyond --keep-checkpoints go.
   */
  reached(mark: CheckpointMark): void {
    if (this.reachedList.some((r) => r.id === mark.id)) return; // told again after a restart
    const seq = (this.reachedList.at(-1)?.seq ?? 0) + 1;
    const final = seqDir(this.o.stateDir, seq);
    const tmp = `${final}.tmp`;
    // The roots it covers, by real directory: restore and rollback refuse any other (meta.ts coveredRoots).
    const roots = Object.fromEntries([...this.o.roots].map(([name, dir]) => [name, realOrSelf(dir)]));
    const meta: ReachedMeta = { seq, name: mark.name, id: mark.id, time: mark.time, cut: mark.cut, reachedAt: Date.now(), roots };
    fs.mkdirSync(tmp, { mode: 0o700 });
    replaceJson(path.join(tmp, META), meta);
    fs.renameSync(tmp, final);
    syncDir(this.dir);
    this.logs.at(-1)?.close();
    this.reachedList.push({ ...meta, dir: final });
    this.logs.push(new UndoLog(final));
    this.keeper.reached();
    this.o.log(`checkpoint ${mark.name} reached`);
    this.setMarks(this.marks.filter((m) => m.id !== mark.id));
    this.dropBeyond();
    this.publish();
  }

  /** Some journals of `mark` are not at their cut yet. */
  pending(mark: CheckpointMark, waitingFor: string[]): void {
    this.setMark({ name: mark.name, id: mark.id, time: mark.time, cut: mark.cut, waitingFor });
  }

  /** `mark` can never be reached here. */
  failed(mark: CheckpointMark, why: string): void {
    this.o.log(`checkpoint ${mark.name} cannot be reached on this standby: ${why}`);
    this.setMark({ name: mark.name, id: mark.id, time: mark.time, cut: mark.cut, failed: why });
  }

  /** Makes what was kept since the last call durable: the group commit calls it before the appliers' fsyncs. */
  sync(): void {
    this.logs.at(-1)?.sync();
  }

  /** Every checkpoint this standby knows, with the bytes each keeps. */
  list(): StandbyCheckpoint[] {
    const ids = new Set(this.reachedList.map((r) => r.id));
    return [
      ...this.reachedList.map((r, i) => ({ name: r.name, id: r.id, time: r.time, cut: r.cut, reachedAt: r.reachedAt, bytes: this.logs[i].bytes })),
      ...this.marks.filter((m) => !ids.has(m.id)),
    ];
  }

  /** Publishes what this standby holds (also after a restart, and as bytes grow: the replayer calls it at its commits). */
  publish(): void {
    this.o.publish?.({ standby: this.o.standby, time: Date.now(), checkpoints: this.list() });
  }

  close(): void {
    for (const l of this.logs) l.close();
  }

  private setMark(mark: StandbyCheckpoint): void {
    if (this.reachedList.some((r) => r.id === mark.id)) return;
    this.setMarks([...this.marks.filter((m) => m.id !== mark.id), mark].slice(-DEFAULTS.checkpoints.marksKept));
    this.publish();
  }

  private setMarks(marks: StandbyCheckpoint[]): void {
    this.marks = marks;
    replaceJson(path.join(this.dir, MARKS), { marks });
  }

  /** Drops the oldest reached checkpoints beyond the number kept, with their undo logs (only they need them). */
  private dropBeyond(): void {
    while (this.reachedList.length > this.keepN) {
      const gone = this.reachedList.shift() as Reached;
      const log = this.logs.shift() as UndoLog;
      log.close();
      // Renamed first: a crash mid-removal leaves a directory `open` finishes removing, never half a checkpoint.
      const aside = `${gone.dir}.drop`;
      fs.renameSync(gone.dir, aside);
      syncDir(this.dir);
      fs.rmSync(aside, { recursive: true, force: true });
      this.keeper.dropped(log);
      this.o.log(`checkpoint ${gone.name} dropped (--keep-checkpoints ${this.keepN})`);
    }
  }
}


function realOrSelf(dir: string): string {
  try {
    return fs.realpathSync.native(dir);
  } catch {
    return path.resolve(dir);
  }
}
