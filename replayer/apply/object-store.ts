import * as fs from 'node:fs';
import * as path from 'node:path';
import { comparePosition, OBJECT_ROOT, type EntryHeader, type OpName } from '../../lib/entry';
import { BadEntryError } from '../../lib/errors';
import { readJsonLines, replaceJson, syncDir } from '../../lib/durable-file';
import { readReplicaFile, replicaFile, type ReplicaDir, type Through } from '../replicas';
import { KEEP_NOTHING, type Applier, type AppliedPosition, type Data, type KeepFn, type Outcome } from './applier';

/**
 * One kind of replica under --state (configuration stores, queues): which entries change it,
 * where its files are, and what an entry does to it. `M` is the replica in memory, `S` what
 * its file holds. Methods, not function fields: a kind of any M and S then fits the store's list.
 */
export interface ReplicaKind<M = unknown, S = unknown> {
  /** Its applier's name (config, queue). */
  readonly name: string;
  /** The operation of its entries. */
  readonly op: OpName;
  readonly dir: ReplicaDir;
  /** The replica of `name` in memory, from what its file holds (undefined: no file yet). */
  load(name: string, stored: S | undefined): M;
  /** Last entry of each journal the replica reflects. */
  through(m: M): Through;
  /** Changes the replica by `h`, which it does not reflect yet; BadEntryError when `h` is malformed. */
  apply(m: M, h: EntryHeader, data: Buffer): void;
  /** What its file holds. */
  stored(m: M): S;
}

/** One applied entry as the log keeps it between commits. */
interface LogLine { h: EntryHeader; d: string }

/** A replica in memory, with its kind. */
interface Loaded { kind: ReplicaKind; m: unknown }

/**
 * The replicas of configuration stores and queues under the state directory, shared by
 * their appliers. A replica is rewritten whole, atomically (temp, fsync, rename, fsync dir),
 * at each commit, not per entry; between commits every applied entry is appended to
 * `objects.log`, because the replayer records its position per entry and a killed
 * replayer must not have advanced past changes that were only in its memory. On open
 * the log is applied again up to the recorded positions (each replica passes over what
 * it already reflects), made durable, and emptied. One log for every kind, emptied once
 * all the replicas it covers are durable: the kinds commit together.
 */
export class ObjectStore {
  private readonly kinds = new Map<OpName, ReplicaKind>();
  /** By file. */
  private readonly replicas = new Map<string, Loaded>();
  private readonly dirty = new Set<string>();
  private readonly logFile: string;
  private logFd = -1;
  private logged = false;

  /** Touches nothing on disk until `open`. */
  /** `keep` is told before a replica file is first changed (checkpoints keep what it was); `keepSync` makes that durable before a replica is replaced. */
  constructor(private readonly stateDir: string, private readonly applied: AppliedPosition, private readonly keep: KeepFn = KEEP_NOTHING, private readonly keepSync: () => void = () => undefined) {
    this.logFile = path.join(stateDir, 'objects.log');
  }

  /** Takes the entries of `kind` from now on; every kind is attached before `open`, which applies the log to them all. */
  attach(kind: ReplicaKind): void {
    this.kinds.set(kind.op, kind);
  }

  /** Makes the replica directories, and applies again what a killed replayer's log holds (once; later calls do nothing). */
  open(): void {
    if (this.logFd >= 0 || this.kinds.size === 0) return;
    for (const k of this.kinds.values()) fs.mkdirSync(path.join(this.stateDir, k.dir), { recursive: true, mode: 0o700 });
    const lines = readJsonLines<LogLine>(this.logFile);
    this.logFd = fs.openSync(this.logFile, 'a', 0o600);
    for (const { h, d } of lines) {
      const at = this.applied(h.j);
      // Entries the position store does not cover will come from the stream again.
      if (at !== undefined && comparePosition(h, at) <= 0) this.applyHeader(h, Buffer.from(d, 'base64'));
    }
    this.logged = lines.length > 0;
    this.syncNow();
  }

  /** Applies one entry of an attached kind, and logs it until the next commit; BadEntryError when it is malformed. */
  apply(h: EntryHeader, data: Buffer): void {
    if (this.applyHeader(h, data)) {
      const line: LogLine = { h, d: data.toString('base64') };
      fs.writeSync(this.logFd, `${JSON.stringify(line)}\n`);
      this.logged = true;
    }
  }

  /** Makes every replica changed since the last call durable, then empties the log. */
  async sync(): Promise<void> {
    this.syncNow();
  }

  /** Closes the log; what it holds is applied again at the next open. */
  close(): void {
    if (this.logFd >= 0) fs.closeSync(this.logFd);
    this.logFd = -1;
  }

  private syncNow(): void {
    if (this.dirty.size === 0 && !this.logged) return;
    // Also when the log is applied again at open, outside a group commit.
    this.keepSync();
    const dirs = new Set<string>();
    for (const file of this.dirty) {
      const rep = this.replicas.get(file);
      if (rep === undefined) continue;
      // Each directory is fsynced once, after all its replicas were replaced.
      replaceJson(file, rep.kind.stored(rep.m), { syncDir: false });
      dirs.add(path.dirname(file));
    }
    for (const d of dirs) syncDir(d);
    this.dirty.clear();
    // Every line is now in a durable replica; a line that survives a crash is passed over by `through`.
    fs.ftruncateSync(this.logFd, 0);
    this.logged = false;
  }

  /** Applies `h` unless its replica already reflects it; true when it changed something. */
  private applyHeader(h: EntryHeader, data: Buffer): boolean {
    const kind = this.kinds.get(h.op);
    if (kind === undefined) throw new BadEntryError(`${h.op} entry is not a configuration or job entry`);
    const file = replicaFile(this.stateDir, kind.dir, h.p);
    const rep = this.load(file, kind, h.p);
    const through = kind.through(rep.m);
    const at = through[h.j];
    if (at !== undefined && comparePosition(h, at) <= 0) return false;
    // The file on disk is the last commit's; it is replaced by rename at the next one.
    this.keep(OBJECT_ROOT, path.relative(this.stateDir, file), 'replace');
    kind.apply(rep.m, h, data);
    through[h.j] = { e: h.e, s: h.s };
    this.dirty.add(file);
    return true;
  }

  private load(file: string, kind: ReplicaKind, name: string): Loaded {
    let rep = this.replicas.get(file);
    if (rep !== undefined) return rep;
    rep = { kind, m: kind.load(name, readReplicaFile(file)) };
    this.replicas.set(file, rep);
    return rep;
  }
}

/**
 * The applier of one kind of replica. Its kind's entries go to the shared store; a sync
 * commits every kind at once (the first applier's call does the work, the others find
 * nothing left), so the log is never emptied before all it covers is durable.
 */
export class ObjectApplier implements Applier {
  readonly name: string;

  constructor(private readonly store: ObjectStore, private readonly kind: ReplicaKind) {
    this.name = kind.name;
    store.attach(kind);
  }

  /** True for entries of its kind's operation. */
  handles(h: EntryHeader): boolean {
    return h.op === this.kind.op;
  }

  /** Applies one entry of its kind (passed over when the replica already reflects it); BadEntryError when it is malformed. */
  apply(h: EntryHeader, data: Data): Outcome {
    if (!this.handles(h)) throw new BadEntryError(`${h.op} entry is not a ${this.name} entry`);
    this.store.apply(h, data.buf ?? fs.readFileSync(data.file));
    if (data.file !== undefined) fs.rmSync(data.file, { force: true });
    return 'applied';
  }

  /** Commits the store: every kind's changed replicas, then the log is emptied. */
  sync(): Promise<void> {
    return this.store.sync();
  }

  /** Closes the store (the second applier's call finds it closed). */
  close(): void {
    this.store.close();
  }

  /** Nothing to remove: what a killed replayer left is its log, applied again whenever the store opens (a failed commit leaves one too). */
  cleanUp(): number {
    return 0;
  }
}
