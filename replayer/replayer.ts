import * as fs from 'node:fs';
import * as path from 'node:path';
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JsMsg } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import { decodeEntry } from '../lib/codec';
import { comparePosition, positionLabel, type EntryHeader } from '../lib/entry';
import { ApplyError, BadEntryError, ConfinementError, DecodeError, SettingsError, UnderstudyError } from '../lib/errors';
import { SIGNATURE_HEADER, type Verifier } from '../lib/signing';
import { Quarantine } from './quarantine';
import { FenceStore } from './fence';
import { connectNats, ensureStream, openStateKv } from '../lib/nats';
import { isInside, type Root } from '../lib/roots';
import type { NatsSettings } from '../lib/settings';
import { allJournalsSubject, appliedKey, journalSubject } from '../lib/subjects';
import { FsApplier, TEMP_PREFIX, TEMP_SUFFIX, type Data } from './apply/fs';
import { Staging } from './staging';
import { PositionStore } from './state';

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
}

export interface ReplaySummary {
  applied: number;
  duplicates: number;
  /** Bad entries quarantined and passed over (--on-bad-entry=skip). */
  skipped: number;
  streamSeq: number;
}

/** How much of a journal is held while waiting for a missing entry, at most: memory stays bounded. */
const MAX_HELD = 10_000;
const MAX_HELD_BYTES = 256 * 1024 * 1024;

interface Held { h: EntryHeader; data: Buffer }

/**
 * The standby's consumer loop: reads the stream in order from the recorded
 * position, verifies each entry, applies it exactly once, and records where it is.
 */
export class Replayer {
  private readonly store: PositionStore;
  private readonly applier: FsApplier;
  private readonly staging: Staging;
  private readonly held = new Map<string, Map<number, Held>>();
  private readonly changed = new Set<string>();
  private summary: ReplaySummary = { applied: 0, duplicates: 0, skipped: 0, streamSeq: 0 };
  private heldBytes = 0;
  private readonly quarantine: Quarantine;
  private readonly fences: FenceStore;
  /** Per journal, the chunked entry being staged: the next chunk must follow it directly. */
  private readonly openChunks = new Map<string, { first: number; next: number; n: number }>();
  private readonly runningMarker: string;

  constructor(private readonly opts: ReplayOptions) {
    for (const r of opts.roots) {
      if (isInside(path.resolve(opts.stateDir), r.realDir) || isInside(path.resolve(opts.stateDir), r.dir)) {
        throw new SettingsError(`--state ${opts.stateDir} lies inside root "${r.name}"; the replayer's state must never be replicated over`);
      }
    }
    const roots = new Map<string, string>();
    for (const r of opts.roots) {
      fs.mkdirSync(r.dir, { recursive: true });
      roots.set(r.name, fs.realpathSync(r.dir));
    }
    this.store = new PositionStore(opts.stateDir);
    this.applier = new FsApplier(roots);
    this.staging = new Staging(path.join(opts.stateDir, 'staging'));
    this.runningMarker = path.join(opts.stateDir, 'running');
    this.quarantine = new Quarantine(path.join(opts.stateDir, 'quarantine'));
    this.fences = new FenceStore(opts.stateDir);
    if (fs.existsSync(this.runningMarker)) {
      const n = removeTemps([...roots.values()]);
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
    const nc = await connectNats(opts.nats, `understudy-replay${opts.name ? ':' + opts.name : ''}`);
    let kv: KV | undefined;
    let timer: NodeJS.Timeout | undefined;
    let messages: ConsumerMessages | undefined;
    try {
      const jsm = await jetstreamManager(nc);
      await ensureStream(jsm, opts.stream);
      kv = await openStateKv(nc, opts.stream);
      const start = this.store.positions.streamSeq + 1;
      const consumer = await jetstream(nc).consumers.get(opts.stream, {
        filter_subjects: opts.name === undefined ? allJournalsSubject(opts.stream) : journalSubject(opts.stream, opts.name),
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: start,
      });
      const pendingAtStart = (await consumer.info(true)).num_pending;
      if (opts.drain && pendingAtStart === 0) {
        this.checkNoGaps();
        return this.summary;
      }
      const commit = (): Promise<void> => this.commit(kv);
      let committing: Promise<void> = Promise.resolve();
      timer = setInterval(() => { committing = committing.then(commit); }, opts.commitMs ?? 100);
      messages = await consumer.consume({ max_messages: 512 });
      const stop = (): void => void messages?.stop();
      signal?.addEventListener('abort', stop, { once: true });
      if (signal?.aborted === true) stop();
      for await (const m of messages) {
        await this.handleWaitingForSpace(m, signal);
        if (m.info.pending === 0) {
          // Caught up: commit now rather than at the next tick, so strong-mode writers wait less.
          committing = committing.then(commit);
          await committing;
          if (opts.drain) break;
        }
      }
      signal?.removeEventListener('abort', stop);
      clearInterval(timer);
      timer = undefined;
      await committing;
      await this.commit(kv);
      if (opts.drain) this.checkNoGaps();
      return this.summary;
    } finally {
      if (timer !== undefined) clearInterval(timer);
      // Whatever was applied is recorded even when we stop on an error.
      await this.commit(kv).catch(() => undefined);
      messages?.stop();
      await nc.close();
      this.store.close();
      fs.rmSync(this.runningMarker, { force: true });
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
    let h: EntryHeader;
    let data: Buffer;
    try {
      ({ header: h, data } = decodeEntry(m.data));
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
      if (!this.holding()) this.store.skip(m.seq);
      return;
    }
    if (pos !== undefined && h.s > pos.s + 1) {
      this.hold(h, data); // an earlier entry is missing; it may still come (a re-publish after a failed ack)
      return;
    }
    if (pos !== undefined && h.s <= pos.s) {
      this.opts.log(`journal ${h.j}: epoch ${h.e} restarts numbering at ${h.s} after ${positionLabel(pos)} (its spool was lost or replaced)`);
    }
    this.applyOne(h, data, m.seq);
    const queue = this.held.get(h.j);
    while (queue !== undefined && queue.size > 0) {
      const next = queue.get(this.store.positions.journals[h.j].s + 1);
      if (next === undefined) break;
      queue.delete(next.h.s);
      this.heldBytes -= next.data.length;
      this.applyOne(next.h, next.data, m.seq);
    }
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
      if (source !== undefined) this.applier.apply(h, source);
    } catch (err) {
      if (err instanceof BadEntryError || err instanceof ConfinementError || err instanceof DecodeError) {
        throw new BadEntryError(`${what} refused: ${err.message}`, { cause: err });
      }
      const why = err instanceof UnderstudyError ? err.message : `${(err as NodeJS.ErrnoException).code ?? ''} ${(err as Error).message}`.trim();
      throw new ApplyError(`${what} failed: ${why}`, { cause: err });
    }
    // While entries are held, resuming must start before them: the stream position stays put.
    this.store.record(h.j, { e: h.e, s: h.s, t: h.t }, this.holding() ? this.store.positions.streamSeq : streamSeq);
    this.changed.add(h.j);
    this.summary.applied++;
  }

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

  /** After a bad entry is quarantined in skip mode: consume it, so the journal goes on past it. */
  private passOver(m: JsMsg): void {
    this.summary.skipped++;
    this.summary.streamSeq = m.seq;
    // The message id (name.epoch.seq) places the entry in its journal even when its bytes are unreadable.
    const id = /^([A-Za-z0-9_-]+)\.(\d+)\.(\d+)$/.exec(m.headers?.get('Nats-Msg-Id') ?? '');
    const name = id?.[1];
    if (name !== undefined && m.subject === journalSubject(this.opts.stream, name)) {
      const pos = { e: Number(id?.[2]), s: Number(id?.[3]), t: Date.now() };
      const cur = this.store.positions.journals[name];
      if (cur === undefined || comparePosition(pos, cur) > 0) {
        this.store.record(name, pos, this.holding() ? this.store.positions.streamSeq : m.seq);
        this.changed.add(name);
        return;
      }
    }
    if (!this.holding()) this.store.skip(m.seq);
  }

  private holding(): boolean {
    for (const q of this.held.values()) if (q.size > 0) return true;
    return false;
  }

  private hold(h: EntryHeader, data: Buffer): void {
    let queue = this.held.get(h.j);
    if (queue === undefined) this.held.set(h.j, (queue = new Map()));
    if (queue.size >= MAX_HELD || this.heldBytes + data.length > MAX_HELD_BYTES) {
      const pos = this.store.positions.journals[h.j];
      throw new ApplyError(`journal ${h.j}: entries after ${positionLabel(pos)} are missing from the stream (holding ${queue.size} later ones, ${this.heldBytes} bytes)`);
    }
    queue.set(h.s, { h, data });
    this.heldBytes += data.length;
  }

  private checkNoGaps(): void {
    for (const [name, queue] of this.held) {
      if (queue.size === 0) continue;
      const pos = this.store.positions.journals[name];
      const first = Math.min(...queue.keys());
      throw new ApplyError(`journal ${name}: entries ${pos.s + 1}..${first - 1} are missing from the stream; ${queue.size} later entries wait for them`);
    }
  }

  /** Makes applied changes and positions durable, then tells the agents (their spools may drop what is below). */
  private async commit(kv: KV | undefined): Promise<void> {
    if (this.changed.size === 0) return;
    this.applier.sync();
    this.store.sync();
    const names = [...this.changed];
    this.changed.clear();
    if (kv === undefined) return;
    for (const name of names) {
      const pos = this.store.positions.journals[name];
      await kv.put(appliedKey(name), JSON.stringify({ ...pos, appliedAt: Date.now() })).catch(() => this.changed.add(name));
    }
  }
}

function isOutOfSpace(err: unknown): boolean {
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code === 'ENOSPC' || cause?.code === 'EDQUOT';
}

/** Removes temporary files a killed replayer left beside the objects it was replacing. */
function removeTemps(dirs: string[]): number {
  let n = 0;
  const walk = (dir: string): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.startsWith(TEMP_PREFIX) && e.name.endsWith(TEMP_SUFFIX)) {
        fs.rmSync(p, { force: true });
        n++;
      }
    }
  };
  dirs.forEach(walk);
  return n;
}
