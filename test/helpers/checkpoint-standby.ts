import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { EntryHeader } from '../../lib/entry';
import type { Root } from '../../lib/roots';
import { NO_HISTORY } from '../../replayer/apply/applier';
import { Appliers } from '../../replayer/apply/registry';
import { CheckpointStore } from '../../replayer/checkpoints/store';
import { CONFIG_DIR, QUEUE_DIR } from '../../replayer/replicas';
import { writeSync } from '../../replayer/write';

/** An entry as a test writes it: the header's position is filled in. */
export type Change = (EntryHeader extends infer H ? H extends EntryHeader ? Omit<H, 'j' | 'e' | 's' | 't'> : never : never) & { data?: Buffer | string; j?: string };

/**
 * A standby on real disk for the checkpoint store: the real appliers of the registry with the
 * store's keep, and the store. `reach` commits, reaches a checkpoint and takes a `cp -a` copy
 * of the roots and replicas at that instant, to compare restores with.
 */
export class CheckpointStandby {
  readonly base: string;
  readonly stateDir: string;
  readonly roots: Root[];
  store!: CheckpointStore;
  appliers!: Appliers;
  /** Entries applied per journal, and in all (the entries' times). */
  readonly seq = new Map<string, number>();
  private s = 0;
  readonly logged: string[] = [];

  /** While set, every write(2) of the appliers fails with ENOSPC (a full disk after a keep). */
  fullDisk = false;
  /** Told after each keep returned (a child killed there: kept, not changed yet). */
  afterKeep: () => void = () => undefined;

  /** A new standby under a temporary directory removed at teardown; or, with `base`, the one there (a child process's). */
  constructor(t: { teardown(fn: () => void): void } | undefined, rootNames = ['data'], readonly keep = 3, base?: string) {
    this.base = base ?? fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-cp-')));
    t?.teardown(() => {
      this.close();
      fs.rmSync(this.base, { recursive: true, force: true });
    });
    this.stateDir = path.join(this.base, 'state');
    this.roots = rootNames.map((name) => ({ name, dir: path.join(this.base, 'live', name), realDir: path.join(this.base, 'live', name) }));
    for (const r of this.roots) fs.mkdirSync(r.dir, { recursive: true });
    this.open();
  }

  /** Opens the store and the appliers, as a (re)started replayer does. */
  open(): void {
    const roots = new Map(this.roots.map((r) => [r.name, r.dir]));
    const log = (line: string): void => void this.logged.push(line);
    this.store = new CheckpointStore({ stateDir: this.stateDir, roots, keep: this.keep, standby: 'test', log });
    this.store.open();
    const write: typeof writeSync = (...args) => {
      if (this.fullDisk) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return writeSync(...args);
    };
    this.appliers = Appliers.open({ roots, stateDir: this.stateDir, write, log, ...NO_HISTORY, applied: (j) => ({ e: 1, s: this.seq.get(j) ?? 0 }), keep: (r, p, how) => {
      this.store.keep(r, p, how);
      this.afterKeep();
    }, keepSync: () => this.store.sync() });
  }

  close(): void {
    try {
      this.appliers?.close();
      this.store?.close();
    } catch {
      // closed already
    }
  }

  root(name = 'data'): string {
    return path.join(this.base, 'live', name);
  }

  /** Applies one change through the appliers. */
  apply(c: Change): void {
    this.s++;
    const { data, j = 'app', ...rest } = c;
    const s = (this.seq.get(j) ?? 0) + 1;
    this.seq.set(j, s);
    const h = { ...rest, j, e: 1, s, t: 1000 + this.s } as EntryHeader;
    this.appliers.apply(h, { buf: Buffer.from(data ?? '') });
  }

  /** The group commit. */
  commit(): Promise<void> {
    return this.appliers.sync();
  }

  /** Commits, reaches checkpoint `name`, and copies the roots and replicas with `cp -a` into snapshots/<name>; returns that directory. */
  async reach(name: string): Promise<string> {
    await this.commit();
    const cut = [...this.seq].map(([j, s]) => ({ j, e: 1, s }));
    this.store.reached({ name, id: `${name}-id`, time: 1000 + this.s, cut });
    const snap = path.join(this.base, 'snapshots', name);
    fs.mkdirSync(path.join(snap, '.state'), { recursive: true });
    for (const r of this.roots) execFileSync('cp', ['-a', r.dir, path.join(snap, r.name)]);
    for (const d of [CONFIG_DIR, QUEUE_DIR]) {
      const from = path.join(this.stateDir, d);
      if (fs.existsSync(from)) execFileSync('cp', ['-a', from, path.join(snap, '.state', d)]);
      else fs.mkdirSync(path.join(snap, '.state', d));
    }
    return snap;
  }
}
