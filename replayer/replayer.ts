import './threadpool';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { standbyKey } from '../lib/state-bucket';
import { Recovery } from './slots/recovery';
import { markLost, Slots } from './slots/slots';
import { standbyRows } from './status/collect';
import { CONTROL_OPS, positionLabel, type EntryHeader } from '../lib/entry';
import { ApplyError, BadEntryError, ConfinementError, DecodeError, UnderstudyError } from '../lib/errors';
import type { Verifier } from '../lib/signing';
import { serveMetrics } from './metrics';
import { serveStatusPage, type StatusPage } from './status/page-server';
import type { Server } from 'node:http';
import { connectNats, isUnreachable, openStateKv } from '../lib/nats';
import type { Root } from '../lib/roots';
import { DEFAULTS, standbyName, type NatsSettings } from '../lib/settings';
import type { ChangeOrder, Data } from './apply/applier';
import { Appliers } from './apply/registry';
import { Staging } from './staging';
import { PositionStore, type JournalPos } from './state';
import { Versions } from './order/versions';
import { serveVerify } from './verify-server';
import { appliedSubject, verifySubject } from '../lib/subjects';
import { writeSync, type WriteFn } from './write';
import { lockState, type StateLock } from './state-lock';
import { StandbyDiskError } from './disk-error';
import { retry } from '../lib/retry';
import { Quarantine } from './quarantine';
import { FenceStore } from './fence';
import { FenceWatch } from './fence-watch';
import { natsAgents } from './agents';
import { CatchUp, type CatchUpTarget } from './catch-up';
import { Committer } from './commit';
import { Intake, type Held } from './intake';
import type { Sequencer } from './order/sequencer';
import type { Barriers } from './order/barriers';
import { makeOrder } from './order/order';
import { NO_CHECKPOINTS, type CheckpointKeeper } from './checkpoints/keeper';
import { policyFor, type RunPolicy } from './policy';
import { collectMetrics } from './replay-metrics';
import { JetStreamSource } from './source/jetstream';
import type { JournalReader, JournalSource } from './source/journal-source';
import { checkStateApart } from './state-apart';
import { CheckpointStore } from './checkpoints/store';
import { writeState } from '../lib/state-bucket';
import type { StandbyCheckpoints } from '../lib/state/checkpoint';
import { emptySummary, type ReplaySummary } from './summary';

export type { ReplaySummary } from './summary';

export interface ReplayOptions {
  nats: NatsSettings;
  stream: string;
  roots: Root[];
  /** Only this journal; all journals of the stream when absent. */
  name?: string;
  stateDir: string;
  /** Apply what the stream holds now, then return. */
  drain: boolean;
  log: (line: string) => void;
  /** How often applied positions are made durable and reported (ms; DEFAULTS.replay.commitMs). */
  commitMs?: number;
  /** When set, every entry must carry a signature one of these keys verifies. */
  verifier?: Verifier;
  /** What to do with an entry that is quarantined: stop (default) or go on without it. */
  onBadEntry?: 'halt' | 'skip';
  /** Serve Prometheus metrics on this port while running. */
  metricsPort?: number;
  metricsHost?: string;
  /** Serve the live status page and its JSON on this port while running (DEFAULTS.statusPage.host unless httpHost). */
  httpPort?: number;
  httpHost?: string;
  /** How much of all journals may be held while waiting for missing entries (DEFAULTS.replay.maxHeld: entries per journal, bytes in all). */
  maxHeld?: { entries: number; bytes: number };
  /** The write(2) the replayer's files go through (a test injects a full disk here). */
  write?: WriteFn;
  /** The caller holds the lock of `stateDir` (promote); otherwise the replayer takes it. */
  stateLocked?: boolean;
  /** This standby's name in the state bucket (replay --standby); UNDERSTUDY_STANDBY or the host's name when absent. */
  standby?: string;
  /** --max-standby-lag: past it this standby is lost (DEFAULTS.slots when absent). */
  maxStandbyLag?: { bytes?: number; ms?: number };
  /** --keep-stream: bytes of the newest entries the stream keeps whatever the standbys committed (DEFAULTS.slots when absent). */
  keepStream?: number;
  /** A promotion: at the end of the stream a transaction still open never ends (what is staged behind it of no open one is applied). */
  promoting?: boolean;
  /** What one journal may stage for its open transactions (DEFAULTS.replay.maxStaged). */
  maxStaged?: { entries: number; bytes: number };
  /** How long the other journals of a checkpoint may take after the first arrived (DEFAULTS.replay.checkpointWaitMs). */
  checkpointWaitMs?: number;
  /** What the order tells of checkpoints reached, pending and failed (the checkpoint store behind --keep-checkpoints when absent). */
  checkpoints?: CheckpointKeeper;
  /** --keep-checkpoints: point-in-time copies kept of the roots and replicas at the newest checkpoints reached (DEFAULTS.checkpoints.keep; 0 keeps none). */
  keepCheckpoints?: number;
}

/** A transaction whose end never came, as a promotion sets it aside: its journal, ids, and entries in order. */
export interface UnfinishedTransaction {
  journal: string;
  ids: string[];
  entries: { header: EntryHeader; data: Buffer }[];
}

/**
 * The standby's replayer: wires a JournalSource (the stream), the Intake (verify, order,
 * apply, record) and catch-up together under a drain or follow policy, and runs the commit
 * loop that makes applied entries durable and reports them to the agents.
 */
export class Replayer {
  private readonly policy: RunPolicy;
  private readonly summary: ReplaySummary = emptySummary();
  /** Journals whose positions moved since the last commit. */
  private readonly changed = new Set<string>();
  private readonly sequencer: Sequencer<Held>;
  private readonly barriers: Barriers<Held>;
  /** This standby's name in the state bucket; its key (with --name's journal) names its verify subject too. */
  private readonly standby: string;
  /** This standby's key in the state bucket: its name, or name.journal with --name. */
  private readonly key: string;
  private opened = false;
  private store!: PositionStore;
  private roots!: ReadonlyMap<string, string>;
  private versions!: Versions;
  private appliers!: Appliers;
  private staging!: Staging;
  private intake!: Intake;
  private fences!: FenceStore;
  private runningMarker!: string;
  /** The point-in-time copies behind --keep-checkpoints; undefined with --keep-checkpoints 0. */
  private checkpointStore: CheckpointStore | undefined;
  /** What the order tells of checkpoints: opts.checkpoints, else the store. */
  checkpointKeeper: CheckpointKeeper = NO_CHECKPOINTS;
  /** The last put of checkpoints.<standby>, awaited before disconnecting. */
  private checkpointsPut: Promise<void> = Promise.resolve();
  private lock: StateLock | undefined;
  /** The reader of the running (or last) pass: it alone knows whether the stream's last message was read. */
  private reader: JournalReader | undefined;
  private committer!: Committer;
  private stopping: AbortSignal | undefined;
  /** Stops the consumer of the running pass. */
  private stopPass: (() => void) | undefined;

  /** Checks the settings; nothing is opened until `open()` (or `run()`). */
  constructor(private readonly opts: ReplayOptions) {
    this.policy = policyFor(opts.drain);
    this.standby = opts.standby ?? standbyName();
    this.key = standbyKey(this.standby, opts.name);
    ({ sequencer: this.sequencer, barriers: this.barriers } = makeOrder<Held>((j) => this.store.positions.journals[j], {
      maxHeld: opts.maxHeld ?? DEFAULTS.replay.maxHeld, maxStaged: opts.maxStaged ?? DEFAULTS.replay.maxStaged,
      waitMs: opts.checkpointWaitMs ?? DEFAULTS.replay.checkpointWaitMs, only: opts.name, promoting: opts.promoting,
    }));
    checkStateApart(opts.stateDir, opts.roots);
  }

  /** Takes the lock of --state and opens the state and the roots (once; `run()` does it when not done). */
  open(): void {
    if (this.opened) return;
    // Before anything under --state or the roots is touched: a second replayer must not even
    // clean up "leftovers" that are the live one's temporary files.
    this.lock = this.opts.stateLocked === true ? undefined : lockState(this.opts.stateDir, 'replay');
    try {
      this.openState(this.opts);
    } catch (err) {
      this.lock?.release();
      throw err;
    }
    this.opened = true;
  }

  private openState(opts: ReplayOptions): void {
    const roots = new Map<string, string>();
    for (const r of opts.roots) {
      fs.mkdirSync(r.dir, { recursive: true });
      roots.set(r.name, fs.realpathSync(r.dir));
    }
    this.roots = roots;
    this.store = new PositionStore(opts.stateDir, opts.write, opts.name);
    if (this.store.restartedFromCommit) {
      opts.log(`the machine restarted since the last applied entry was recorded; resuming from the last commit (stream position ${this.store.streamSeq})`);
    }
    const keep = opts.keepCheckpoints ?? DEFAULTS.checkpoints.keep;
    this.checkpointStore = keep === 0 ? undefined : new CheckpointStore({
      stateDir: opts.stateDir, roots, keep, standby: this.key, log: opts.log, publish: (record) => this.publishCheckpoints(record),
    });
    this.checkpointStore?.open();
    this.checkpointKeeper = opts.checkpoints ?? this.checkpointStore ?? NO_CHECKPOINTS;
    this.versions = new Versions(opts.stateDir, Math.max(0, ...Object.values(this.store.positions.journals).map((j) => j.t)));
    this.appliers = Appliers.open({
      roots, stateDir: opts.stateDir, write: opts.write ?? writeSync, log: opts.log,
      snapshots: this.versions, order: this.order, applied: (j) => this.store.positions.journals[j], keep: this.checkpointStore?.keep,
      keepSync: this.checkpointStore === undefined ? undefined : () => this.checkpointStore?.sync(),
    });
    this.staging = new Staging(path.join(opts.stateDir, 'staging'), opts.write);
    this.runningMarker = path.join(opts.stateDir, 'running');
    if (fs.existsSync(this.runningMarker)) {
      const n = this.appliers.cleanUp();
      if (n > 0) opts.log(`previous run stopped uncleanly; removed ${n} temporary file(s) it left`);
    }
    fs.writeFileSync(this.runningMarker, `${process.pid}\n`);
    this.committer = new Committer({
      standby: this.standby, journal: opts.name, log: opts.log, store: this.store, versions: this.versions, summary: this.summary, changed: this.changed,
      order: { forget: () => this.intake.forget() }, staging: () => this.barriers.staging(),
      syncApplied: () => this.syncApplied(), stopPass: () => this.stopPass?.(), caughtUp: () => this.reader?.caughtUp ?? false,
      maxLag: opts.maxStandbyLag, keepBytes: opts.keepStream,
    });
    this.fences = new FenceStore(opts.stateDir);
    this.intake = new Intake({
      stream: opts.stream, verifier: opts.verifier, onBadEntry: opts.onBadEntry, waitsOut: this.policy.waitsOut, log: opts.log,
      store: this.store, sequencer: this.sequencer, barriers: this.barriers, keeper: this.checkpointKeeper,
      commit: () => this.committer.commit(), idle: () => this.committer.idle(), quarantine: new Quarantine(path.join(opts.stateDir, 'quarantine')), fences: this.fences,
      summary: this.summary, changed: this.changed,
      apply: (h, data, streamSeq) => this.applyEntry(h, data, streamSeq),
      doubt: (root, rel, why) => {
        this.versions.doubt(root, rel, why);
        this.summary.inDoubt = this.versions.doubtCount;
        opts.log(`${root === '' ? rel : `${root}/${rel}`} may differ from the primary: ${why}; understudy verify --repair mends it`);
      },
      distrust: (err) => this.committer.distrust(err),
    });
    // A restart while journals were held at a checkpoint: they are held again, at the same cut.
    this.intake.restoreHolds();
  }

  /** Transactions staged and not ended (a promotion sets them aside: none of their entries was applied). */
  unfinished(): UnfinishedTransaction[] {
    return this.barriers.unfinished().map((u) => ({ journal: u.journal, ids: u.ids, entries: u.entries.map((e) => ({ header: e.h, data: e.data })) }));
  }

  /** Positions applied so far, by journal. */
  get positions(): Readonly<Record<string, { e: number; s: number; t: number }>> {
    return this.store.positions.journals;
  }

  /** Runs until the stream is drained (drain mode) or `signal` aborts; throws on the first entry it cannot apply. */
  async run(signal?: AbortSignal): Promise<ReplaySummary> {
    this.open();
    const { opts, policy, committer } = this;
    this.stopping = signal;
    let nc: NatsConnection;
    try {
      nc = await this.connect();
    } catch (err) {
      this.closeState();
      throw err;
    }
    let timer: NodeJS.Timeout | undefined;
    let slotTimer: NodeJS.Timeout | undefined;
    // A failure here is kept with what it was applying, and met again (thrown) by the next message.
    const settleTimer = setInterval(() => void this.intake.settle(Date.now(), false, signal).catch(() => undefined), DEFAULTS.replay.settleEveryMs);
    let cpTimer: NodeJS.Timeout | undefined;
    let metrics: Server | undefined;
    let verify: Subscription | undefined;
    let page: StatusPage | undefined;
    let fenceWatch: FenceWatch | undefined;
    try {
      const source = await JetStreamSource.connect(nc, opts.stream, opts.nats.replicas, this.patiently, opts.log);
      const kv = await this.patiently('open the state bucket', () => openStateKv(nc, opts.stream, opts.nats.replicas));
      committer.kv = kv;
      // A refused publish (no permission) is the connection's error to tell, not the commit's: the bucket's record still reports.
      committer.announce = (name, applied) => {
        try {
          nc.publish(appliedSubject(opts.stream, name), JSON.stringify(applied));
        } catch {
          // Closing: the state bucket's record is what the agents go by.
        }
      };
      this.checkpointStore?.publish();
      // Before the first entry: a promotion of another standby fences the old primary here too.
      fenceWatch = new FenceWatch({ nc, kv, stream: opts.stream, standby: this.standby, journal: opts.name, fences: this.fences, positions: () => this.store.positions.journals, log: opts.log });
      await fenceWatch.start();
      const jsm = await jetstreamManager(nc);
      const slots = this.slotsOf(kv, jsm);
      // A lost standby says so before it applies anything: nothing it does until it is whole is "in sync".
      await slots.round();
      const agents = natsAgents(nc, kv, opts.stream);
      // `understudy verify` compares against this tree while it is being kept up to date.
      verify = serveVerify(nc, verifySubject(opts.stream, this.key), this.roots, () => this.store.positions.journals, opts.log, (n) => {
        const cleared = this.versions.settle(n.roots, n.since, new Set(n.unsettled));
        this.summary.inDoubt = this.versions.doubtCount;
        if (cleared > 0) opts.log(`verify found ${n.roots.join(', ')} equal: ${cleared} object(s) in doubt are settled`);
      });
      timer = setInterval(() => void committer.tryCommit(), opts.commitMs ?? DEFAULTS.replay.commitMs);
      slotTimer = setInterval(() => void slots.round(), DEFAULTS.slots.trimEveryMs);
      // The bytes kept grow with every change after the newest checkpoint: status sees them move.
      cpTimer = this.checkpointStore === undefined ? undefined : setInterval(() => this.checkpointStore?.publish(), DEFAULTS.checkpoints.publishEveryMs);
      metrics = opts.metricsPort === undefined ? undefined : await serveMetrics(opts.metricsPort, opts.metricsHost ?? '127.0.0.1', () => collectMetrics({
        journal: opts.name, summary: this.summary, positions: () => this.store.positions.journals, streamSeq: () => this.store.streamSeq,
        lastCommitAt: () => committer.lastCommitAt, source, agents, kv, standbys: () => standbyRows(jsm, kv, opts.stream),
      }));
      if (opts.httpPort !== undefined) {
        page = await serveStatusPage({ port: opts.httpPort, host: opts.httpHost ?? DEFAULTS.statusPage.host, nc, stream: opts.stream, journal: opts.name, stateDir: opts.stateDir, standby: this.key });
        opts.log(`status page on ${page.url}`);
      }
      const catchUp = new CatchUp({ stream: opts.stream, journal: opts.name, log: opts.log, source, agents, target: this.catchUpTarget() });
      const aborted = (): boolean => signal?.aborted === true;
      for (let round = 0; !aborted(); round++) {
        await this.checkStreamIdentity(source);
        const during = policy.catchUpEveryMs === undefined ? undefined : setInterval(() => void catchUp.run(), policy.catchUpEveryMs);
        try {
          await this.pass(source, signal);
        } catch (err) {
          if (err instanceof StandbyDiskError && policy.waitsOut) {
            await committer.afterDiskFailure(err, signal);
            continue;
          }
          if (!policy.waitsOut || err instanceof UnderstudyError) throw err;
          opts.log(`the stream went away under the replayer (${(err as Error).message}); resuming`);
        } finally {
          clearInterval(during);
        }
        if (aborted()) break;
        if (!(await policy.again(round, { catchUp: () => catchUp.run(), ensure: () => source.ensure(), signal }))) break;
      }
      clearInterval(timer);
      timer = undefined;
      // The stream's end: a checkpoint still waiting for a journal can never be reached from it.
      if (policy.toEnd) await this.intake.settle(Date.now(), true, signal);
      for (const u of policy.toEnd ? this.barriers.staging() : []) {
        opts.log(`journal ${u.journal}: transaction ${u.ids.join(', ')} (begun ${new Date(u.since).toISOString()}) has not ended in the stream: its ${u.entries} entries are staged, none applied`);
      }
      await committer.commit();
      // What a drain applied is trimmed from the stream and the spools as a follower's is.
      await slots.round();
      if (policy.refusesGaps) this.checkNoGaps();
      return this.summary;
    } finally {
      if (timer !== undefined) clearInterval(timer);
      clearInterval(slotTimer);
      clearInterval(settleTimer);
      clearInterval(cpTimer);
      // Whatever was applied is recorded even when we stop on an error; but not after a failed
      // write or fsync, which leaves nothing since the last good commit trustworthy.
      if (committer.distrusted === undefined) await committer.commit().catch(() => undefined);
      await committer.sayStopped();
      metrics?.close();
      await page?.close();
      verify?.unsubscribe();
      fenceWatch?.stop();
      await committer.failurePut;
      this.checkpointStore?.publish();
      await this.checkpointsPut;
      await nc.close();
      this.closeState();
    }
  }

  /** Closes the files under --state and gives up its lock. */
  private closeState(): void {
    // A failing disk may fail these too: said, never thrown over the error that stopped us.
    for (const close of [() => this.store.close(), () => this.versions.close(), () => this.appliers.close(), () => this.checkpointStore?.close()]) {
      try {
        close();
      } catch (err) {
        this.opts.log(`closing the state under ${this.opts.stateDir}: ${(err as Error).message}`);
      }
    }
    fs.rmSync(this.runningMarker, { force: true });
    this.lock?.release();
  }

  /** Leaves what this standby holds of checkpoints in the state bucket (status reads it); reporting only, a put that fails waits for the next. */
  private publishCheckpoints(record: StandbyCheckpoints): void {
    const kv = this.committer?.kv;
    if (kv === undefined) return;
    this.checkpointsPut = this.checkpointsPut.then(() => writeState(kv, 'checkpoints', this.key, record)).catch(() => undefined);
  }

  /** Connects to NATS, waiting for it as `patiently` does: a standby may start before its server. */
  private connect(): Promise<NatsConnection> {
    const name = `understudy-replay${this.opts.name ? ':' + this.opts.name : ''}`;
    return retry(() => connectNats(this.opts.nats, name), {
      say: (err) => this.opts.log(`${err.message}; retrying`),
      firstWaitMs: DEFAULTS.replay.retryMs, until: this.policy.deadline(), signal: this.stopping, retryable: isUnreachable,
    });
  }

  /**
   * Retries `fn`, saying once what it waits for: for a while when draining (then it gives up
   * with the error), for as long as it takes when following (a standby outlives a NATS outage).
   */
  private readonly patiently = <T>(what: string, fn: () => Promise<T>): Promise<T> => retry(fn, {
    say: (err) => this.opts.log(`cannot ${what} yet (${err.message}); retrying`),
    firstWaitMs: DEFAULTS.replay.retryMs, until: this.policy.deadline(), signal: this.stopping,
    retryable: (err) => !(err instanceof UnderstudyError),
  });

  /** One reader over the stream from the recorded position: to its end (drain), or until stopped or broken. */
  private async pass(source: JournalSource, signal?: AbortSignal): Promise<void> {
    const { policy, committer } = this;
    const reader = await source.open({ fromSeq: this.store.streamSeq + 1, journal: this.opts.name, toEnd: policy.toEnd, created: this.store.positions.streamCreated });
    this.reader = reader;
    if (policy.toEnd && reader.caughtUp) return;
    const commit = policy.waitsOut ? () => committer.tryCommit() : () => committer.commit();
    const stop = (): void => reader.stop();
    this.stopPass = stop;
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted === true) stop();
    try {
      let yielded = Date.now();
      for await (const m of reader) {
        await committer.idle();
        if (committer.mustRewind) break;
        await this.intake.take(m, signal);
        if (Date.now() - yielded > DEFAULTS.replay.yieldMs) {
          // Let timers and replies in (the commit's KV put), or they wait for the buffer to run dry.
          await new Promise((resolve) => setImmediate(resolve));
          yielded = Date.now();
        }
        if (m.pending === 0 && reader.buffered === 0) {
          // Caught up: commit now rather than at the next tick, so strong-mode writers wait less;
          // what came in during the last commit is applied first, and committed with this (group commit).
          // Following, the next entry waits only for the commit's fsyncs, not for its report.
          if (policy.waitsOut) void commit();
          else await commit();
          await committer.idle();
          // A message's pending count can read 0 while more is stored (seen after a cluster
          // leader change): before a drain stops, the stream is asked again.
          if (committer.mustRewind) break;
          if (policy.toEnd && (await reader.remaining()) === 0) break;
        }
      }
      await committer.idle();
      const rewind = committer.takeRewind();
      if (rewind !== undefined) throw rewind;
    } finally {
      this.stopPass = undefined;
      signal?.removeEventListener('abort', stop);
      reader.stop();
    }
  }

  /** A stream deleted and made again numbers from 1: the recorded stream position no longer means anything. */
  private async checkStreamIdentity(source: JournalSource): Promise<void> {
    const info = await this.patiently('read the stream', () => source.info());
    const known = this.store.positions.streamCreated;
    if (known !== undefined && known !== info.created) {
      this.opts.log(`stream ${this.opts.stream} was made again (${info.created}); reading it from the start, skipping what was applied`);
      this.store.restartStream();
      this.intake.streamRestarted();
    }
    this.store.positions.streamCreated = info.created;
  }

  /** The slot rounds of this standby: its own lost mark and rebase first, then judging and trimming for all. */
  private slotsOf(kv: KV, jsm: JetStreamManager): { round: () => Promise<void> } {
    const { opts } = this;
    const LOST = 'this standby was lost';
    const recovery = new Recovery({
      key: this.key, kv, log: opts.log,
      doubt: (why) => {
        this.versions.doubt('', LOST, why);
        this.summary.inDoubt = this.versions.doubtCount;
      },
      whole: () => {
        this.versions.undoubt('', LOST);
        this.summary.inDoubt = this.versions.doubtCount;
      },
      doubtsSince: (at) => this.versions.inDoubt().filter((d) => d.at >= at && d.path !== LOST).length,
      positions: () => this.store.positions.journals,
    });
    const slots = new Slots({ key: this.key, stream: opts.stream, kv, jsm, log: opts.log });
    let failing: string | undefined;
    let running = false;
    return {
      round: async () => {
        if (running) return;
        running = true;
        try {
          const report = await slots.round();
          if (report !== undefined) await recovery.check(report.stream.journals);
          failing = undefined;
        } catch (err) {
          // Trimming waits for the next round; applying never waits for it.
          const why = (err as Error).message;
          if (failing !== why) opts.log(`cannot look after this standby's slot (${why}); trying again in ${DEFAULTS.slots.trimEveryMs / 1000} s`);
          failing = why;
        } finally {
          running = false;
        }
      },
    };
  }

  /** What catch-up reads of this standby, and how it passes entries that can never come. */
  private catchUpTarget(): CatchUpTarget {
    return {
      // Where each journal was taken to: entries held at a checkpoint or staged are in the stream, not missing.
      positions: () => this.takenPositions(),
      gap: (name) => this.sequencer.gap(name),
      caughtUp: () => this.reader?.caughtUp ?? false,
      skipTo: (name, pos) => {
        this.store.record(name, { e: pos.e, s: pos.s, t: this.store.positions.journals[name]?.t ?? 0 }, this.store.streamSeq);
        this.changed.add(name);
      },
      lacks: (name, why) => {
        this.versions.doubt('', `journal ${name}`, why);
        this.summary.inDoubt = this.versions.doubtCount;
        this.intake.release(name, this.summary.streamSeq, this.summary.streamSeq);
        void this.intake.settle(Date.now()).catch(() => undefined);
      },
      lost: (why) => {
        // A rebase, asked at the next slot round, heals it.
        const kv = this.committer.kv;
        if (kv !== undefined) void markLost(kv, { standby: this.key, since: Date.now(), reason: `entries it needs are gone: ${why}`, by: this.key, streamSeq: this.store.streamSeq }).catch(() => undefined);
      },
    };
  }

  /** The applied position of each journal, or the last entry the order took of it (held or staged) when that is further. */
  private takenPositions(): Record<string, JournalPos> {
    const out: Record<string, JournalPos> = { ...this.store.positions.journals };
    for (const name of Object.keys(out)) {
      const t = this.barriers.taken(name);
      if (t !== undefined && (t.e > out[name].e || (t.e === out[name].e && t.s > out[name].s))) out[name] = { ...t, t: out[name].t };
    }
    return out;
  }

  /** Applies one entry that is next in its journal through the appliers; BadEntryError when refused, ApplyError when it failed. */
  private applyEntry(h: EntryHeader, data: Buffer, streamSeq: number): void {
    const what = `entry ${positionLabel(h)} (${h.op} ${h.r}/${h.p}, stream message ${streamSeq})`;
    try {
      const broken = this.sequencer.checkChunk(h);
      if (broken !== undefined) throw new BadEntryError(broken);
      // Checkpoints and transactions are the order's: they change no object, and no applier takes them.
      if (CONTROL_OPS.has(h.op)) return;
      let source: Data | undefined = { buf: data };
      if (h.c !== undefined) {
        const file = this.staging.add(h, data);
        source = file === undefined ? undefined : { file };
      }
      if (source !== undefined) this.applyChange(h, source);
    } catch (err) {
      if (err instanceof BadEntryError || err instanceof ConfinementError || err instanceof DecodeError) {
        throw new BadEntryError(`${what} refused: ${err.message}`, { cause: err });
      }
      const why = err instanceof UnderstudyError ? err.message : `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim();
      throw new ApplyError(`${what} failed: ${why}`, { cause: err });
    }
  }

  /** Applies a whole change with the applier that takes it; a stale snapshot or a superseded change is counted, not applied. */
  private applyChange(h: EntryHeader, source: Data): void {
    const outcome = this.appliers.apply(h, source);
    if (outcome === 'stale') this.summary.stale++;
    else if (outcome === 'superseded') this.summary.superseded++;
  }

  /** Where a file change stands against other journals' changes to its object: the fs applier asks before applying, and tells after. */
  private readonly order: ChangeOrder = {
    place: (h) => this.versions.place(h),
    applied: (h, verdict, found) => {
      this.versions.note(h);
      const doubts = [
        ...(verdict === 'doubt' ? [{ r: h.r, p: h.p, why: `${positionLabel(h)} (${h.op}) arrived after a later change to it from another journal` }] : []),
        // Applied again after going back to the last good commit, an entry meets what its journal's later entries made.
        ...(found === undefined || this.store.appliedBefore(h.j, h) ? [] : [found]),
      ];
      for (const d of doubts) {
        this.versions.doubt(d.r, d.p, d.why);
        this.opts.log(`${d.r}/${d.p} may differ from the primary: ${d.why}; understudy verify --repair mends it`);
      }
      this.summary.inDoubt = this.versions.doubtCount;
    },
  };

  /** fsyncs what the appliers wrote since the last commit (the commit then records the positions). */
  private async syncApplied(): Promise<void> {
    await this.appliers.sync();
    this.versions.sync();
  }

  /** A drain must not end with entries missing: they are held, and their agents could not resend them. */
  private checkNoGaps(): void {
    const gap = this.sequencer.gaps()[0];
    if (gap !== undefined) throw new ApplyError(`journal ${gap.journal}: entries ${gap.from}..${gap.to} are missing from the stream; ${gap.held} later entries wait for them`);
  }
}
