/**
 * The shipper: a worker thread that tails the spool and publishes each entry to
 * JetStream with Nats-Msg-Id = name.epoch.seq, in order. It never touches the
 * application's thread; the application only waits on it at exit (or in sync mode).
 */
import * as os from 'node:os';
import { workerData } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { jetstream, jetstreamManager, type PubAck } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { headers, TimeoutError } from '@nats-io/transport-node';
import { loadSigner, SIGNATURE_HEADER } from '../lib/signing';
import { connectNats, ensureStream, formatBytes, openStateKv } from '../lib/nats';
import { journalSubject, msgId, resendSubject, type ResendReply, type ResendRequest } from '../lib/subjects';
import { parseState, stateKey, watchState, writeState, type AgentHeartbeat } from '../lib/state-bucket';
import type { JetStreamClient, StreamInfo } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { SpoolRecord } from '../lib/spool';
import { encodeFrames, frameBytes, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES } from '../lib/batch';
import { SpoolCursor, SpoolGapError } from '../lib/spool-reader';
import { replaceJson } from '../lib/durable-file';
import { firstFrame, listSegments, readJson, spoolFiles, trimmableSegments, type AckedState, type LostRange, type OriginState, type UncleanEnd } from '../lib/spool';
import { decodeEntry } from '../lib/codec';
import { lastEntry } from '../lib/batch';
import { lostBetween, readLost, recordLost } from './spool-gap';
import { DEFAULTS, type NatsSettings, type SpoolFsync } from '../lib/settings';
import * as fs from 'node:fs';
import { ACKED, APPENDED, APPLIED, DROPPED, HURRY, REPORTED, publishPosition, readPosition } from './shared-state';
import { warnOnce } from './log';
import { Abandonable } from './abandon';
import { retry } from '../lib/retry';

/** What the application thread hands the worker. */
export interface ShipperData {
  nats: NatsSettings;
  stream: string;
  name: string;
  dir: string;
  epoch: number;
  mode: string;
  shared: BigInt64Array;
  signingKey?: string;
  /** First sequence number this process journals; older ones are left over from earlier processes. */
  firstSeq: number;
  spoolFsync: SpoolFsync;
}

interface InFlight { epoch: number; seq: number; ack: Promise<PubAck> }

/** Publishes in flight; a reconnect abandons them. */
const inFlight = new Abandonable();

/** Watches the connection; each reconnect abandons what was in flight (re-published, de-duplicated by id). */
async function watchReconnects(nc: NatsConnection): Promise<void> {
  for await (const s of nc.status()) {
    if (s.type !== 'reconnect') continue;
    inFlight.abandonAll(new Error('the connection to NATS moved to another server'));
  }
}

const data = workerData as ShipperData;
const { shared, name, dir } = data;
const subject = journalSubject(data.stream, name);
const files = spoolFiles(dir);
let ackedPos: AckedState = readJson<AckedState>(files.acked) ?? { epoch: 0, seq: 0 };
/** Where this journal's history begins in the stream it ships to, once known. */
let origin: OriginState | undefined = readJson<OriginState>(files.origin);
let savedSeq = ackedPos.seq;
/** The acked position as far as it is fsynced: segments are trimmed only below it. */
let durableSeq = 0;
/** Entries this journal's spool lost before they were shipped, reported in every heartbeat. */
let lost: LostRange[] = readLost(dir);
/** The last process of this journal that died without flushing its ending, if any (the journal found it when it took the lock). */
const unclean = readJson<UncleanEnd>(files.unclean);
publishPosition(shared, ACKED, ackedPos.seq);
// Signing happens here, off the application's thread: Ed25519 costs tens of microseconds an entry.
const signer = data.signingKey === undefined ? undefined : loadSigner(data.signingKey);

/** UNDERSTUDY_SPOOL_FSYNC=<ms>: the newest segment is fdatasynced here, off the application's thread. */
function syncSpoolPeriodically(everyMs: number): void {
  let synced = readPosition(shared, APPENDED);
  setInterval(() => {
    const appended = readPosition(shared, APPENDED);
    if (appended === synced) return;
    const newest = listSegments(dir).at(-1);
    if (newest === undefined) return;
    try {
      const fd = fs.openSync(newest.file, 'r');
      try {
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      synced = appended;
    } catch (err) {
      warnOnce('spool-fsync', `journal "${name}" cannot fsync its spool: ${(err as Error).message}`);
    }
  }, everyMs).unref();
}

async function main(): Promise<void> {
  if (typeof data.spoolFsync === 'number') syncSpoolPeriodically(data.spoolFsync);
  // Keep trying: a server that is down or refuses our credentials now may accept them later.
  // noAsyncTraces: nats.js otherwise builds an Error per request for its stack, a fifth of the shipper's CPU.
  const nc = await retrying('connect to NATS', () => connectNats(data.nats, `understudy-agent:${name}`, { waitOnFirstConnect: true, noAsyncTraces: true }));
  const created = await retrying('create the stream', () => jetstreamManager(nc).then((jsm) => ensureStream(jsm, data.stream, data.nats.replicas, streamSmaller)));
  // The state bucket is for reporting; shipping never waits for it.
  let kv: KV | undefined;
  void retrying('open the state bucket', () => openStateKv(nc, data.stream, data.nats.replicas)).then((opened) => {
    kv = opened;
    void followApplied(opened);
    void watchFence(opened);
    void heartbeats(opened);
  });
  const js = jetstream(nc);
  serveResends(nc, js);
  void watchReconnects(nc);
  const cursor = new SpoolCursor(dir, ackedPos.seq + 1);
  adoptStream(created, cursor);
  let failures = 0;
  // In sync and strong modes every entry has a caller waiting for it: never linger there.
  const lingerMs = data.mode === 'async' ? DEFAULTS.shipLingerMs : 0;
  let shippedAt = 0;
  let behind = false;
  for (;;) {
    // A backlog (an outage, a large file) goes out at full speed; lingering is for a steady trickle.
    if (lingerMs > 0 && !behind) await linger(shippedAt + lingerMs - Date.now());
    const appended = readPosition(shared, APPENDED);
    let records;
    try {
      records = cursor.read(appended);
    } catch (err) {
      if (err instanceof SpoolGapError) {
        if (await passGap(err, nc, kv)) cursor.seek(ackedPos.seq + 1);
        else await sleep(1000);
        continue;
      }
      // Corruption in the middle of the spool: say so loudly and keep everything; never skip.
      warnOnce('spool-corrupt', `shipping of journal "${name}" stopped: ${(err as Error).message}`);
      await sleep(5000);
      cursor.seek(ackedPos.seq + 1);
      continue;
    }
    behind = cursor.position <= appended;
    if (records.length === 0) {
      // Caught up: report it soon, so `status` and an exiting application see the truth; not at
      // once, because a sync-mode writer's next entry is likely on its way and must not wait for it.
      if (kv !== undefined && readPosition(shared, REPORTED) < appended) beatSoon(kv);
      await Atomics.waitAsync(shared, APPENDED, BigInt(appended), 1000).value;
      continue;
    }
    // Pipelined publishes; acknowledgements are taken in order, so acked never runs ahead of a hole.
    // After a failure one message goes first, with a short timeout, to find out whether the way
    // is open again: a cluster electing a new stream leader is then noticed in a second, not five.
    const probe = failures > 0 ? Math.min(1000 * 2 ** (failures - 1), 5000) : undefined;
    const pending: InFlight[] = [];
    let error: Error | undefined;
    shippedAt = Date.now();
    for (const batch of batches(records)) {
      const last = batch[batch.length - 1];
      const ack = inFlight.track(publish(js, batch, '', probe));
      ack.catch(() => undefined);
      pending.push({ epoch: last.epoch, seq: last.seq, ack });
      if (probe !== undefined) break;
      if (pending.length >= DEFAULTS.maxInFlight) {
        error = await settle(pending.splice(0, pending.length - DEFAULTS.maxInFlight / 2));
        if (error !== undefined) break;
      }
    }
    error ??= await settle(pending);
    if (error === undefined) {
      failures = 0;
      // Every message made of this read was acknowledged, so nats.js has sent (and let go of) it.
      cursor.recycle();
      if (probe !== undefined) cursor.seek(ackedPos.seq + 1);
      continue;
    }
    failures++;
    cursor.seek(ackedPos.seq + 1);
    await sleep(Math.min(50 * 2 ** failures, 2000));
    if (error instanceof TimeoutError) continue;
    // No answer at all, or not from a stream: it may have been deleted. Make it again (the
    // standby pulls what it lost from our spool). Briefly: a cluster may be electing its leaders.
    const again = await jetstreamManager(nc, { timeout: 2000 }).then((jsm) => ensureStream(jsm, data.stream, data.nats.replicas, streamSmaller)).catch(() => undefined);
    if (again !== undefined) adoptStream(again, cursor);
  }
}

/**
 * The stream is part of the journal's history. One this journal has not shipped to before
 * (a new server, a stream deleted and made again) holds none of what went to the old one:
 * shipping starts again there from the oldest entry the spool still has, so a standby that
 * applied up to where the spool begins goes on without a gap, and the heartbeat says where
 * the journal's history in this stream begins, so a standby that needs what came before
 * knows it will never come (it needs a baseline) instead of waiting for it.
 */
function adoptStream(info: StreamInfo, cursor: SpoolCursor): void {
  if (origin !== undefined && origin.stream === data.stream && origin.created === info.created) return;
  const known = origin !== undefined;
  const first = listSegments(dir)[0];
  const oldest = first === undefined ? undefined : firstFrame(first.file);
  const from = oldest === undefined ? { epoch: data.epoch, seq: ackedPos.seq + 1 } : { epoch: oldest.e, seq: Math.min(oldest.s, ackedPos.seq + 1) };
  origin = { stream: data.stream, created: info.created, epoch: from.epoch, seq: from.seq };
  replaceJson(files.origin, origin);
  if (from.seq <= ackedPos.seq) {
    ackedPos = { epoch: from.epoch, seq: from.seq - 1 };
    publishPosition(shared, ACKED, ackedPos.seq);
    cursor.seek(from.seq);
  }
  if (known || from.seq > 1) {
    warnOnce('new-stream', `journal "${name}" ships to a stream ${data.stream} it has not shipped to before (created ${info.created}); its history there begins at entry ${from.seq}${from.seq > 1 ? `: a standby that has not applied entries 1..${from.seq - 1} needs \`understudy baseline\`` : ''}`);
  }
}

/**
 * The spool begins after the entry due next: go on from its oldest entry, and if what lies in
 * between is neither applied on the standby nor in the stream, record it as lost and say so.
 * False while the state bucket, which tells what the standby applied, is not open yet.
 */
async function passGap(gap: SpoolGapError, nc: NatsConnection, kv: KV | undefined): Promise<boolean> {
  if (kv === undefined) return false;
  const applied = await kv.get(stateKey('applied', name)).then((e) => parseState('applied', e)?.s, () => null);
  if (applied === null) return false;
  const last = await jetstreamManager(nc, { timeout: 2000 }).then((jsm) => jsm.streams.getMessage(data.stream, { last_by_subj: subject })).catch(() => null);
  let streamSeq: number | undefined;
  try {
    streamSeq = last === null ? undefined : decodeEntry(lastEntry(last.data)).header.s;
  } catch {
    streamSeq = undefined; // a message we cannot read vouches for nothing
  }
  const missing = lostBetween(gap.wanted, gap.oldest, { appliedSeq: applied, streamSeq });
  if (missing !== undefined) {
    const reason = `entries ${missing.from}..${missing.to} were gone from the agent's spool (it begins at ${gap.oldest}) before the stream or the standby had them`;
    lost = recordLost(dir, { ...missing, at: Date.now(), reason });
    warnOnce(`lost:${missing.from}`, `journal "${name}": ${reason}; shipping goes on from ${gap.oldest}, and the standby differs by them until a baseline (understudy status says so)`);
    // Reported before anything after the gap is shipped: a process that exits once that is done must have said it.
    await beat(kv);
  }
  const oldest = listSegments(dir)[0];
  const head = oldest === undefined ? undefined : firstFrame(oldest.file);
  // Nothing before the oldest entry can be shipped any more: the next process resumes there too.
  ackedPos = { epoch: head?.e ?? ackedPos.epoch, seq: gap.oldest - 1 };
  publishPosition(shared, ACKED, ackedPos.seq);
  saveAcked(true);
  return true;
}

/** Said once when the server had no room for a stream of the default size. */
function streamSmaller(bytes: number): void {
  warnOnce('stream-size', `stream ${data.stream} was created with max_bytes ${formatBytes(bytes)}, not ${formatBytes(DEFAULTS.streamMaxBytes)}: the server's JetStream storage is smaller; once the stream is full it refuses entries and they stay spooled (nothing trims the stream yet: see README, "What is not built yet")`);
}

/**
 * Waits up to `ms` before the next read, so that under a steady stream of changes each message
 * carries several entries: a publish and its ack cost the same for one entry as for a hundred.
 * The application's flush (at exit, or an explicit one) raises HURRY and ends the wait.
 */
async function linger(ms: number): Promise<void> {
  if (ms <= 0) return;
  const hurry = Atomics.load(shared, HURRY);
  if (Number(hurry) >= readPosition(shared, APPENDED)) return;
  await Atomics.waitAsync(shared, HURRY, hurry, ms).value;
}

/** Consecutive records grouped into messages of at most MAX_BATCH_ENTRIES entries and MAX_BATCH_BYTES. */
function* batches(records: SpoolRecord[]): Generator<SpoolRecord[]> {
  let batch: SpoolRecord[] = [];
  let bytes = 0;
  for (const r of records) {
    if (batch.length > 0 && (batch.length >= MAX_BATCH_ENTRIES || bytes + frameBytes(r) > MAX_BATCH_BYTES)) {
      yield batch;
      batch = [];
      bytes = 0;
    }
    batch.push(r);
    bytes += frameBytes(r);
  }
  if (batch.length > 0) yield batch;
}

/**
 * Publishes spooled entries as one message, signed when a key is set. Its id names the
 * first and last entry (name.epoch.seq[-last]); `again` marks a resend, which must not be
 * de-duplicated away.
 */
function publish(js: JetStreamClient, batch: SpoolRecord[], again = '', timeout?: number): Promise<PubAck> {
  const body = encodeFrames(batch);
  let h;
  if (signer !== undefined) {
    h = headers();
    h.set(SIGNATURE_HEADER, `${signer.keyId}:${signer.sign(body)}`);
  }
  const first = batch[0];
  const last = batch[batch.length - 1];
  const id = msgId(name, first.epoch, first.seq) + (last.seq !== first.seq ? `-${last.seq}` : '');
  return js.publish(subject, body, { msgID: id + again, headers: h, timeout });
}

/**
 * Pull catch-up: the replayer asks for entries it found missing from the stream
 * (purged, deleted, lost with a server's store); they are still in the spool,
 * which keeps everything until the standby has applied it.
 */
function serveResends(nc: NatsConnection, js: JetStreamClient): void {
  nc.subscribe(resendSubject(data.stream, name), {
    callback: (err, msg) => {
      if (err !== null) return;
      void (async (): Promise<ResendReply> => {
        const req = JSON.parse(msg.string()) as ResendRequest;
        if (!Number.isSafeInteger(req.from) || !Number.isSafeInteger(req.to) || req.from < 1 || req.to < req.from) {
          return { resent: 0, error: `bad range ${req.from}..${req.to}` };
        }
        const to = Math.min(req.to, readPosition(shared, APPENDED));
        // What is older than the spool's first entry was trimmed once a standby applied it: say where it begins.
        const first = listSegments(dir)[0];
        const oldest = first === undefined ? undefined : firstFrame(first.file);
        const from = oldest !== undefined && req.from < oldest.s ? oldest.s : req.from;
        const cursor = new SpoolCursor(dir, from);
        let records: SpoolRecord[];
        try {
          records = from <= to ? cursor.read(to, 256 * 1024 * 1024) : [];
        } finally {
          cursor.close();
        }
        const tag = `.again.${Date.now()}`;
        for (const b of batches(records)) await publish(js, b, tag);
        return { resent: records.length, oldest: from > req.from ? oldest : undefined };
      })().catch((e: Error) => ({ resent: 0, error: e.message })).then((reply) => msg.respond(JSON.stringify(reply)));
    },
  });
}

/** Awaits acks in order; the first failure (said once) stops it and is returned. */
async function settle(batch: InFlight[]): Promise<Error | undefined> {
  let error: Error | undefined;
  for (const p of batch) {
    try {
      await p.ack;
    } catch (err) {
      error = err as Error;
      warnOnce('publish', `journal "${name}" cannot reach JetStream (${error.message}); entries stay spooled and are shipped when it is back`);
      break;
    }
    ackedPos = { epoch: p.epoch, seq: p.seq };
  }
  // Announced first: a sync-mode caller waits on it, and a rename on ext4 can take milliseconds.
  // Saving it later costs at most a re-send of entries the replayer already skips as duplicates.
  publishPosition(shared, ACKED, ackedPos.seq);
  saveAckedSoon();
  return error;
}

/** Leaves the agent's position in the state bucket (its heartbeat) and saves the acked position. */
async function beat(kv: KV): Promise<void> {
  const appended = readPosition(shared, APPENDED);
  saveAcked();
  const value: AgentHeartbeat = {
    name, epoch: data.epoch, mode: data.mode, pid: process.pid, host: os.hostname(), appended, acked: ackedPos, time: Date.now(),
    dropped: readPosition(shared, DROPPED), origin,
    ...(lost.length > 0 ? { lost } : {}),
    ...(unclean !== undefined ? { unclean } : {}),
  };
  try {
    await writeState(kv, 'agent', name, value);
    publishPosition(shared, REPORTED, appended);
  } catch (err) {
    warnOnce('heartbeat', `journal "${name}" cannot report its position: ${(err as Error).message}`);
  }
}

let saveTimer: NodeJS.Timeout | undefined;
/**
 * Saves the acked position within a second: it only spares a restarted process re-sending what
 * the standby skips as duplicates, and each save is a rename, which on ext4 can block this
 * thread for milliseconds while acks wait (sync mode's slowest tenth was 20 % slower at 50 ms).
 */
function saveAckedSoon(): void {
  saveTimer ??= setTimeout(() => {
    saveTimer = undefined;
    saveAcked();
  }, 1000);
}

/**
 * Saves the acked position (`durable`: fsynced, before segments below it are trimmed); true when
 * it is saved. A failure is said once and leaves the spool untrimmed, never the shipper stopped.
 */
function saveAcked(durable = false): boolean {
  if (ackedPos.seq === (durable ? durableSeq : savedSeq)) return true;
  const pos = ackedPos;
  try {
    replaceJson(files.acked, pos, { durable });
  } catch (err) {
    warnOnce('acked-save', `journal "${name}" cannot save its shipped position in ${files.acked} (${(err as Error).message}); its spool is not trimmed until it can`);
    return false;
  }
  savedSeq = pos.seq;
  if (durable) durableSeq = pos.seq;
  return true;
}

/**
 * Trims what the standby applied, but never past the acked position on disk: the next process
 * with this name resumes right after it, so it must be saved (fsynced) before what precedes
 * it goes. Saving it only up to a second late, as saveAckedSoon does, once let a trim run
 * ahead of it, and the next process found its resume position gone.
 */
function trimApplied(applied: { e: number; s: number }): void {
  // Componentwise: a segment goes only when both its epoch and its seq are covered by both.
  const upTo = { e: Math.min(applied.e, ackedPos.epoch), s: Math.min(applied.s, ackedPos.seq) };
  const doomed = trimmableSegments(dir, upTo);
  if (doomed.length === 0 || !saveAcked(true) || durableSeq < upTo.s) return;
  for (const file of doomed) fs.rmSync(file, { force: true });
}

let beatTimer: NodeJS.Timeout | undefined;
/**
 * Reports the position soon after the shipper caught up: within 20 ms when the application
 * waits for it (HURRY: a flush, an exit), else within 200 ms, so a steady writer (one sync-mode
 * call after another) costs a state-bucket put and a save five times a second, not fifty.
 */
function beatSoon(kv: KV): void {
  const waitedFor = readPosition(shared, HURRY) >= readPosition(shared, APPENDED);
  beatTimer ??= setTimeout(() => {
    beatTimer = undefined;
    void beat(kv);
  }, waitedFor ? 20 : 200);
}

async function heartbeats(kv: KV): Promise<void> {
  for (;;) {
    await beat(kv);
    await sleep(DEFAULTS.heartbeatMs);
  }
}

/** The standby's applied position lets the spool drop what is safely applied there. */
async function followApplied(kv: KV): Promise<void> {
  for (;;) {
    try {
      for await (const applied of watchState(kv, 'applied', name)) {
        // A position of an earlier epoch covers none of this process's entries, whatever its seq
        // (the spool may have been lost and numbering begun again).
        publishPosition(shared, APPLIED, applied.e >= data.epoch ? applied.s : Math.min(applied.s, data.firstSeq - 1));
        trimApplied(applied);
      }
    } catch (err) {
      warnOnce('applied-watch', `journal "${name}" cannot follow the standby's applied position: ${(err as Error).message}`);
    }
    await sleep(1000);
  }
}

/** A promotion of the standby fences this journal: say so, once, so the split brain is seen on this side too. */
async function watchFence(kv: KV): Promise<void> {
  try {
    for await (const f of watchState(kv, 'fence', name)) {
      warnOnce('fenced', `journal "${name}" was fenced at ${f.e}.${f.s} by the promotion of ${f.by} at ${f.at}: the standby is the primary now and refuses what this process journals (split brain)`);
    }
  } catch {
    // Reporting only; shipping goes on without it.
  }
}

/** Tries `fn` until it succeeds, saying once what it waits for: shipping outlives any outage. */
function retrying<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return retry(fn, { say: (err) => warnOnce(`retry:${what}`, `journal "${name}" cannot ${what} yet (${err.message}); retrying`), firstWaitMs: 200, maxWaitMs: 5000 });
}

main().catch((err: Error) => warnOnce('shipper', `shipper of journal "${name}" stopped: ${err.message}; entries stay spooled`));
