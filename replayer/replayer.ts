import './threadpool';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamManager, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { decodeEntry } from '../lib/codec';
import { lastEntry, splitMessage } from '../lib/batch';
import { comparePosition, positionLabel, type EntryHeader } from '../lib/entry';
import { ApplyError, BadEntryError, ConfinementError, DecodeError, SettingsError, UnderstudyError } from '../lib/errors';
import { SIGNATURE_HEADER, type Verifier } from '../lib/signing';
import { Quarantine } from './quarantine';
import { FenceStore } from './fence';
import { serveMetrics, type Metric } from './metrics';
import type { Server } from 'node:http';
import type { JournalPos } from './state';
import { connectNats, ensureStream, formatBytes, isUnreachable, listKeys, openStateKv } from '../lib/nats';
import { isInside, type Root } from '../lib/roots';
import { standbyName, type NatsSettings } from '../lib/settings';
import type { OriginState } from '../lib/spool';
import { allJournalsSubject, journalSubject, resendSubject, type ResendReply, type ResendRequest } from '../lib/subjects';
import { parseStateKey, readState, writeState, type AgentHeartbeat, type BaselineReport, type DoubtsReport, type VerifyReport } from '../lib/state-bucket';
import type { ChangeOrder, Data } from './apply/applier';
import { Appliers } from './apply/registry';
import { Staging } from './staging';
import { PositionStore } from './state';
import { Versions } from './versions';
import { serveVerify } from './verify-server';
import { writeSync, type WriteFn } from './write';
import { lockState, type StateLock } from './state-lock';
import { isDiskFailure, StandbyDiskError } from './disk-error';
import { retry } from '../lib/retry';

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
  /** How often applied positions are made durable and reported (ms). */
  commitMs?: number;
  /** When set, every entry must carry a signature one of these keys verifies. */
  verifier?: Verifier;
  /** What to do with an entry that is quarantined: stop (default) or go on without it. */
  onBadEntry?: 'halt' | 'skip';
  /** Serve Prometheus metrics on this port while running. */
  metricsPort?: number;
  metricsHost?: string;
  /** How much of all journals may be held while waiting for missing entries (default 10,000 entries per journal, 256 MiB). */
  maxHeld?: { entries: number; bytes: number };
  /** The write(2) the replayer's files go through (a test injects a full disk here). */
  write?: WriteFn;
  /** The caller holds the lock of `stateDir` (promote); otherwise the replayer takes it. */
  stateLocked?: boolean;
}

export interface ReplaySummary {
  applied: number;
  duplicates: number;
  /** Bad entries quarantined and passed over (--on-bad-entry=skip). */
  skipped: number;
  /** Snapshots (baseline, watch, repair) not applied because the standby had a newer version. */
  stale: number;
  /** Entries another journal's later change had made irrelevant when they arrived (host order, EntryHead.o). */
  superseded: number;
  /** Objects the standby cannot be sure equal the primary's: changed by several journals in an order it could not reproduce. */
  inDoubt: number;
  streamSeq: number;
}

/** This standby's name in the state bucket. */
const STANDBY = standbyName();

/**
 * The range the agent's heartbeat reports lost from its spool before it was shipped (see
 * agent/spool-gap) that holds `seq`, if any.
 */
function knownLost(heartbeat: AgentHeartbeat | undefined, seq: number): { from: number; to: number } | undefined {
  return heartbeat?.lost?.find((l) => Number.isSafeInteger(l.from) && Number.isSafeInteger(l.to) && l.from <= seq && seq <= l.to);
}

/** How much of a journal is held while waiting for a missing entry, at most: memory stays bounded. */
const MAX_HELD = { entries: 10_000, bytes: 256 * 1024 * 1024 };
/** Messages the consumer asks the server for at a time: at most ~28 MiB buffered. */
export const CONSUME_MESSAGES = 32;

/** Where an entry came from: its stream message and, in a batch, its index there (for the quarantine). */
interface Place { seq: number; subject: string; part?: number }
/** A verified entry: header, data, its raw bytes, and where it came from. */
interface Held { h: EntryHeader; data: Buffer; raw: Buffer; at: Place }

/**
 * The standby's consumer loop: reads the stream in order from the recorded
 * position, verifies each entry, applies it exactly once, and records where it is.
 */
export class Replayer {
  private store!: PositionStore;
  private roots!: ReadonlyMap<string, string>;
  private versions!: Versions;
  /** What was last said of the doubts in the state bucket. */
  private doubtsSaid = '';
  private appliers!: Appliers;
  private staging!: Staging;
  private readonly held = new Map<string, Map<number, Held>>();
  private readonly changed = new Set<string>();
  private summary: ReplaySummary = { applied: 0, duplicates: 0, skipped: 0, stale: 0, superseded: 0, inDoubt: 0, streamSeq: 0 };
  private heldBytes = 0;
  private quarantine!: Quarantine;
  private fences!: FenceStore;
  /** Per journal, the chunked entry being staged: the next chunk must follow it directly. */
  private readonly openChunks = new Map<string, { first: number; next: number; n: number }>();
  private runningMarker!: string;
  private committing: Promise<void> = Promise.resolve();
  private stopping: AbortSignal | undefined;
  private lastCommitAt = 0;
  /** Whether the last message read was the stream's last: only then can "behind the agent" mean "missing". */
  private caughtUp = false;
  private catchingUp = false;
  private readonly maxHeld: { entries: number; bytes: number };
  private readonly lock: StateLock | undefined;
  /** Set when a write or fsync failed since the last good commit: nothing since it may be committed. */
  private distrusted: StandbyDiskError | undefined;
  /** A commit failed on the disk while the consumer ran: it must start again from the last good commit. */
  private rewind: StandbyDiskError | undefined;
  /** Stops the consumer of the running pass. */
  private stopPass: (() => void) | undefined;
  /** Entries applied as of the last good commit (a rollback applies the later ones again). */
  private appliedAtCommit = 0;
  private lastDiskFailure: string | undefined;
  private kv: KV | undefined;
  /** The put that tells `understudy status` the standby's disk failed (awaited before disconnecting). */
  private failurePut: Promise<void> = Promise.resolve();
  /** Journals published as failing, to be published again without the mark once a commit succeeds. */
  private failingJournals: string[] = [];

  constructor(private readonly opts: ReplayOptions) {
    this.maxHeld = opts.maxHeld ?? MAX_HELD;
    checkStateApart(opts.stateDir, opts.roots);
    // Before anything under --state or the roots is touched: a second replayer must not even
    // clean up "leftovers" that are the live one's temporary files.
    this.lock = opts.stateLocked === true ? undefined : lockState(opts.stateDir, 'replay');
    try {
      this.open(opts);
    } catch (err) {
      this.lock?.release();
      throw err;
    }
  }

  private open(opts: ReplayOptions): void {
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
    this.versions = new Versions(opts.stateDir, Math.max(0, ...Object.values(this.store.positions.journals).map((j) => j.t)));
    this.appliers = Appliers.open({
      roots, stateDir: opts.stateDir, write: opts.write ?? writeSync, log: opts.log,
      snapshots: this.versions, order: this.order, applied: (j) => this.store.positions.journals[j],
    });
    this.staging = new Staging(path.join(opts.stateDir, 'staging'), opts.write);
    this.runningMarker = path.join(opts.stateDir, 'running');
    this.quarantine = new Quarantine(path.join(opts.stateDir, 'quarantine'));
    this.fences = new FenceStore(opts.stateDir);
    if (fs.existsSync(this.runningMarker)) {
      const n = this.appliers.cleanUp();
      if (n > 0) opts.log(`previous run stopped uncleanly; removed ${n} temporary file(s) it left`);
    }
    fs.writeFileSync(this.runningMarker, `${process.pid}\n`);
  }

  /** Positions applied so far, by journal. */
  get positions(): Readonly<Record<string, { e: number; s: number; t: number }>> {
    return this.store.positions.journals;
  }

  /** Runs until the stream is drained (drain mode) or `signal` aborts; throws on the first entry it cannot apply. */
  async run(signal?: AbortSignal): Promise<ReplaySummary> {
    const { opts } = this;
    this.stopping = signal;
    let nc: NatsConnection;
    try {
      nc = await this.connect();
    } catch (err) {
      this.closeState();
      throw err;
    }
    let kv: KV | undefined;
    let timer: NodeJS.Timeout | undefined;
    let metrics: Server | undefined;
    let verify: Subscription | undefined;
    const commit = (): Promise<void> => {
      // One commit at a time, and no entry applied while one runs: what it makes durable and
      // then reports as applied is exactly what was applied when it began.
      const next = this.committing.then(() => this.commit(kv));
      this.committing = next.catch(() => undefined);
      return next;
    };
    // A commit that fails while following (a full disk under --state) is tried again at the
    // next tick, said once; nothing it covers is reported applied until it succeeds.
    let commitFailing = false;
    const tryCommit = (): Promise<void> => commit().then(() => {
      if (commitFailing) opts.log('applied positions are recorded again');
      commitFailing = false;
    }, (err: Error) => {
      if (err instanceof StandbyDiskError) return; // the consumer applies again from the last good commit
      if (!commitFailing) opts.log(`cannot record the applied positions (${err.message}); retrying`);
      commitFailing = true;
    });
    try {
      // JetStream may be electing a leader (a cluster that just lost a node): give it time.
      const jsm = await this.patiently('reach JetStream', () => jetstreamManager(nc));
      await this.patiently(`open stream ${opts.stream}`, () => ensureStream(jsm, opts.stream, opts.nats.replicas, (bytes) => opts.log(`stream ${opts.stream} created with max_bytes ${formatBytes(bytes)}: the server's JetStream storage is smaller than the default`)));
      kv = await this.patiently('open the state bucket', () => openStateKv(nc, opts.stream, opts.nats.replicas));
      this.kv = kv;
      // `understudy verify` compares against this tree while it is being kept up to date.
      verify = serveVerify(nc, opts.stream, this.roots, () => this.store.positions.journals, opts.log, (n) => {
        const cleared = this.versions.settle(n.roots, n.since, new Set(n.unsettled));
        this.summary.inDoubt = this.versions.doubtCount;
        if (cleared > 0) opts.log(`verify found ${n.roots.join(', ')} equal: ${cleared} object(s) in doubt are settled`);
      });
      timer = setInterval(() => void tryCommit(), opts.commitMs ?? 100);
      const stateKv = kv;
      metrics = opts.metricsPort === undefined ? undefined : await serveMetrics(opts.metricsPort, opts.metricsHost ?? '127.0.0.1', () => this.collectMetrics(stateKv, jsm));
      const aborted = (): boolean => signal?.aborted === true;
      for (let round = 0; !aborted(); round++) {
        await this.checkStreamIdentity(jsm);
        const catchUp = opts.drain ? undefined : setInterval(() => void this.catchUp(nc, jsm, kv), 2000);
        try {
          await this.pass(nc, jsm, opts.drain ? commit : tryCommit, signal);
        } catch (err) {
          if (err instanceof StandbyDiskError && !opts.drain) {
            await this.afterDiskFailure(err, signal);
            continue;
          }
          if (opts.drain || err instanceof UnderstudyError) throw err;
          opts.log(`the stream went away under the replayer (${(err as Error).message}); resuming`);
        } finally {
          clearInterval(catchUp);
        }
        if (aborted()) break;
        if (opts.drain) {
          // An empty fetch is not "caught up": the agents may have shipped more than the stream still holds.
          if (round < 5 && (await this.catchUp(nc, jsm, kv))) continue;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
        await ensureStream(jsm, opts.stream, opts.nats.replicas).catch(() => undefined);
      }
      clearInterval(timer);
      timer = undefined;
      await commit();
      if (opts.drain) this.checkNoGaps();
      return this.summary;
    } finally {
      if (timer !== undefined) clearInterval(timer);
      // Whatever was applied is recorded even when we stop on an error; but not after a failed
      // write or fsync, which leaves nothing since the last good commit trustworthy.
      if (this.distrusted === undefined) await commit().catch(() => undefined);
      metrics?.close();
      verify?.unsubscribe();
      await this.failurePut;
      await nc.close();
      this.closeState();
    }
  }

  /** Closes the files under --state and gives up its lock. */
  private closeState(): void {
    // A failing disk may fail these too: said, never thrown over the error that stopped us.
    for (const close of [() => this.store.close(), () => this.versions.close(), () => this.appliers.close()]) {
      try {
        close();
      } catch (err) {
        this.opts.log(`closing the state under ${this.opts.stateDir}: ${(err as Error).message}`);
      }
    }
    fs.rmSync(this.runningMarker, { force: true });
    this.lock?.release();
  }

  /** Connects to NATS, waiting for it as `patiently` does: a standby may start before its server. */
  private connect(): Promise<NatsConnection> {
    const name = `understudy-replay${this.opts.name ? ':' + this.opts.name : ''}`;
    return retry(() => connectNats(this.opts.nats, name), {
      say: (err) => this.opts.log(`${err.message}; retrying`),
      until: this.opts.drain ? Date.now() + 30_000 : undefined, signal: this.stopping, retryable: isUnreachable,
    });
  }

  /**
   * Retries `fn`, saying once what it waits for: for up to 30 s when draining (then it gives up
   * with the error), for as long as it takes when following (a standby outlives a NATS outage).
   */
  private patiently<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return retry(fn, {
      say: (err) => this.opts.log(`cannot ${what} yet (${err.message}); retrying`),
      until: this.opts.drain ? Date.now() + 30_000 : undefined, signal: this.stopping,
      retryable: (err) => !(err instanceof UnderstudyError),
    });
  }

  /** One consumer over the stream from the recorded position: to its end (drain), or until stopped or broken. */
  private async pass(nc: NatsConnection, jsm: JetStreamManager, commit: () => Promise<void>, signal?: AbortSignal): Promise<void> {
    const { opts } = this;
    const consumer = await this.patiently('start a consumer', () => jetstream(nc).consumers.get(opts.stream, {
      filter_subjects: opts.name === undefined ? allJournalsSubject(opts.stream) : journalSubject(opts.stream, opts.name),
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: this.store.streamSeq + 1,
    }));
    this.caughtUp = (await this.patiently('read the consumer', () => consumer.info(true))).num_pending === 0;
    if (opts.drain && this.caughtUp) return;
    // A message can carry 900 KiB of batched entries: few messages at a time keep the client's
    // buffer under its 64 MiB pending limit (past it the server cuts it off as a slow consumer).
    // Not max_bytes: a pull with a few bytes left meets a larger message and is refused (409).
    const messages = await consumer.consume({ max_messages: CONSUME_MESSAGES });
    const stop = (): void => void messages.stop();
    this.stopPass = stop;
    signal?.addEventListener('abort', stop, { once: true });
    if (signal?.aborted === true) stop();
    // An ordered consumer on a deleted stream waits for ever; notice, and start over on the new stream.
    // A drain that has read the stream's last message stops, even when a message's pending count
    // said more was coming (seen on nats-server 2.9.10 when an ordered consumer was re-created
    // under load: it waited for ever for a message that did not exist).
    let lastMessageAt = Date.now();
    const watchdog = setInterval(() => {
      if (!opts.drain) {
        jsm.streams.info(opts.stream).then((i) => {
          if (i.created !== this.store.positions.streamCreated) stop();
          else if (opts.name === undefined && Date.now() - lastMessageAt >= 1000 && i.state.last_seq <= this.summary.streamSeq) this.caughtUp = true;
        }, stop);
      } else if (Date.now() - lastMessageAt >= 1000) {
        this.lastOfStream(jsm).then((last) => last <= this.summary.streamSeq && stop(), () => undefined);
      }
    }, opts.drain ? 1000 : 2000);
    try {
      let yielded = Date.now();
      for await (const m of messages) {
        lastMessageAt = Date.now();
        await this.committing;
        if (this.rewind !== undefined) break;
        await this.handleWaitingForSpace(m, signal);
        if (Date.now() - yielded > 50) {
          // Let timers and replies in (the commit's KV put), or they wait for the buffer to run dry.
          await new Promise((resolve) => setImmediate(resolve));
          yielded = Date.now();
        }
        this.caughtUp = m.info.pending === 0;
        if (m.info.pending === 0) {
          // Caught up: commit now rather than at the next tick, so strong-mode writers wait less.
          await commit();
          // A message's pending count can read 0 while more is stored (seen after a cluster
          // leader change): before a drain stops, the server is asked again.
          if (this.rewind !== undefined) break;
          if (opts.drain && (await this.patiently('read the consumer', () => consumer.info(false))).num_pending === 0) break;
        }
      }
      await this.committing;
      const rewind = this.rewind;
      this.rewind = undefined;
      if (rewind !== undefined) throw rewind;
    } finally {
      this.stopPass = undefined;
      clearInterval(watchdog);
      signal?.removeEventListener('abort', stop);
      messages.stop();
    }
  }

  /** Stream sequence of the last message this replayer reads (of its journal, with --name). */
  private async lastOfStream(jsm: JetStreamManager): Promise<number> {
    if (this.opts.name === undefined) return (await jsm.streams.info(this.opts.stream)).state.last_seq;
    const last = await jsm.streams.getMessage(this.opts.stream, { last_by_subj: journalSubject(this.opts.stream, this.opts.name) }).catch(() => null);
    return last?.seq ?? 0;
  }

  /** A stream deleted and made again numbers from 1: the recorded stream position no longer means anything. */
  private async checkStreamIdentity(jsm: JetStreamManager): Promise<void> {
    const info = await this.patiently('read the stream', () => jsm.streams.info(this.opts.stream));
    const known = this.store.positions.streamCreated;
    if (known !== undefined && known !== info.created) {
      this.opts.log(`stream ${this.opts.stream} was made again (${info.created}); reading it from the start, skipping what was applied`);
      this.store.restartStream();
    }
    this.store.positions.streamCreated = info.created;
  }

  /**
   * Pull catch-up: compares each journal's applied position with what its agent
   * last reported acknowledged (and with entries held after a hole); asks the
   * agent to resend what the stream lacks. True when anything was resent.
   */
  /**
   * Asks agents to resend what is missing from the stream: entries held behind a gap, or
   * entries an agent had acknowledged that the stream no longer holds (purged, a server
   * that lost its store). Never what is merely still ahead of us in the stream: a lagging
   * replayer asking for that would have it published again and fall further behind.
   */
  private async catchUp(nc: NatsConnection, jsm: JetStreamManager, kv: KV | undefined): Promise<boolean> {
    if (kv === undefined || this.catchingUp) return false;
    this.catchingUp = true;
    try {
      return await this.askForMissing(nc, jsm, kv);
    } finally {
      this.catchingUp = false;
    }
  }

  private async askForMissing(nc: NatsConnection, jsm: JetStreamManager, kv: KV): Promise<boolean> {
    let any = false;
    const names = new Set<string>(Object.keys(this.store.positions.journals));
    for (const k of await listKeys(kv, 'agent.*')) names.add(k.slice('agent.'.length));
    for (const name of names) {
      if (this.opts.name !== undefined && name !== this.opts.name) continue;
      const beat = await readState(kv, 'agent', name);
      const acked = beat?.acked;
      const pos = this.store.positions.journals[name];
      const held = this.held.get(name);
      const firstHeld = held !== undefined && held.size > 0 ? Math.min(...held.keys()) : undefined;
      let from = (pos?.s ?? 0) + 1;
      let to: number;
      if (firstHeld !== undefined) to = firstHeld - 1;
      // Behind the agent while the stream still has messages for us is lag, not loss.
      else if (!this.caughtUp) continue;
      else if (acked !== undefined && acked.seq > 0 && (pos === undefined || comparePosition({ e: acked.epoch, s: acked.seq }, pos) > 0)) {
        if (await this.streamHolds(jsm, name, { e: acked.epoch, s: acked.seq })) continue;
        to = acked.seq;
      } else continue;
      if (pos !== undefined && acked !== undefined && acked.epoch > pos.e && acked.seq < from) from = 1; // numbering began again
      if (to < from) continue;
      const origin = beat?.origin;
      if (origin !== undefined && from < origin.seq && (await this.isThisStream(jsm, origin))) {
        this.passOrigin(name, from, origin);
        any = true;
        continue;
      }
      const lost = knownLost(beat, from);
      if (lost !== undefined) {
        // Its agent said these are gone from its spool: asking it (or waiting for it) cannot bring them.
        this.passGone(name, from, { e: firstHeld === undefined ? pos?.e ?? 0 : held!.get(firstHeld)!.h.e, s: lost.to + 1 });
        any = true;
        continue;
      }
      try {
        const reply = await nc.request(resendSubject(this.opts.stream, name), JSON.stringify({ from, to } satisfies ResendRequest), { timeout: 5000 });
        const r = JSON.parse(reply.string()) as ResendReply;
        if (r.error !== undefined) this.opts.log(`journal ${name}: entries ${from}..${to} are missing from the stream and its agent cannot resend them: ${r.error}`);
        else this.opts.log(`journal ${name}: entries ${from}..${to} were missing from the stream; the agent resent ${r.resent}`);
        if (r.oldest !== undefined && r.error === undefined) this.passGone(name, from, r.oldest);
        any ||= r.resent > 0;
      } catch (err) {
        this.opts.log(`journal ${name}: entries ${from}..${to} are missing from the stream and its agent does not answer (${(err as Error).message})`);
      }
    }
    return any;
  }

  /**
   * Entries `from`..oldest-1 are in neither the stream nor the agent's spool: they can never
   * come, and waiting for them would stop this journal for good. Said loudly, and the journal
   * goes on from the agent's oldest entry (resent with the reply); `verify --repair` mends
   * what the standby lacks.
   */
  private passGone(name: string, from: number, oldest: { e: number; s: number }): void {
    const pos = this.store.positions.journals[name];
    if (!Number.isSafeInteger(oldest.e) || !Number.isSafeInteger(oldest.s) || oldest.s <= from) return;
    if (pos !== undefined && pos.s >= oldest.s - 1) return; // applied meanwhile
    this.opts.log(`journal ${name}: entries ${from}..${oldest.s - 1} are gone: neither the stream nor its agent's spool (which begins at ${oldest.s}) holds them; this standby lacks them until \`understudy verify --repair\` runs on the primary`);
    this.store.record(name, { e: oldest.e, s: oldest.s - 1, t: pos?.t ?? 0 }, this.store.streamSeq);
    this.changed.add(name);
  }

  /** Whether the agent's word on where its history begins is about the stream we read (not one deleted since). */
  private async isThisStream(jsm: JetStreamManager, origin: OriginState): Promise<boolean> {
    if (origin.stream !== this.opts.stream) return false;
    const info = await jsm.streams.info(this.opts.stream).catch(() => undefined);
    return info !== undefined && info.created === origin.created;
  }

  /**
   * Entries `from`..origin-1 went to a stream before this one (a new server, a stream deleted
   * and made again): they will never be in it. Waiting for them would stop this journal for
   * good, so it goes on from where its history here begins, and the standby says that it
   * lacks them and needs a baseline, in status too, until one is taken.
   */
  private passOrigin(name: string, from: number, origin: OriginState): void {
    const why = `journal ${name}'s entries ${from}..${origin.seq - 1} went to an earlier stream ${origin.stream}, before the one created ${origin.created}; this standby never applied them: run \`understudy baseline\` on the primary`;
    this.opts.log(why);
    const pos = this.store.positions.journals[name];
    this.store.record(name, { e: origin.epoch, s: origin.seq - 1, t: pos?.t ?? 0 }, this.store.streamSeq);
    this.changed.add(name);
    this.versions.doubt('', `journal ${name}`, why);
    this.summary.inDoubt = this.versions.doubtCount;
    this.releaseHeld(name, this.summary.streamSeq, this.summary.streamSeq);
  }

  /** Whether the stream's last message of journal `name` reaches `pos`: then nothing before it is lost. */
  private async streamHolds(jsm: JetStreamManager, name: string, pos: { e: number; s: number }): Promise<boolean> {
    const last = await jsm.streams.getMessage(this.opts.stream, { last_by_subj: journalSubject(this.opts.stream, name) }).catch(() => null);
    if (last === null) return false;
    try {
      return comparePosition(decodeEntry(lastEntry(last.data)).header, pos) >= 0;
    } catch {
      return false; // unreadable: the replayer quarantines it when it gets there; asking costs a resend at most
    }
  }

  /**
   * A full standby disk stops applying with a clear error; when following (not draining)
   * the replayer retries the same entry until space is freed, so nothing is lost.
   */
  private async handleWaitingForSpace(m: JsMsg, signal?: AbortSignal): Promise<void> {
    for (let said = false; ; said = true) {
      try {
        this.handle(m);
        if (said) this.opts.log('space is available again; applying resumed');
        return;
      } catch (err) {
        if (isDiskFailure(err)) throw this.distrust(err);
        if (this.opts.drain || !isOutOfSpace(err) || signal?.aborted === true) throw err;
        if (!said) this.opts.log(`${(err as Error).message}; waiting for space on the standby, retrying every second`);
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  private handle(m: JsMsg): void {
    try {
      this.accept(m);
    } catch (err) {
      if (!(err instanceof BadEntryError)) throw err;
      const where = this.quarantine.put(m.seq, m.subject, m.data, err.message);
      if (this.opts.onBadEntry !== 'skip') throw new BadEntryError(`${err.message}; quarantined in ${where}; stopping (--on-bad-entry=skip passes over such entries)`);
      this.opts.log(`skipped: ${err.message}; quarantined in ${where}`);
      this.passOver(m);
    }
  }

  /** Verifies, decodes and applies one stream message; BadEntryError for anything wrong with the entry itself. */
  private accept(m: JsMsg): void {
    const bad = (why: string): never => {
      throw new BadEntryError(`stream message ${m.seq} (${m.subject}): ${why}`);
    };
    if (this.opts.verifier !== undefined) {
      const why = this.opts.verifier.check(m.data, m.headers?.get(SIGNATURE_HEADER));
      if (why !== undefined) bad(why);
    }
    let parts: Buffer[];
    try {
      parts = splitMessage(m.data);
    } catch (err) {
      return bad((err as Error).message);
    }
    // Until its last entry is applied, a message is not behind us: a restart reads it again.
    for (let i = 0; i < parts.length; i++) {
      const at: Place = { seq: m.seq, subject: m.subject, part: parts.length > 1 ? i : undefined };
      this.acceptEntry(m, parts[i], at, i === parts.length - 1 ? m.seq : m.seq - 1, bad);
    }
  }

  /** One entry of message `m`; `resumeSeq` is the stream position to record once it is applied. */
  private acceptEntry(m: JsMsg, raw: Buffer, at: Place, resumeSeq: number, bad: (why: string) => never): void {
    let h: EntryHeader;
    let data: Buffer;
    try {
      ({ header: h, data } = decodeEntry(raw));
    } catch (err) {
      return bad((err as Error).message);
    }
    // A journal speaks only on its own subject; a header claiming another journal is refused.
    if (m.subject !== journalSubject(this.opts.stream, h.j)) bad(`entry of journal "${h.j}" arrived on another journal's subject`);
    const fenced = this.fences.check(h);
    if (fenced !== undefined) bad(fenced);
    this.summary.streamSeq = m.seq;
    const pos = this.store.positions.journals[h.j];
    if (pos !== undefined && comparePosition(h, pos) <= 0) {
      this.summary.duplicates++;
      if (!this.holding()) this.store.skip(resumeSeq);
      return;
    }
    // An earlier entry is missing; it may still come (a re-publish after a failed ack, a resend).
    // A journal this standby has never seen begins at 1: one that begins later lost its start
    // (a server that lost what it had not flushed, a purged stream), and is pulled from the agent.
    if (h.s > (pos?.s ?? 0) + 1) {
      this.hold({ h, data, raw, at });
      return;
    }
    if (pos !== undefined && h.s <= pos.s) {
      this.opts.log(`journal ${h.j}: epoch ${h.e} restarts numbering at ${h.s} after ${positionLabel(pos)} (its spool was lost or replaced)`);
    }
    this.applyVerified({ h, data, raw, at }, m.seq, resumeSeq);
    // A copy held before a gap was passed (entries gone): read again from the stream, it is applied now.
    const queue = this.held.get(h.j);
    const stale = queue?.get(h.s);
    if (stale !== undefined) {
      queue!.delete(h.s);
      this.heldBytes -= stale.data.length;
    }
    this.releaseHeld(h.j, m.seq, resumeSeq);
  }

  /** Applies the entries of journal `name` held behind a hole that is now closed. */
  private releaseHeld(name: string, streamSeq: number, resumeSeq: number): void {
    const queue = this.held.get(name);
    while (queue !== undefined && queue.size > 0) {
      const next = queue.get(this.store.positions.journals[name].s + 1);
      if (next === undefined) break;
      queue.delete(next.h.s);
      this.heldBytes -= next.data.length;
      this.applyVerified(next, streamSeq, resumeSeq);
    }
  }

  /**
   * Applies an entry that decoded, verified and belongs to its journal. In skip mode, one
   * refused after that (a path outside the roots, an operation this tree cannot take) is
   * quarantined on its own and its place in the journal passed: it is authentic, so its
   * position can be trusted, and the entries after it in the same message still apply.
   */
  private applyVerified(e: Held, streamSeq: number, resumeSeq: number): void {
    let applied = true;
    try {
      this.applyOne(e.h, e.data, streamSeq);
    } catch (err) {
      if (this.opts.onBadEntry !== 'skip' || !isPassable(err)) throw err;
      const where = this.quarantine.put(e.at.seq, e.at.subject, e.raw, (err as Error).message, e.at.part);
      this.opts.log(`skipped: ${(err as Error).message}; quarantined in ${where}`);
      this.summary.skipped++;
      applied = false;
    }
    this.done(e.h, resumeSeq);
    // Counted once recorded: an entry applied again after its position could not be written is one entry.
    if (applied) this.summary.applied++;
  }

  private applyOne(h: EntryHeader, data: Buffer, streamSeq: number): void {
    const what = `entry ${positionLabel(h)} (${h.op} ${h.r}/${h.p}, stream message ${streamSeq})`;
    try {
      this.checkChunkOrder(h);
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

  /** Records that the journal is past `h`. */
  private done(h: EntryHeader, resumeSeq: number): void {
    // While entries are held, resuming must start before them: the stream position stays put.
    this.store.record(h.j, { e: h.e, s: h.s, t: h.t }, this.holding() ? this.store.streamSeq : resumeSeq);
    this.changed.add(h.j);
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
    applied: (h, verdict) => {
      this.versions.note(h);
      if (verdict === 'doubt') {
        this.versions.doubt(h.r, h.p, `${positionLabel(h)} (${h.op}) arrived after a later change to it from another journal`);
        this.opts.log(`${h.r}/${h.p} may differ from the primary: ${positionLabel(h)} (${h.op}) arrived after a later change to it from another journal; understudy verify --repair mends it`);
      }
      this.summary.inDoubt = this.versions.doubtCount;
    },
  };

  /** A chunked entry's chunks come one after another in its journal; anything else means it will never complete. */
  private checkChunkOrder(h: EntryHeader): void {
    const open = this.openChunks.get(h.j);
    if (open !== undefined && (h.c === undefined || h.c.first !== open.first || h.c.i !== open.next)) {
      this.openChunks.delete(h.j);
      throw new BadEntryError(`chunks ${open.next}..${open.n - 1} of entry ${h.j}.${open.first} never arrived before ${positionLabel(h)}`);
    }
    if (h.c === undefined) return;
    if (h.c.i === h.c.n - 1) this.openChunks.delete(h.j);
    else this.openChunks.set(h.j, { first: h.c.first, next: h.c.i + 1, n: h.c.n });
  }

  /**
   * After a message that did not verify is quarantined in skip mode: consume it, and nothing
   * more. No journal position is taken from it: its bytes are not trusted, and its
   * Nats-Msg-Id is not even signed (a forged id "app.9999999999.1" would otherwise make every
   * genuine entry after it a duplicate, and agents would trim their spools to it). A genuine
   * entry lost this way leaves a gap: later entries are held and its agent asked to resend it.
   */
  private passOver(m: JsMsg): void {
    this.summary.skipped++;
    this.summary.streamSeq = m.seq;
    if (!this.holding()) this.store.skip(m.seq);
  }

  private holding(): boolean {
    for (const q of this.held.values()) if (q.size > 0) return true;
    return false;
  }

  private hold(e: Held): void {
    const { h } = e;
    let queue = this.held.get(h.j);
    if (queue === undefined) this.held.set(h.j, (queue = new Map()));
    // The same entry delivered again (a resend) replaces the one held: it is counted once.
    const prev = queue.get(h.s);
    const bytes = this.heldBytes - (prev?.data.length ?? 0) + e.data.length;
    if ((prev === undefined && queue.size >= this.maxHeld.entries) || bytes > this.maxHeld.bytes) {
      const pos = this.store.positions.journals[h.j];
      throw new ApplyError(`journal ${h.j}: entries after ${pos === undefined ? 'its start' : positionLabel(pos)} are missing from the stream (holding ${queue.size} later ones, ${this.heldBytes} bytes)`);
    }
    queue.set(h.s, e);
    this.heldBytes = bytes;
  }

  private checkNoGaps(): void {
    for (const [name, queue] of this.held) {
      if (queue.size === 0) continue;
      const pos = this.store.positions.journals[name];
      const first = Math.min(...queue.keys());
      throw new ApplyError(`journal ${name}: entries ${(pos?.s ?? 0) + 1}..${first - 1} are missing from the stream; ${queue.size} later entries wait for them`);
    }
  }

  /**
   * A write or fsync on the standby failed: everything applied since the last good commit is
   * forgotten (positions, version marks, entries held), so none of it is committed or reported,
   * and the consumer reads it again from there. Returns the error to throw, in one line.
   */
  private distrust(err: unknown): StandbyDiskError {
    const why = err instanceof UnderstudyError ? err.message : `${(err as Error).message}`;
    const seen = Object.keys(this.store.positions.journals);
    try {
      this.store.rollback();
      this.versions.rollback();
    } catch (again) {
      // Not even the way back can be written: stop, and let a restart resume from committed.json.
      this.distrusted = new StandbyDiskError(why, { cause: err });
      throw new ApplyError(`${why}; then rolling back to the last good commit failed too (${(again as Error).message}); stopping`, { cause: err });
    }
    this.held.clear();
    this.heldBytes = 0;
    this.openChunks.clear();
    this.summary.applied = this.appliedAtCommit;
    this.summary.streamSeq = this.store.streamSeq;
    // Until something is applied again there is nothing to commit: a commit now would fsync
    // the same failed pages (which may read as clean) and say the standby recovered.
    this.changed.clear();
    const failure = new StandbyDiskError(`${why}; nothing applied since the last good commit (stream position ${this.store.streamSeq}) is reported applied`, { cause: err });
    this.distrusted = failure;
    this.failingJournals = [...new Set([...this.failingJournals, ...seen])];
    this.failurePut = this.failurePut.then(() => this.publishFailure(seen, why));
    return failure;
  }

  /**
   * Republishes each journal's last good commit with the reason the standby's disk failed, so
   * `understudy status` says the standby is failing rather than merely behind. The position
   * stays that of the last good commit: strong mode and spool trimming see nothing new.
   */
  private async publishFailure(journals: string[], why: string): Promise<void> {
    const kv = this.kv;
    if (kv === undefined) return;
    for (const name of journals) {
      // A journal first applied after the last good commit has nothing there: position 0.0 covers no entry.
      const pos = this.store.positions.journals[name] ?? { e: 0, s: 0, t: 0 };
      await writeState(kv, 'applied', name, { ...pos, appliedAt: this.lastCommitAt, failing: why }).catch(() => undefined);
    }
  }

  /** Following: says what failed, and applies again from the last good commit after a pause. */
  private async afterDiskFailure(err: StandbyDiskError, signal?: AbortSignal): Promise<void> {
    // A disk that keeps failing is said once, not every second.
    if (err.message !== this.lastDiskFailure) this.opts.log(`${err.message}; applying it again from there, every second until it succeeds`);
    this.lastDiskFailure = err.message;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }

  /** The replayer's counters, and per journal the positions of agent and standby and the lag. */
  private async collectMetrics(kv: KV, jsm: JetStreamManager): Promise<Metric[]> {
    const journals = this.store.positions.journals;
    // Nothing trims the stream yet: at max_bytes it refuses entries, so how full it is wants an alert.
    const stream = await jsm.streams.info(this.opts.stream).catch(() => undefined);
    const names = new Set(Object.keys(journals));
    for (const k of await listKeys(kv, 'agent.*')) names.add(k.slice('agent.'.length));
    const per: { name: string; applied?: JournalPos; agent?: AgentHeartbeat }[] = [];
    for (const name of [...names].sort()) {
      if (this.opts.name !== undefined && name !== this.opts.name) continue;
      per.push({ name, applied: journals[name], agent: await readState(kv, 'agent', name) });
    }
    const now = Date.now();
    const g = (name: string, help: string, pick: (p: (typeof per)[number]) => number | undefined): Metric => ({
      name, help, type: 'gauge',
      samples: per.flatMap((p) => { const v = pick(p); return v === undefined ? [] : [{ labels: { journal: p.name }, value: v }]; }),
    });
    return [
      { name: 'understudy_replayer_applied_entries_total', help: 'Entries applied since the replayer started.', type: 'counter', samples: [{ value: this.summary.applied }] },
      { name: 'understudy_replayer_duplicate_entries_total', help: 'Entries skipped as already applied.', type: 'counter', samples: [{ value: this.summary.duplicates }] },
      { name: 'understudy_replayer_skipped_bad_entries_total', help: 'Bad entries quarantined and passed over.', type: 'counter', samples: [{ value: this.summary.skipped }] },
      { name: 'understudy_replayer_stream_position', help: 'Stream sequence the replayer resumes after.', type: 'gauge', samples: [{ value: this.store.streamSeq }] },
      { name: 'understudy_replayer_last_commit_timestamp_seconds', help: 'When applied changes were last made durable.', type: 'gauge', samples: [{ value: this.lastCommitAt / 1000 }] },
      ...(stream === undefined ? [] : [
        { name: 'understudy_stream_bytes', help: 'Bytes the journal stream holds.', type: 'gauge' as const, samples: [{ value: stream.state.bytes }] },
        { name: 'understudy_stream_max_bytes', help: 'Bytes the journal stream may hold; then it refuses entries (nothing trims it yet).', type: 'gauge' as const, samples: [{ value: stream.config.max_bytes }] },
      ]),
      g('understudy_journal_applied_seq', 'Last journal sequence applied and fsynced on the standby.', (p) => p.applied?.s),
      g('understudy_journal_agent_seq', 'Last journal sequence the agent reported spooled.', (p) => p.agent?.appended),
      g('understudy_journal_lag_entries', 'Entries the agent spooled that the standby has not applied.', (p) => (p.agent === undefined ? undefined : Math.max(0, p.agent.appended - (p.applied?.s ?? 0)))),
      g('understudy_journal_lag_seconds', 'Age of the newest applied entry when the agent has more.', (p) => (p.agent === undefined || p.applied === undefined || p.agent.appended <= p.applied.s ? (p.agent === undefined ? undefined : 0) : (now - p.applied.t) / 1000)),
      g('understudy_journal_heartbeat_age_seconds', 'Seconds since the agent last reported.', (p) => (p.agent === undefined ? undefined : (now - p.agent.time) / 1000)),
      g('understudy_journal_dropped_changes', 'Changes the agent could not journal because its spool was full.', (p) => p.agent?.dropped),
      { name: 'understudy_replayer_stale_snapshots_total', help: 'Snapshots (baseline, watch, repair) not applied because the standby had a newer version.', type: 'counter', samples: [{ value: this.summary.stale }] },
      ...(await auditMetrics(kv)),
    ];
  }

  /** Makes applied changes and positions durable, then tells the agents (their spools may drop what is below). */
  private async commit(kv: KV | undefined): Promise<void> {
    if (this.changed.size === 0) {
      if (kv !== undefined) await this.publishDoubts(kv);
      return;
    }
    try {
      await this.appliers.sync();
      this.versions.sync();
    } catch (err) {
      // Not the position file: what it would cover may be lost. Apply again from the last good commit.
      const failure = this.distrust(err);
      this.rewind = failure;
      this.stopPass?.();
      throw failure;
    }
    try {
      this.store.sync();
    } catch (err) {
      // What it covers is on disk: trying again rewrites the whole file, so it is safe to retry.
      throw new ApplyError(`${(err as Error).message} in ${this.store.committedFile}`, { cause: err });
    }
    this.lastCommitAt = Date.now();
    this.appliedAtCommit = this.summary.applied;
    let names = [...this.changed];
    if (this.distrusted !== undefined) {
      this.opts.log(`applied and fsynced again; positions are recorded from stream position ${this.store.streamSeq} on`);
      this.distrusted = undefined;
      this.lastDiskFailure = undefined;
      // Every journal marked failing is published again, without the mark.
      await this.failurePut;
      names = [...new Set([...names, ...this.failingJournals])];
      this.failingJournals = [];
    }
    this.changed.clear();
    if (kv === undefined) return;
    for (const name of names) {
      const pos = this.store.positions.journals[name];
      if (pos === undefined) continue; // marked failing, not applied again yet: published once it is
      await writeState(kv, 'applied', name, { ...pos, appliedAt: Date.now() }).catch(() => this.changed.add(name));
    }
    await this.publishDoubts(kv);
  }

  /** Tells `status` which objects this standby cannot be sure of, whenever that changes (and once at start). */
  private async publishDoubts(kv: KV): Promise<void> {
    const objects = this.versions.inDoubt(20);
    const said = JSON.stringify([this.versions.doubtCount, objects]);
    if (said === this.doubtsSaid) return;
    const report: DoubtsReport = { standby: STANDBY, count: this.versions.doubtCount, objects, time: Date.now() };
    await writeState(kv, 'doubts', STANDBY, report).then(() => (this.doubtsSaid = said), () => undefined);
  }
}

/** The last baseline and verify of each name, as `understudy status` shows them. */
async function auditMetrics(kv: KV): Promise<Metric[]> {
  const baselines: { name: string; r: BaselineReport }[] = [];
  const verifies: { name: string; r: VerifyReport }[] = [];
  for (const k of await listKeys(kv, '>')) {
    const key = parseStateKey(k);
    if (key?.kind === 'baseline') {
      const r = await readState(kv, 'baseline', key.name);
      if (r !== undefined) baselines.push({ name: key.name, r });
    } else if (key?.kind === 'verify') {
      const r = await readState(kv, 'verify', key.name);
      if (r !== undefined) verifies.push({ name: key.name, r });
    }
  }
  const gauge = <T>(name: string, help: string, list: { name: string; r: T }[], pick: (r: T) => number | undefined): Metric => ({
    name, help, type: 'gauge',
    samples: list.flatMap(({ name: n, r }) => { const v = pick(r); return v === undefined ? [] : [{ labels: { name: n }, value: v }]; }),
  });
  return [
    gauge('understudy_baseline_finished_timestamp_seconds', 'When the last baseline of this name finished.', baselines, (r) => (r.finished === undefined ? undefined : r.finished / 1000)),
    gauge('understudy_baseline_ok', '1 when the last baseline put everything in the stream, 0 when it failed or runs.', baselines, (r) => (r.state === 'done' ? 1 : 0)),
    gauge('understudy_baseline_objects', 'Objects the last baseline journaled.', baselines, (r) => r.objects),
    gauge('understudy_baseline_bytes', 'Bytes the last baseline journaled.', baselines, (r) => r.bytes),
    gauge('understudy_verify_timestamp_seconds', 'When the last verify of this name ran.', verifies, (r) => r.time / 1000),
    gauge('understudy_verify_equal', '1 when the last verify found the standby equal (after any repair).', verifies, (r) => (r.equal ? 1 : 0)),
    gauge('understudy_verify_differences', 'Differences the last verify found.', verifies, (r) => r.differences),
    gauge('understudy_verify_repaired', 'Objects the last verify repaired.', verifies, (r) => r.repaired),
  ];
}

/**
 * Refuses a --state inside a root (it would be replicated over) and a root inside --state
 * (the replayer's own files would be in the standby's tree, and entries could overwrite them).
 */
function checkStateApart(stateDir: string, roots: Root[]): void {
  const state = path.resolve(stateDir);
  let real = state;
  try {
    real = fs.realpathSync.native(state);
  } catch {
    // not made yet: its path is all there is
  }
  for (const r of roots) {
    if (isInside(state, r.realDir) || isInside(state, r.dir) || isInside(real, r.realDir)) {
      throw new SettingsError(`--state ${stateDir} lies inside root "${r.name}" (${r.dir}); the replayer's state must never be replicated over`);
    }
    if (isInside(r.realDir, real) || isInside(r.dir, state)) {
      throw new SettingsError(`root "${r.name}" (${r.dir}) lies inside --state ${stateDir}; the standby's tree and the replayer's state must be apart`);
    }
  }
}

/** The errno of `err` or of an error it wraps (an ApplyError carries the system error as its cause). */
function errnoOf(err: unknown): string | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

/** A full disk, whether applying (an ApplyError with the system error as its cause) or recording (the bare error). */
function isOutOfSpace(err: unknown): boolean {
  const code = errnoOf(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Failures of applying that come from what the entry asks for, not from the standby:
 * a rename into itself or over a non-empty directory, a path through a file, an offset
 * past the largest file, too many links. In skip mode such an entry is passed over like
 * a refused one. Everything else (ENOSPC, EIO, EROFS, EACCES, EPERM, ENOENT, …) says
 * something about the standby, and stops the replayer in both modes: passing over it
 * would report as applied an entry that is not, and its agent would drop it.
 */
const CONTENT_ERRNO: ReadonlySet<string> = new Set(['ENOTDIR', 'EISDIR', 'ENOTEMPTY', 'EEXIST', 'EINVAL', 'ENAMETOOLONG', 'EFBIG', 'EMLINK']);

/** Whether an error applying a verified entry lets skip mode pass over the entry. */
function isPassable(err: unknown): boolean {
  if (err instanceof BadEntryError) return true;
  const code = errnoOf(err);
  return err instanceof ApplyError && code !== undefined && CONTENT_ERRNO.has(code);
}
