import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { HashName } from './digest';
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
  /** Replicas of the stream and state bucket when understudy creates them (UNDERSTUDY_STREAM_REPLICAS; 3 on a cluster). */
  streamReplicas: 1,
  /** The NATS client and the state bucket. */
  nats: {
    /** Pause between reconnect attempts: short, so a restarted server is found again within a heartbeat. */
    reconnectWaitMs: 250,
    /** A state-bucket key listing gives up with what it has after this: an ordered consumer was seen to stall for minutes on a busy server. */
    listKeysMs: 3000,
    /** `understudy promote` connects once, with this timeout: it must fence promptly, NATS or not. */
    promoteConnectMs: 3000,
    /** Smallest stream worth making when the server has less room than streamMaxBytes (it tries 1/4 of the size each time). */
    minStreamBytes: 64 * 1024 * 1024,
  },
  /** lib/retry's first pause between tries when the caller names none: long enough not to hammer a server that is starting. */
  retryFirstWaitMs: 500,
  /** Reading the spool (lib/spool-reader). */
  spoolRead: {
    /** One read of a segment: large enough that a shipper drains a backlog in few syscalls. */
    readBytes: 4 * 1024 * 1024,
    /** A read into what is left of a buffer is worth making only with this much room; else a fresh buffer. */
    minRoomBytes: 1024 * 1024,
    /** Larger than any frame the journal writes (entries are chunked well below NATS's payload limit): a longer length is torn. */
    maxFrameBytes: 64 * 1024 * 1024,
  },
  /** A tree walk lets the event loop run after this much synchronous work, so a long walk never stalls a replayer. */
  walkSliceMs: 10,
  /** The one read buffer every hash goes through (allocating one per file was a tenth of verify's time). */
  digestBufferBytes: 256 * 1024,
  /** The lock that makes a journal one live writer's (agent/spool-lock). */
  spoolLock: {
    /** A lock younger than this with no readable holder is being written; older, it was left by a crash. */
    unreadableGraceMs: 10_000,
    /** How long a taker waits for another one's takeover of the same stale lock to end. */
    takeoverWaitMs: 2000,
    /** Pause between looks at that takeover: it is a few syscalls long. */
    takeoverPollMs: 5,
  },
  /** The process's table of thread journals (agent/threads). */
  threads: {
    /** Thread journals tracked at once; a thread beyond them still replicates, only without the exit wait. */
    entries: 64,
    /** Room for a thread journal's name in the shared table: a journal name is at most 128 bytes. */
    nameBytes: 128,
    /** At exit, a thread journal whose shipper acknowledges nothing for this long is given up on (its thread is gone). */
    stallMs: 2000,
    /** Longest single wait on a thread's acknowledgement at exit, so a stall is noticed promptly. */
    pollMs: 50,
  },
  /** At exit the last heartbeat tells `status` the final position: worth a short wait, never a long one. */
  exitReportWaitMs: 500,
  /** How often an adopted journal is checked for being fully shipped and reported, so it is let go of. */
  adoptCheckMs: 200,
  /** Ranges kept in lost.json; older ones are dropped (a baseline after the newest covers them all). */
  lostRangesKept: 20,
  /** Path resolution (agent/locate): a directory's real path is remembered this long, and this many at most (then all are forgotten). */
  locate: { dirMemoMs: 1000, dirMemoMax: 4096 },
  /** The stack depth read to find where the application created a queue (its default name): past the queue libraries' own frames. */
  queueSiteFrames: 30,
  /** A command's own journal (agent/session). */
  session: {
    /** How often a command looks whether JetStream has all of its entries. */
    shipPollMs: 50,
    /** Once shipped, how long it waits for the final heartbeat that tells `status` and the standby where the journal ends. */
    reportWaitMs: 1000,
  },
  /** `understudy baseline`. */
  baseline: {
    /** --timeout-s: give up when JetStream takes nothing for this long; a baseline of a large tree is slow, not stuck. */
    timeoutS: 600,
    /** Entries journaled but not yet in JetStream, at most: the walk waits rather than run far ahead. */
    maxUnshipped: 4096,
    /** How often the walk, while it waits, looks whether shipping moved. */
    pollMs: 20,
  },
  /** A long command's progress line: redrawn this often on a terminal, printed this often to a log. */
  progress: { terminalEveryMs: 100, logEveryMs: 5000 },
  /**
   * `understudy watch` reports to the state bucket this often, and on stop waits this long for its
   * entries to ship; starting without a saved state it waits this long for the baseline records.
   */
  watchCommand: { reportEveryMs: 5000, stopShipMs: 10_000, baselineLookupMs: 5000 },
  /** `understudy verify` and the standby's side of it. */
  verify: {
    /** --hash: xxh64 is fast; sha256 (the other choice) resists a forger. */
    hash: 'xxh64' as HashName,
    /** --rounds: a candidate gets this many rounds to settle before it is called unsettled. */
    rounds: 5,
    /** Heartbeats come at least this often from a live agent (heartbeatMs and a margin): waiting this long makes its report cover our read. */
    heartbeatWaitMs: 1200,
    /** An agent whose heartbeat is younger than this is live: its spooled entries, not only its shipped ones, must reach the standby. */
    liveAgentMs: 5000,
    /** How long to wait for the standby to apply what the agents had journaled. */
    catchUpMs: 15_000,
    /** How often the standby's applied position is read while waiting for it. */
    pollMs: 100,
    /** The "found equal" notice to the replayer is best effort: this long, then it is given up. */
    settleNoticeMs: 5000,
    /** --repair: how long its entries may take to reach JetStream, and then to be applied. */
    repairMs: 60_000,
    /** The longest pause between two messages of the replayer's answer (a large tree takes long in all, but never long between two). */
    replyIdleMs: 30_000,
    /** Digests per reply message: well under NATS's 1 MB payload. */
    digestsPerReply: 2000,
    /** Paths one digest request may name, at most. */
    maxPaths: 100_000,
  },
  /** The standby's own files and pools. */
  standby: {
    /** libuv's thread pool, so a commit's fsyncs reach the disk together (measured in replayer/threadpool.ts: 28 ms for 300 with 32 threads, 49-57 ms with 4). */
    threadPoolSize: 32,
    /** Tries at taking a stale --state lock, each lost only to another taker of it, before "another process keeps taking it". */
    stateLockAttempts: 5,
    /** At most this many quarantined entries are kept; past it only the reasons are logged. */
    quarantineKept: 1000,
    /** How many objects' versions are remembered at most; past it the oldest half is forgotten. */
    versionsCap: 200_000,
    /** The versions log is compacted once it holds this many lines beyond four per object remembered. */
    versionsSlackLines: 10_000,
    /** Messages `understudy inspect` asks the stream for at a time. */
    inspectBatch: 32,
  },
  /** Standbys as replication slots: what each holds back, and when it is lost (replayer/slots). */
  slots: {
    /** How often a following standby trims the stream and the spools below the slowest standby, and judges the others (a few bucket reads each: often enough that a busy writer does not fill a small stream between two). */
    trimEveryMs: 1000,
    /** A standby whose record is older than this is stopped (it writes one at every commit, and every heartbeat while idle). */
    stoppedAfterMs: 10_000,
    /** --max-standby-lag's bytes, when not given: this share (percent) of the stream's max_bytes, so that the stream never fills because of one standby and keeps room for the others. */
    maxLagBytesPct: 75,
    /** --max-standby-lag's age, when not given: a standby whose oldest unapplied entry is older than this is lost (a week: a long weekend down is not). */
    maxLagMs: 7 * 24 * 3600 * 1000,
    /** --keep-stream, when not given: this share (percent) of max_bytes of the newest entries stays in the stream whatever the standbys committed, so a standby that joins (or whose state was restored from a backup) finds recent history there (PostgreSQL's wal_keep_size). */
    keepBytesPct: 25,
    /** A standby is lost only once past its limit at every round for this long: one that keeps up, but whose committed position trails a burst by a commit, is not. */
    lostAfterMs: 10_000,
    /** A lost standby whose rebase failed asks again after this: the primary may be mended meanwhile, and asking at once would only fail again. */
    rebaseRetryMs: 30_000,
  },
  /** At this share of max_bytes (percent) `understudy status`'s stream line says what comes next: discard new refuses once it is full. */
  streamWarnPct: 80,
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
  /** The journal and what feeds it (agent/journal, agent/snapshot, agent/objects). */
  journal: {
    /** Room the spool-full check allows beyond an entry's data, for its header and frame (a few hundred bytes). */
    headerRoomBytes: 512,
    /** A full spool is measured again at most this often: the shipper trims it meanwhile, and a stat of every segment per change would load the application's thread. */
    remeasureMs: 100,
    /** The reused write buffer's first size: most entries fit, so a small change allocates nothing. */
    writeBufferBytes: 64 * 1024,
    /** Larger entries (chunks of big files) get a buffer of their own rather than pin one that size. */
    reusedBufferMaxBytes: 1024 * 1024,
    /** A snapshot reads a file up to this size whole; a larger one a chunk at a time, so memory stays bounded. */
    snapshotWholeBytes: 4 * 1024 * 1024,
    /** Attempts at a file that keeps changing while it is read, before its last read is journaled anyway. */
    snapshotAttempts: 3,
    /** A job's label (a p-queue task's name) is cut to this many characters: it names the task, it is not data. */
    jobLabelChars: 128,
  },
  /** The reconciler's inner rhythm (agent/reconcile); its pace is DEFAULTS.watch. */
  reconcile: {
    /**
     * When a new directory is listed again. Without these looks, 6 of 32 runs of the seeded shell
     * workloads lost a file renamed into a directory made again a few milliseconds before; with them, 0 of 32.
     */
    secondLooksMs: [400, 1500],
    /** The first look yields to the event loop after this many objects: a large tree must not hold it for seconds. */
    yieldEveryObjects: 2000,
    /** The first look without a saved state also journals what changed this long before the watch began: file times come from the kernel's coarse clock, up to a tick (10 ms at HZ=100) behind Date.now(). */
    startSlackMs: 10,
    /** Directories that are not due yet are looked at no sooner than this: a timer per millisecond would spin. */
    minRecheckMs: 10,
    /** A file left unread for a lock this process holds is looked at again this many times a settle apart (a transaction's lock), then only by full passes (a store's lock file, held for good). */
    lockedQuickLooks: 5,
    /** A full pass pauses this long after each slice of its objects; objectsPerSecond sets the slice. */
    passPauseMs: 100,
    /** The saved state is written in pieces of this many characters: a tree of millions of objects is never one string. */
    stateChunkChars: 1 << 20,
    /** A full pass's report names this many of the objects it mended: enough to recognise a pattern in status. */
    passExamples: 10,
  },
  /** The standby's fs applier (replayer/apply/fs). */
  apply: {
    /** Buffer a staged or linked file is copied through: 1 MiB, a chunk's size rounded up, so most copies take one read. */
    copyBufferBytes: 1024 * 1024,
    /**
     * Mode of a file an append or pwrite creates on the standby because it lacks it (open(2)'s
     * default less a 022 umask); the primary's mode follows with the next put, chmod or repair.
     */
    createdFileMode: 0o644,
    /**
     * Files and directories the fs applier holds open until the commit fsyncs them (by inode, so a
     * rename or unlink since cannot hide one); past this many the oldest are fsynced at once. Far
     * under any RLIMIT_NOFILE Node starts with (it raises the soft limit to the hard one).
     */
    heldFds: 512,
  },
  /** The shipper worker's pace (agent/ship/): waits, timeouts and caps, each with why it is what it is. */
  /** Consistent checkpoints: `understudy checkpoint` and each agent's side of it (agent/ship/checkpoint-service). */
  checkpoint: {
    /** --timeout-ms: how long every live agent has to answer a prepare; one that does not is named and the checkpoint aborted. */
    timeoutMs: 2000,
    /**
     * An agent thaws by itself this long past --timeout-ms after a prepare reached it, commit or
     * not (the command may die): room for the commit to travel after the last answer came.
     */
    commitGraceMs: 500,
    /** After the commit, how long an agent waits for its application thread to write the entry and for JetStream's ack. */
    entryWaitMs: 10_000,
    /** A heartbeat younger than this makes an agent live: it must be in the checkpoint. */
    liveAgentMs: 5000,
    /** The longest single wait of the worker on the gate's counters, so a missed wake-up costs little. */
    pollMs: 5,
  },
  ship: {
    /** After a failed publish one message goes first with this timeout, doubled per failure: a new stream leader is noticed in a second. */
    probeFirstMs: 1000,
    /** The longest a probe waits for its ack: JetStream's own publish timeout, beyond which waiting tells nothing more. */
    probeMaxMs: 5000,
    /** A failed round waits this times 2^failures before the next (100 ms after the first failure): retry soon, never spin. */
    backoffBaseMs: 50,
    /** The longest wait between failed rounds: an outage costs a publish attempt every two seconds, not more. */
    backoffMaxMs: 2000,
    /** A corrupt spool (said once) is read again this often: someone may mend it, and a tighter loop would only burn CPU. */
    corruptRetryMs: 5000,
    /** A spool that begins after the next entry is looked at again this often while the state bucket cannot yet say what the standby applied. */
    gapRetryMs: 1000,
    /** The heartbeat after catching up, when the application waits for it (a flush, an exit): soon enough not to be felt. */
    beatSoonHurriedMs: 20,
    /** The heartbeat after catching up otherwise: a steady sync-mode writer costs a state-bucket put five times a second, not fifty. */
    beatSoonMs: 200,
    /** The acked position is saved within this: it only spares a restarted process re-sending duplicates, and each save is a rename. */
    saveAckedWithinMs: 1000,
    /** Stream checks after a failure (re-create, the last message of the journal): brief, a cluster may be electing its leaders. */
    streamCheckTimeoutMs: 2000,
    /** The most one resend request re-reads from the spool: a standby far behind asks again for the rest. */
    resendMaxBytes: 256 * 1024 * 1024,
    /** A caught-up shipper looks at the spool this often even without a wake-up: a missed notify costs a second at most. */
    idleWakeMs: 1000,
    /** A lost watch of the standby's applied position is begun again after this. */
    appliedRewatchMs: 1000,
    /** Connecting, creating the stream and opening the state bucket are tried again after this, doubled each time… */
    retryFirstMs: 200,
    /** …up to this: shipping outlives any outage, and a server that comes back is found within five seconds. */
    retryMaxMs: 5000,
  },
  /** The agent's side of a lost standby's recovery (agent/ship/rebase-service): a baseline, then verify --repair, as child processes. */
  rebase: {
    /** Each child (baseline, then verify) is stopped past this: a baseline of a large tree takes hours, a hung one must not hold the request for ever. */
    childTimeoutMs: 6 * 3600 * 1000,
    /** A child told to stop (SIGTERM) that is still there this much later is killed. */
    killGraceMs: 5000,
    /** How often an agent looks again for a request nobody took and one whose agent died: a watch only speaks when a record changes. */
    checkEveryMs: 5000,
    /** A running rebase whose agent's heartbeat (every heartbeatMs) is older than this is taken over: a NATS hiccup is not a death. */
    takeOverAfterMs: 30_000,
    /** What is kept of a child's stderr (its end) for the reason a rebase failed. */
    stderrTailBytes: 2000,
    /** A child looks this often whether the agent that started it is still its parent, and ends when not: no orphan holds the journal. */
    parentCheckMs: 1000,
    /** A lost watch of the requests is begun again after this. */
    rewatchMs: 1000,
  },
  /** Point-in-time copies on the standby (replayer/checkpoints). */
  checkpoints: {
    /** --keep-checkpoints when not given: a few, so that yesterday's nightly and the last hourly ones survive a bad hour; each costs only what changed after it. */
    keep: 3,
    /** Pending and failed checkpoints remembered (the newest): they cost a line each, and status lists them. */
    marksKept: 20,
    /** A following replayer republishes checkpoints.<standby> this often: the bytes kept for the newest grow with each change. */
    publishEveryMs: 5000,
  },
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
    /**
     * What one journal may stage of its open transactions before the end comes: they are applied
     * only whole, so all of it waits in memory. A larger one is refused (the replayer stops, naming
     * it), never applied in part.
     */
    maxStaged: { entries: 200_000, bytes: 256 * 1024 * 1024 },
    /** A checkpoint fails when its other journals have not reached their entry this long after the first did (their entries wait meanwhile). */
    checkpointWaitMs: 30_000,
    /** How often the wait of checkpoints is looked at, when no message comes to do it. */
    settleEveryMs: 1000,
    /** Messages the consumer asks the server for at a time: at most ~28 MiB buffered (a message holds up to 900 KiB). */
    consumeMessages: 32,
    /** Objects in doubt named in the state bucket for `status` (the count is always whole). */
    doubtsListed: 20,
    /** A promotion's fences arrive one journal after another, ms apart: what arrives within this is said as one promotion. */
    fenceSayMs: 500,
    /** At start the replayer reads the fences before applying anything; a bucket that has not answered by then is followed on while applying (said). */
    fenceLoadMs: 10_000,
    /** A watch of the fences that broke (a server restarted) is begun again after this: fences held refuse meanwhile. */
    fenceRewatchMs: 2000,
  },
  /** The live status page (replay --http-port; replayer/status/page-server). */
  statusPage: {
    /** --http-host when not given: the page has no authentication, so only this machine reaches it. */
    host: '127.0.0.1',
    /** What status says is read again this often: a lag chart needs points closer than a person looks; one read is a few NATS requests. */
    sampleEveryMs: 2000,
    /** The lag chart's window: enough to see a standby stop and catch up, 300 samples at most in memory and in each answer. */
    historyMs: 10 * 60 * 1000,
    /** Quarantined entries whose reasons are shown (the count is always whole). */
    quarantineListed: 5,
    /** The page asks for the JSON this often: as often as it changes. */
    refreshMs: 2000,
    /** An answer not come within this is the replayer not answering: a sample is a few NATS requests, far quicker. */
    answerTimeoutMs: 5000,
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
    replicas: positiveInt(env, 'UNDERSTUDY_STREAM_REPLICAS', DEFAULTS.streamReplicas, MAX_REPLICAS),
  };
  for (const u of s.url.split(',')) {
    if (!isServerUrl(u.trim())) throw new SettingsError(`UNDERSTUDY_NATS_URL: "${u}" is not a nats://host:port URL`);
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

/** UNDERSTUDY_DISABLE: 1 loads nothing; unset, empty or 0 runs the agent; anything else is refused rather than guessed. */
export function agentDisabled(env: Env): boolean {
  return oneOf(env, 'UNDERSTUDY_DISABLE', ['0', '1'] as const, '0') === '1';
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
    syncTimeoutMs: positiveInt(env, 'UNDERSTUDY_SYNC_TIMEOUT_MS', DEFAULTS.syncTimeoutMs, MAX_TIMER_MS),
    onTimeout: oneOf(env, 'UNDERSTUDY_ON_TIMEOUT', ['fail', 'degrade'] as const, DEFAULTS.onTimeout),
    spoolDir,
    stream: streamName(env.UNDERSTUDY_STREAM),
    exclude: (nonEmpty(env.UNDERSTUDY_EXCLUDE) ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    exitTimeoutMs: positiveInt(env, 'UNDERSTUDY_EXIT_TIMEOUT_MS', DEFAULTS.exitTimeoutMs, MAX_TIMER_MS),
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
  if (!/^[0-9]+$/.test(s) || Number(s) <= 0) throw new SettingsError(`UNDERSTUDY_SPOOL_FSYNC: "${s}" is not always, never or an interval in ms`);
  return inRange('UNDERSTUDY_SPOOL_FSYNC', s, MAX_TIMER_MS);
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

/**
 * A whole number written in decimal digits ("1e3", "0x10", "1.0" are refused: a setting
 * read differently from how it looks is a mistake waiting), at least 1 and at most `max`.
 */
function positiveInt(env: Env, key: string, dflt: number, max: Limit = MAX_SAFE): number {
  const v = nonEmpty(env[key]);
  if (v === undefined) return dflt;
  if (!/^[0-9]+$/.test(v) || Number(v) <= 0) throw new SettingsError(`${key}: "${v}" is not a positive whole number`);
  return inRange(key, v, max);
}

/** An upper bound of a numeric setting and why it is there (said in the error). */
interface Limit { most: number; why: string }
const MAX_SAFE: Limit = { most: Number.MAX_SAFE_INTEGER, why: 'the largest whole number JavaScript holds exactly' };
/** Node fires a timer of more than 2^31-1 ms at once (TimeoutOverflowWarning): a longer wait would be no wait. */
const MAX_TIMER_MS: Limit = { most: 2 ** 31 - 1, why: "the longest timer Node keeps, about 24.8 days" };
/** JetStream keeps at most five replicas of a stream. */
const MAX_REPLICAS: Limit = { most: 5, why: 'the most replicas JetStream keeps' };

function inRange(key: string, v: string, max: Limit): number {
  const n = Number(v);
  if (n > max.most) throw new SettingsError(`${key}: "${v}" is out of range: at most ${max.most} (${max.why})`);
  return n;
}

/**
 * Whether `u` is a server address nats.js can dial: nats|tls|ws|wss://[user[:pass]@]host[:port][/path]
 * with a host and a port of at most 65535, or a bare host:port.
 */
function isServerUrl(u: string): boolean {
  const bare = /^[^\s/:]+:([0-9]{1,5})$/.exec(u);
  if (bare !== null) return Number(bare[1]) <= 65535;
  if (!/^(nats|tls|ws|wss):\/\/\S+$/.test(u)) return false;
  try {
    return new URL(u).hostname !== '';
  } catch {
    return false;
  }
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
 * The standby's name, as status shows it: `flag` (replay --standby), UNDERSTUDY_STANDBY, or the
 * host's name made one key token (letters, digits, `-` and `_`; anything else becomes `_`).
 */
export function standbyName(env: Env = process.env, flag?: string): string {
  const [given, what] = flag !== undefined ? [flag, '--standby'] : [env.UNDERSTUDY_STANDBY, 'UNDERSTUDY_STANDBY'];
  if (given !== undefined && (given !== '' || flag !== undefined)) {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(given)) throw new SettingsError(`${what} "${given}" must be 1-64 letters, digits, '-' or '_'`);
    return given;
  }
  return os.hostname().replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64) || 'standby';
}

/** The watcher's pace (DEFAULTS.watch), each overridable: UNDERSTUDY_WATCH_SETTLE_MS, _FULL_PASS_MS, _RATE (objects a second), _POLL_MS. */
export function watchPace(env: Env = process.env): { settleMs: number; fullPassEveryMs: number; objectsPerSecond: number; pollMs: number } {
  return {
    settleMs: positiveInt(env, 'UNDERSTUDY_WATCH_SETTLE_MS', DEFAULTS.watch.settleMs, MAX_TIMER_MS),
    fullPassEveryMs: positiveInt(env, 'UNDERSTUDY_WATCH_FULL_PASS_MS', DEFAULTS.watch.fullPassEveryMs, MAX_TIMER_MS),
    objectsPerSecond: positiveInt(env, 'UNDERSTUDY_WATCH_RATE', DEFAULTS.watch.objectsPerSecond),
    pollMs: positiveInt(env, 'UNDERSTUDY_WATCH_POLL_MS', DEFAULTS.watch.pollMs, MAX_TIMER_MS),
  };
}
