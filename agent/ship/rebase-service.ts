/**
 * The primary's side of a lost standby's recovery. A lost standby asks, under
 * `rebase.<standby>`, to be made whole; every agent watches those requests, one takes each (a
 * compare-and-set on the record's revision), and runs, as child processes, `understudy
 * baseline` over its roots and then `understudy verify --repair --standby <standby>`, saying in
 * the record what it is doing and how it ended. It runs in the shipper's worker, and its work in
 * children: the application's thread never waits for any of it.
 */
import * as os from 'node:os';
import { pause } from '../../lib/retry';
import { processRuns } from '../../lib/process-alive';
import { DEFAULTS } from '../../lib/settings';
import type { RebaseRecord, StateEntry } from '../../lib/state-bucket';
import type { StateStore } from '../../lib/transport/journal-transport';
import { warnOnce } from '../log';
import type { ChildOutcome, ChildRunner } from './rebase-child';

/** The waits the service keeps (DEFAULTS.rebase). */
export interface RebasePace {
  childTimeoutMs: number;
  checkEveryMs: number;
  takeOverAfterMs: number;
  rewatchMs: number;
}

export interface RebaseServiceOptions {
  /** The journal of the agent that serves (its heartbeat says whether it lives). */
  journal: string;
  /** This agent's roots, as `name=/abs/dir`: what the baseline reads and verify compares. */
  roots: string[];
  run: ChildRunner;
  pace?: RebasePace;
  /** Ends its loops (tests; the worker serves until it is terminated). */
  signal?: AbortSignal;
}

/** The rebase this agent runs: whose, the request it answers, and the revision it last wrote. */
interface Taken {
  name: string;
  record: RebaseRecord;
  revision: number;
  stop: AbortController;
}

/** Watches `rebase.*` and runs the requests it takes, one at a time. */
export class RebaseService {
  /** Who takes a request: journal, host and pid, so that another agent can tell whether it still lives. */
  readonly by: string;
  private readonly pace: RebasePace;
  /** The last of each request seen. */
  private readonly seen = new Map<string, StateEntry<'rebase'>>();
  private current: Taken | undefined;

  constructor(private readonly o: RebaseServiceOptions) {
    this.by = `${o.journal}@${os.hostname()} (pid ${process.pid})`;
    this.pace = o.pace ?? DEFAULTS.rebase;
  }

  /** Begins watching `store`'s requests, and looking again at those left waiting. */
  start(store: StateStore): void {
    void this.watch(store);
    void this.lookAgain(store);
  }

  /** The rebase running now, if any (tests). */
  get running(): string | undefined {
    return this.current?.name;
  }

  private async watch(store: StateStore): Promise<void> {
    while (this.o.signal?.aborted !== true) {
      try {
        for await (const e of store.watchEach('rebase')) {
          this.seen.set(e.name, e);
          this.noticeLoss(e);
          this.consider(store, e);
        }
      } catch (err) {
        warnOnce('rebase-watch', `journal "${this.o.journal}" cannot watch for rebase requests: ${(err as Error).message}; retrying`);
      }
      await pause(this.pace.rewatchMs, this.o.signal);
    }
  }

  /** A request nobody could take when it came (this agent was busy), or one whose agent died, is looked at again. */
  private async lookAgain(store: StateStore): Promise<void> {
    while (this.o.signal?.aborted !== true) {
      await pause(this.pace.checkEveryMs, this.o.signal);
      for (const e of [...this.seen.values()]) this.consider(store, e);
    }
  }

  /** Another wrote over the request this agent runs (the standby asked again, an agent took it over): it is not ours to finish. */
  private noticeLoss(e: StateEntry<'rebase'>): void {
    const c = this.current;
    if (c === undefined || e.name !== c.name || e.revision <= c.revision) return;
    if (e.record !== undefined && e.record.by === this.by && e.record.requested === c.record.requested) return;
    c.stop.abort(`the request was written over (${e.record === undefined ? 'deleted' : `now ${e.record.state}${e.record.by !== undefined ? ` by ${e.record.by}` : ''}`})`);
  }

  private consider(store: StateStore, e: StateEntry<'rebase'>): void {
    if (this.current !== undefined || e.record === undefined || this.o.signal?.aborted === true) return;
    const r = e.record;
    if (r.state === 'requested') {
      void this.take(store, e, undefined);
    } else if (r.state === 'running' && r.by === this.by) {
      // Ours, yet not running: it stopped when the bucket failed a write (the revision tells a finished one).
      void this.take(store, e, 'this agent had stopped it');
    } else if (r.state === 'running') {
      void this.orphaned(store, r).then((why) => (why === undefined ? undefined : this.take(store, e, why)), () => undefined);
    }
  }

  /** Why a running rebase's agent is gone, or undefined while it may still be at work. */
  private async orphaned(store: StateStore, r: RebaseRecord): Promise<string | undefined> {
    const m = /^([A-Za-z0-9_-]+)@(.+) \(pid (\d+)\)$/.exec(r.by ?? '');
    if (m === null) {
      // Not an agent of this kind: only a rebase older than any could be is given up on.
      const age = Date.now() - (r.started ?? r.requested);
      return age > 2 * this.pace.childTimeoutMs + this.pace.takeOverAfterMs ? `it began ${Math.round(age / 1000)} s ago, longer than a rebase can take` : undefined;
    }
    const [, journal, host, pid] = m;
    const beat = await store.read('agent', journal);
    if (beat === undefined) return `its agent (journal "${journal}") leaves no heartbeat`;
    // Journal names are unique among live processes: another pid on it means the taker ended.
    if (beat.pid !== Number(pid) || beat.host !== host) return `journal "${journal}" belongs to process ${beat.pid}@${beat.host} now`;
    if (host === os.hostname() && !processRuns(Number(pid))) return `process ${pid} is gone`;
    const silent = Date.now() - beat.time;
    if (silent > this.pace.takeOverAfterMs) return `its agent's heartbeat is ${Math.round(silent / 1000)} s old`;
    return undefined;
  }

  /** Takes the request by a compare-and-set on its revision (of all the agents one wins), then runs it. */
  private async take(store: StateStore, e: StateEntry<'rebase'>, takingOver: string | undefined): Promise<void> {
    if (this.current !== undefined || e.record === undefined) return;
    const record: RebaseRecord = {
      standby: e.record.standby, requested: e.record.requested, state: 'running', by: this.by, started: Date.now(), step: 'starting',
    };
    const c: Taken = { name: e.name, record, revision: e.revision, stop: new AbortController() };
    this.current = c;
    try {
      let revision: number | undefined;
      try {
        revision = await store.update('rebase', e.name, record, e.revision);
      } catch (err) {
        warnOnce(`rebase-take:${e.name}`, `journal "${this.o.journal}" cannot take the rebase request of standby "${record.standby}" (${(err as Error).message}); it tries again every ${this.pace.checkEveryMs / 1000} s, and another agent may take it`);
        return;
      }
      if (revision === undefined) return; // another agent was first
      c.revision = revision;
      const over = takingOver === undefined ? '' : ` (taken over from ${e.record.by}: ${takingOver})`;
      warnOnce(`rebase:${e.name}:${record.requested}:start`, `journal "${this.o.journal}" rebases lost standby "${record.standby}"${over}: "understudy baseline" reads all of ${this.o.roots.join(', ')} and journals it, then "understudy verify --repair --standby ${record.standby}" compares and mends; both in child processes`);
      const end = await this.rebase(store, c);
      warnOnce(`rebase:${e.name}:${record.requested}:end`, end);
    } catch (err) {
      warnOnce(`rebase:${e.name}:${record.requested}:end`, `the rebase of standby "${record.standby}" stopped: ${(err as Error).message}`);
    } finally {
      this.current = undefined;
    }
  }

  /** Runs the baseline and the verify, recording each step; what to say in the log as its end. */
  private async rebase(store: StateStore, c: Taken): Promise<string> {
    const { standby } = c.record;
    const name = `rebase-${standby.replace(/\./g, '_')}`;
    const roots = this.o.roots.flatMap((r) => ['--root', r]);
    if (!(await this.say(store, c, { step: 'baseline' }))) return lost(standby);
    const b = await this.o.run(['baseline', ...roots, '--name', name], { timeoutMs: this.pace.childTimeoutMs, signal: c.stop.signal });
    if (c.stop.signal.aborted) return lost(standby, c);
    if (b.code !== 0) return this.fail(store, c, `baseline ${ended(b)}`);
    if (!(await this.say(store, c, { step: 'verify' }))) return lost(standby);
    const verifyFrom = Date.now();
    const v = await this.o.run(['verify', ...roots, '--repair', '--standby', standby, '--name', name], { timeoutMs: this.pace.childTimeoutMs, signal: c.stop.signal });
    if (c.stop.signal.aborted) return lost(standby, c);
    // verify's own report says what it found; its exit code alone says whether the trees are equal now.
    const report = await store.read('verify', name).catch(() => undefined);
    const fresh = report !== undefined && report.time >= verifyFrom ? report : undefined;
    const numbers = fresh === undefined ? {} : { differences: fresh.differences, repaired: fresh.repaired };
    if (v.code !== 0) {
      const remains = fresh !== undefined && !fresh.equal ? `: the standby still differs after the repair (${fresh.differences} difference(s), ${fresh.repaired} repaired)` : '';
      return this.fail(store, c, `verify --repair ${ended(v)}${remains}`, numbers);
    }
    if (!(await this.say(store, c, { state: 'done', finished: Date.now(), step: 'done', ...numbers }))) return lost(standby);
    const found = fresh === undefined ? 'found it equal' : `found ${fresh.differences} difference(s) and repaired ${fresh.repaired}`;
    return `the rebase of standby "${standby}" is done: baseline "${name}" journaled, and verify ${found}`;
  }

  private async fail(store: StateStore, c: Taken, error: string, numbers: Partial<RebaseRecord> = {}): Promise<string> {
    await this.say(store, c, { state: 'failed', finished: Date.now(), error, ...numbers });
    return `the rebase of standby "${c.record.standby}" failed: ${error}`;
  }

  /** Writes the record with `change` over the revision this agent wrote last; false when another wrote since. */
  private async say(store: StateStore, c: Taken, change: Partial<RebaseRecord>): Promise<boolean> {
    const next: RebaseRecord = { ...c.record, ...change };
    const revision = await store.update('rebase', c.name, next, c.revision);
    if (revision === undefined) return false;
    c.record = next;
    c.revision = revision;
    return true;
  }
}

/** How a child ended, in words, with the end of its stderr. */
function ended(o: ChildOutcome): string {
  const how = o.failure ?? (o.code === null ? 'was killed' : `exited with ${o.code}`);
  const said = o.stderr.trim().split('\n').filter(Boolean).slice(-3).join(' / ');
  return said === '' ? how : `${how}: ${said}`;
}

function lost(standby: string, c?: Taken): string {
  const why = c?.stop.signal.reason === undefined ? '' : `: ${String(c.stop.signal.reason)}`;
  return `the rebase of standby "${standby}" was left to another${why}`;
}
