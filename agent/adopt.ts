/**
 * Journals of the same base that no live process holds but whose spool still holds entries
 * JetStream never acknowledged: a pool restarted smaller (4 workers, then 2), a worker killed
 * and not replaced, a child that ended while NATS was down. Nobody would take their slot
 * again, so a live agent of the base takes their lock, ships the backlog with a shipper of
 * their own, and lets go once JetStream has it all and the last heartbeat says so.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { AgentSettings } from '../lib/settings';
import { DEFAULTS } from '../lib/settings';
import { listSegments, readJson, scanFrames, spoolFiles, type AckedState } from '../lib/spool';
import { Journal, JournalInUseError } from './journal';
import { isSlotOf } from './journal-name';
import { lockIsFree } from './spool-lock';
import { Shipper } from './shipper';
import { REPORTED, readPosition } from './shared-state';
import { warnOnce } from './log';

interface Adopted { journal: Journal; shipper: Shipper; last: number }

/** Finds and ships the backlog of the base's journals that their processes left behind. */
export class Adopter {
  private readonly adopted = new Map<string, Adopted>();
  /** Last seq of a segment, by file, size and mtime: a journal nobody writes is read once. */
  private readonly lastSeqSeen = new Map<string, { key: string; seq: number }>();
  private timer: NodeJS.Timeout | undefined;

  /** `settings` are the agent's (NATS, stream, signing key); `base` the name its journal was claimed under. */
  constructor(private readonly settings: AgentSettings, private readonly base: string) {}

  /** Looks after a while, then now and then (DEFAULTS.adoptAfterMs, adoptEveryMs); never keeps the application alive. */
  start(): void {
    this.timer = setTimeout(() => {
      this.scan();
      this.timer = setInterval(() => this.scan(), DEFAULTS.adoptEveryMs);
      this.timer.unref();
    }, DEFAULTS.adoptAfterMs);
    this.timer.unref();
  }

  /** Journals being shipped now, by name. */
  get names(): string[] {
    return [...this.adopted.keys()];
  }

  /** Looks once for orphans and adopts each; a failure only skips that journal, said once. */
  scan(): void {
    let names: string[];
    try {
      names = fs.readdirSync(this.settings.spoolDir);
    } catch {
      return; // no spool yet: nothing was left behind
    }
    for (const name of names) {
      if (this.adopted.size >= DEFAULTS.adoptAtOnce) return;
      if (name !== this.settings.name && isSlotOf(this.base, name)) this.adopt(name);
    }
  }

  /** At exit: a short, bounded wait, then every adopted lock is let go (the next agent takes over). */
  stop(timeoutMs: number): void {
    clearTimeout(this.timer);
    const deadline = Date.now() + timeoutMs;
    for (const [name, a] of this.adopted) {
      a.shipper.flush(Math.max(0, deadline - Date.now()));
      a.journal.close();
      this.adopted.delete(name);
    }
  }

  /** Ships what journal `name` holds now, if no live process holds it (a worker thread of ours that was terminated). */
  adopt(name: string): void {
    if (this.adopted.has(name)) return;
    try {
      this.consider(name);
    } catch (err) {
      warnOnce(`adopt:${name}`, `cannot ship what journal "${name}" left spooled (${(err as Error).message}); it waits for the next process that takes that journal`);
    }
  }

  private consider(name: string): void {
    const dir = path.join(this.settings.spoolDir, name);
    if (!lockIsFree(spoolFiles(dir).lock) || this.backlogEnd(dir) === undefined) return;
    const journal = new Journal(this.settings.spoolDir, name, { maxBytes: this.settings.spoolMaxBytes });
    let opened;
    try {
      opened = journal.open();
    } catch (err) {
      journal.close();
      if (err instanceof JournalInUseError) return; // a process took it meanwhile: it ships its own backlog
      throw err;
    }
    const acked = readJson<AckedState>(spoolFiles(dir).acked)?.seq ?? 0;
    if (opened.lastSeq <= acked) {
      journal.close();
      return;
    }
    const shipper = new Shipper({ ...this.settings, name }, journal.dir, journal.epoch);
    shipper.start(opened.lastSeq);
    shipper.hurry();
    this.adopted.set(name, { journal, shipper, last: opened.lastSeq });
    this.watch(name);
  }

  /** Lets go of `name` once JetStream has its backlog and its last heartbeat reported it. */
  private watch(name: string): void {
    const check = setInterval(() => {
      const a = this.adopted.get(name);
      if (a === undefined) {
        clearInterval(check);
        return;
      }
      if (a.shipper.positions().acked < a.last || readPosition(a.shipper.shared, REPORTED) < a.last) return;
      clearInterval(check);
      // Kept in `adopted` until the lock is let go: an exit while the shipper stops must still
      // find the journal and close it (stop), or the lock outlives the process.
      void a.shipper.stop().finally(() => {
        a.journal.close();
        this.adopted.delete(name);
      });
    }, DEFAULTS.adoptCheckMs);
    check.unref();
  }

  /** The last seq spooled under `dir` when it is past what JetStream acknowledged, else undefined. */
  private backlogEnd(dir: string): number | undefined {
    const newest = listSegments(dir).at(-1);
    if (newest === undefined) return undefined;
    const st = fs.statSync(newest.file);
    const key = `${st.size}:${st.mtimeMs}`;
    let seen = this.lastSeqSeen.get(newest.file);
    if (seen?.key !== key) {
      const records = scanFrames(fs.readFileSync(newest.file), 'none').records;
      seen = { key, seq: records.at(-1)?.seq ?? newest.first - 1 };
      this.lastSeqSeen.set(newest.file, seen);
    }
    const acked = readJson<AckedState>(spoolFiles(dir).acked)?.seq ?? 0;
    return seen.seq > acked ? seen.seq : undefined;
  }
}
