import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SettingsError } from './errors';
import { parseRoots, type Root } from './roots';
import { validJournalName } from './subjects';

/** Every default lives here and nowhere else. */
export const DEFAULTS = {
  natsUrl: 'nats://127.0.0.1:4222',
  stream: 'UNDERSTUDY',
  mode: 'async' as Mode,
  spoolDir: path.join(os.homedir(), '.understudy', 'spool'),
  stateDir: path.join(os.homedir(), '.understudy', 'state'),
  /** How long an exiting process may wait for its journal to reach JetStream. */
  exitTimeoutMs: 5000,
  /** How long a sync or strong call waits before UNDERSTUDY_ON_TIMEOUT applies. */
  syncTimeoutMs: 5000,
  onTimeout: 'fail' as OnTimeout,
  /** Data per chunk; NATS's default max payload is 1 MiB and the header needs room. */
  chunkBytes: 768 * 1024,
  /** A spool segment is closed and a new one begun past this size. */
  segmentBytes: 64 * 1024 * 1024,
  /** Stream limits: discard new, so a full stream refuses instead of evicting. */
  streamMaxBytes: 8 * 1024 * 1024 * 1024,
  /** JetStream de-duplication window for Nats-Msg-Id. */
  duplicateWindowMs: 10 * 60 * 1000,
  /** Publishes in flight from the shipper at once. */
  maxInFlight: 256,
  /**
   * Async mode: under load the shipper publishes at most this often, so one message carries
   * what arrived meanwhile; an isolated change is shipped at once, and a flush cuts it short.
   */
  shipLingerMs: 20,
  heartbeatMs: 1000,
  /** Past this the agent drops changes (counted and reported) rather than fill the disk or stop the application. */
  spoolMaxBytes: 2 * 1024 * 1024 * 1024,
  /** The shipper fdatasyncs the spool this often (ms); `always` does it on every entry, `never` leaves it to the kernel. */
  spoolFsync: 1000 as SpoolFsync,
  /**
   * The watcher (understudy watch, UNDERSTUDY_WATCH=1): a directory is listed again 200 ms after
   * an event in it; a full pass over the tree begins 30 s after the last ended and looks at no
   * more than 5,000 objects a second, so a change no event announced is mended within
   * 30 s + (objects / 5,000) s; directories the kernel will not watch are listed every second.
   */
  watch: { settleMs: 200, fullPassEveryMs: 30_000, objectsPerSecond: 5000, pollMs: 1000 },
  /** Journals a base name may have, one per live process (and as many per process for its threads). */
  journalSlots: 1024,
  /**
   * A running agent looks for journals of its base that no live process holds and ships what
   * they hold: first this long after it starts (so a restarting pool takes its own slots back
   * first, and each process ships its slot's backlog), then every adoptEveryMs.
   */
  adoptAfterMs: 10_000,
  adoptEveryMs: 30_000,
  /** Journals one agent ships for others at a time (each has a shipper worker of its own); the rest wait for the next look. */
  adoptAtOnce: 4,
  /** The standby's replayer (replayer/): its waits, paces and bounds. */
  replay: {
    /** A drain gives NATS and JetStream this long to answer before it fails: a script must not hang; following waits for ever. */
    patienceMs: 30_000,
    /** First wait between tries while NATS or JetStream is unreachable: quick to resume after a leader election. */
    retryMs: 500,
    /** Applied positions are made durable and reported this often: strong-mode writers wait about this long at most. */
    commitMs: 100,
    /** Following: how often held entries and the agents' heartbeats are compared, asking for what the stream lacks. */
    catchUpEveryMs: 2000,
    /** A drain looks at the stream this often for having read its last message (an ordered consumer may stall). */
    drainWatchMs: 1000,
    /** Following: how often the stream's identity is checked (a deleted stream leaves the consumer waiting for ever). */
    followWatchMs: 2000,
    /** No message for this long, and the stream's last read: the consumer is at the end. */
    quietMs: 1000,
    /** Following: pause between a pass that ended and the next, so a stream that keeps failing is not hammered. */
    passPauseMs: 1000,
    /** A full or failing standby disk is tried again this often (said once). */
    diskRetryMs: 1000,
    /** The consumer loop yields to timers and replies at least this often (the commit's KV put waits otherwise). */
    yieldMs: 50,
    /** How long the replayer waits for an agent's answer to a resend request. */
    resendTimeoutMs: 5000,
    /** A drain asks the agents for what the stream lacks at most this many times before it stops. */
    drainCatchUpRounds: 5,
    /** How much of a journal is held while waiting for a missing entry, at most: memory stays bounded. */
    maxHeld: { entries: 10_000, bytes: 256 * 1024 * 1024 },
    /** Messages the consumer asks the server for at a time: at most ~28 MiB buffered (a message holds up to 900 KiB). */
    consumeMessages: 32,
    /** Objects in doubt named in the state bucket for `status` (the count is always whole). */
    doubtsListed: 20,
  },
} as const;

export type SpoolFsync = 'always' | 'never' | number;

export type Mode = 'async' | 'sync' | 'strong';
export type OnTimeout = 'fail' | 'degrade';

/** How to reach and authenticate to NATS; shared by agent and commands. */
export interface NatsSettings {
  url: string;
  /** Replicas of the stream and state bucket when understudy creates them (3 in a cluster). */
  replicas: number;
  creds?: string;
  nkey?: string;
  token?: string;
  user?: string;
  pass?: string;
  ca?: string;
}

export interface AgentSettings {
  nats: NatsSettings;
  roots: Root[];
  name: string;
  mode: Mode;
  syncTimeoutMs: number;
  onTimeout: OnTimeout;
  spoolDir: string;
  stream: string;
  exclude: string[];
  exitTimeoutMs: number;
  /** Key file the shipper signs entries with (see lib/signing). */
  signingKey?: string;
  spoolMaxBytes: number;
  /** UNDERSTUDY_SPOOL_SEGMENT_BYTES: a new spool segment begins past this size (the spool shrinks by whole segments). */
  spoolSegmentBytes: number;
  spoolFsync: SpoolFsync;
  /** UNDERSTUDY_WATCH=1: a watcher in the application journals what its child processes (and others) change. */
  watch: boolean;
}

type Env = Record<string, string | undefined>;

/** Reads the NATS connection settings from UNDERSTUDY_NATS_* variables, with overrides. */
export function natsSettings(env: Env, url?: string): NatsSettings {
  const s: NatsSettings = {
    url: url ?? nonEmpty(env.UNDERSTUDY_NATS_URL) ?? DEFAULTS.natsUrl,
    replicas: positiveInt(env, 'UNDERSTUDY_STREAM_REPLICAS', 1),
  };
  for (const u of s.url.split(',')) {
    if (!/^(nats|tls|ws|wss):\/\/[^\s]+$/.test(u.trim()) && !/^[^\s/:]+:\d+$/.test(u.trim())) {
      throw new SettingsError(`UNDERSTUDY_NATS_URL: "${u}" is not a nats://host:port URL`);
    }
  }
  s.creds = absFile(env, 'UNDERSTUDY_NATS_CREDS');
  s.nkey = absFile(env, 'UNDERSTUDY_NATS_NKEY');
  s.ca = absFile(env, 'UNDERSTUDY_NATS_CA');
  s.token = nonEmpty(env.UNDERSTUDY_NATS_TOKEN);
  s.user = nonEmpty(env.UNDERSTUDY_NATS_USER);
  s.pass = nonEmpty(env.UNDERSTUDY_NATS_PASS);
  if ((s.user === undefined) !== (s.pass === undefined)) {
    throw new SettingsError('UNDERSTUDY_NATS_USER and UNDERSTUDY_NATS_PASS must be set together');
  }
  return s;
}

/** Reads and validates the agent's settings; throws SettingsError naming the first bad variable. */
export function agentSettings(env: Env, mainScript: string | undefined): AgentSettings {
  const rootsSpec = nonEmpty(env.UNDERSTUDY_ROOTS);
  if (rootsSpec === undefined) throw new SettingsError('UNDERSTUDY_ROOTS is not set: name=/abs/dir[,name=/abs/dir…]');
  const roots = parseRoots(rootsSpec);
  if (roots.length === 0) throw new SettingsError('UNDERSTUDY_ROOTS names no root');
  const name = journalName(env.UNDERSTUDY_NAME, mainScript);
  const mode = oneOf(env, 'UNDERSTUDY_MODE', ['async', 'sync', 'strong'] as const, DEFAULTS.mode);
  const spoolDir = absFile(env, 'UNDERSTUDY_SPOOL_DIR') ?? DEFAULTS.spoolDir;
  checkSpoolApart(spoolDir, roots);
  return {
    nats: natsSettings(env),
    roots,
    name,
    mode,
    syncTimeoutMs: positiveInt(env, 'UNDERSTUDY_SYNC_TIMEOUT_MS', DEFAULTS.syncTimeoutMs),
    onTimeout: oneOf(env, 'UNDERSTUDY_ON_TIMEOUT', ['fail', 'degrade'] as const, DEFAULTS.onTimeout),
    spoolDir,
    stream: streamName(env.UNDERSTUDY_STREAM),
    exclude: (nonEmpty(env.UNDERSTUDY_EXCLUDE) ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    exitTimeoutMs: positiveInt(env, 'UNDERSTUDY_EXIT_TIMEOUT_MS', DEFAULTS.exitTimeoutMs),
    signingKey: absFile(env, 'UNDERSTUDY_SIGNING_KEY'),
    spoolMaxBytes: positiveInt(env, 'UNDERSTUDY_SPOOL_MAX_BYTES', DEFAULTS.spoolMaxBytes),
    spoolSegmentBytes: positiveInt(env, 'UNDERSTUDY_SPOOL_SEGMENT_BYTES', DEFAULTS.segmentBytes),
    spoolFsync: spoolFsync(env.UNDERSTUDY_SPOOL_FSYNC),
    watch: oneOf(env, 'UNDERSTUDY_WATCH', ['0', '1'] as const, '0') === '1',
  };
}

/**
 * The spool and the roots must not overlap either way: a spool inside a root would be
 * replicated (each append journaled again), and a root inside the spool (a journal's own
 * directory, or the spool itself) would have the agent's files replayed over the standby and
 * the application's writes mixed with the journal's. Symlinks are followed on both sides.
 */
function checkSpoolApart(spoolDir: string, roots: readonly Root[]): void {
  const realSpool = realOfNearest(spoolDir);
  for (const r of roots) {
    if (isWithin(spoolDir, r.dir) || isWithin(spoolDir, r.realDir) || isWithin(realSpool, r.realDir)) {
      throw new SettingsError(`UNDERSTUDY_SPOOL_DIR (${spoolDir}) lies inside root "${r.name}" (${r.dir}); the spool must never be replicated`);
    }
    if (isWithin(r.dir, spoolDir) || isWithin(r.realDir, realSpool)) {
      throw new SettingsError(`UNDERSTUDY_ROOTS: root "${r.name}" (${r.dir}) lies inside UNDERSTUDY_SPOOL_DIR (${spoolDir}), the agent's own files; give the spool a directory of its own`);
    }
  }
}

/** `p` with symlinks resolved as far as it exists (the spool directory may not be made yet). */
function realOfNearest(p: string): string {
  const rest: string[] = [];
  for (let at = p; ; at = path.dirname(at)) {
    try {
      return path.join(fs.realpathSync.native(at), ...rest);
    } catch {
      if (path.dirname(at) === at) return p;
      rest.unshift(path.basename(at));
    }
  }
}

/**
 * The base of the journal's name: UNDERSTUDY_NAME, or the main script's base name. Each
 * process takes a free slot under it (agent/journal-name).
 */
export function journalName(given: string | undefined, mainScript: string | undefined): string {
  const explicit = nonEmpty(given);
  if (explicit !== undefined) {
    if (!validJournalName(explicit)) throw new SettingsError(`UNDERSTUDY_NAME: "${explicit}" must be 1-128 of A-Z a-z 0-9 _ -`);
    return explicit;
  }
  const base = mainScript === undefined ? 'node' : path.basename(mainScript).replace(/\.[cm]?[jt]s$/, '');
  const cleaned = base.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 128);
  return cleaned === '' ? 'node' : cleaned;
}

/** Validates a stream name (UNDERSTUDY_STREAM or --stream). */
export function streamName(given: string | undefined): string {
  const s = nonEmpty(given) ?? DEFAULTS.stream;
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(s)) throw new SettingsError(`UNDERSTUDY_STREAM: "${s}" must be 1-64 of A-Z a-z 0-9 _ -`);
  return s;
}

function spoolFsync(v: string | undefined): SpoolFsync {
  const s = nonEmpty(v);
  if (s === undefined) return DEFAULTS.spoolFsync;
  if (s === 'always' || s === 'never') return s;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n <= 0) throw new SettingsError(`UNDERSTUDY_SPOOL_FSYNC: "${s}" is not always, never or an interval in ms`);
  return n;
}

function nonEmpty(v: string | undefined): string | undefined {
  return v === undefined || v.trim() === '' ? undefined : v.trim();
}

function oneOf<T extends string>(env: Env, key: string, allowed: readonly T[], dflt: T): T {
  const v = nonEmpty(env[key]);
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new SettingsError(`${key}: "${v}" is not one of ${allowed.join(', ')}`);
  return v as T;
}

function positiveInt(env: Env, key: string, dflt: number): number {
  const v = nonEmpty(env[key]);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new SettingsError(`${key}: "${v}" is not a positive whole number`);
  return n;
}

function absFile(env: Env, key: string): string | undefined {
  const v = nonEmpty(env[key]);
  if (v !== undefined && !path.isAbsolute(v)) throw new SettingsError(`${key}: "${v}" is not an absolute path`);
  return v === undefined ? undefined : path.resolve(v);
}

function isWithin(p: string, dir: string): boolean {
  const rel = path.relative(dir, p);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * The standby's name, as status shows it: UNDERSTUDY_STANDBY, or the host's name made one
 * key token (letters, digits, `-` and `_`; anything else becomes `_`).
 */
export function standbyName(env: Env = process.env): string {
  const given = env.UNDERSTUDY_STANDBY;
  if (given !== undefined && given !== '') {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(given)) throw new SettingsError(`UNDERSTUDY_STANDBY "${given}" must be 1-64 letters, digits, '-' or '_'`);
    return given;
  }
  return os.hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'standby';
}

/** The watcher's pace (DEFAULTS.watch), each overridable: UNDERSTUDY_WATCH_SETTLE_MS, _FULL_PASS_MS, _RATE (objects a second), _POLL_MS. */
export function watchPace(env: Env = process.env): { settleMs: number; fullPassEveryMs: number; objectsPerSecond: number; pollMs: number } {
  return {
    settleMs: positiveInt(env, 'UNDERSTUDY_WATCH_SETTLE_MS', DEFAULTS.watch.settleMs),
    fullPassEveryMs: positiveInt(env, 'UNDERSTUDY_WATCH_FULL_PASS_MS', DEFAULTS.watch.fullPassEveryMs),
    objectsPerSecond: positiveInt(env, 'UNDERSTUDY_WATCH_RATE', DEFAULTS.watch.objectsPerSecond),
    pollMs: positiveInt(env, 'UNDERSTUDY_WATCH_POLL_MS', DEFAULTS.watch.pollMs),
  };
}
