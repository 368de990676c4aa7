import { isMainThread } from 'node:worker_threads';
import { agentDisabled, agentSettings, type AgentSettings } from '../lib/settings';
import { Journal } from './journal';
import { Locator } from './locate';
import { Recorder } from './recorder';
import { CommitWait } from './commit-wait';
import { Shipper } from './shipper';
import { install } from './shims/install';
import { installEnv } from './shims/env';
import { installRequireHooks } from './shims/hooks';
import { watchUnseenStores } from './unseen-stores';
import { ObjectJournal, setObjectJournal } from './objects';
import { warnOnce } from './log';
import { DROPPED, publishPosition } from './shared-state';
import { installEndings } from './endings';
import { claimJournal } from './journal-name';
import { Adopter } from './adopt';
import { flushThreads, followThreads, spoolIsEmpty, threadBase, ThreadJournals } from './threads';
import { onExitLast } from './exit-last';
import { FreezeGate } from './freeze';
import type { JournalSink } from './sink';
import { checkpointEntryWriter } from './checkpoint-entry';
import { Transactions } from './transactions';

/** A running agent: one journal, its shipper, and the wrappers that feed it. */
export interface RunningAgent {
  settings: AgentSettings;
  journal: Journal;
  shipper: Shipper;
  /** `transaction()` of the public API runs through it. */
  transactions: Transactions;
}

const KEY = Symbol.for('understudy.agent');
type Holder = { [KEY]?: RunningAgent };

/** The agent running in this process, if any (shared across copies of this module). */
export function runningAgent(): RunningAgent | undefined {
  return (globalThis as Holder)[KEY];
}

/**
 * Starts the agent from UNDERSTUDY_* variables. Any problem is said once and
 * the application runs on without replication; nothing is thrown into it.
 */
export function startAgent(env: NodeJS.ProcessEnv = process.env): RunningAgent | undefined {
  let disabled: boolean;
  try {
    disabled = agentDisabled(env);
  } catch (err) {
    return notStarted(err);
  }
  if (disabled) return undefined;
  const existing = runningAgent();
  if (existing !== undefined) return existing;
  let journal: Journal | undefined;
  try {
    const given = agentSettings(env, process.argv[1]);
    // A key that cannot be used stops the agent here: entries must never go out unsigned when signing was asked for.
    // Required here, not at the top: node:crypto costs ~7 ms of every start that signs nothing (issue 15).
    if (given.signingKey !== undefined) (require('../lib/signing') as typeof import('../lib/signing')).loadSigner(given.signingKey);
    // A worker thread's fs is a module instance of its own, so it gets a journal of its own,
    // named after its process's (README, "Journal names").
    const base = isMainThread ? given.name : threadBase(given.name);
    const claimed = claimJournal(given.spoolDir, base, isMainThread ? 'process' : 'thread', {
      maxBytes: given.spoolMaxBytes, segmentBytes: given.spoolSegmentBytes, fsyncAlways: given.spoolFsync === 'always',
    });
    journal = claimed.journal;
    const opened = claimed.opened;
    const settings: AgentSettings = { ...given, name: journal.name };
    const threads = ThreadJournals.open(journal.name);
    const entry = isMainThread ? undefined : threads.claim(journal.name);
    if (opened.tornBytes > 0) {
      warnOnce('torn', `journal "${settings.name}": cut a torn spool tail of ${opened.tornBytes} bytes left by a crash (${opened.tornWhy})`);
    }
    const shipper = new Shipper(settings, journal.dir, journal.epoch, entry?.shared);
    // One per process: a lost standby is rebased by the process's own journal's shipper, not its threads'.
    shipper.servesRebases = isMainThread;
    shipper.servesCheckpoints = true;
    // A spool with entries may be asked to resend them (pull catch-up): only a fresh thread journal waits.
    if (!isMainThread && spoolIsEmpty(journal.dir)) {
      shipper.startOnFirstAppend(journal, opened.lastSeq);
    } else {
      shipper.start(opened.lastSeq);
      shipper.attach(journal);
    }
    const j = journal;
    journal.onDrop = (bytes) => {
      publishPosition(shipper.shared, DROPPED, j.dropped);
      warnOnce('spool-full', `journal "${settings.name}": the spool holds ${bytes} bytes the standby has not applied (UNDERSTUDY_SPOOL_MAX_BYTES=${settings.spoolMaxBytes}); changes are NOT replicated until it drains, and the standby will differ: verify and repair it then (understudy status shows the count)`);
    };
    // Every state-changing call passes the freeze gate; the shipper worker freezes it for checkpoints.
    const gate = new FreezeGate(shipper.shared);
    const recorder = new Recorder(journal, new Locator(settings.roots, settings.exclude), gate);
    gate.listen(shipper.control, checkpointEntryWriter(journal, recorder, shipper.control));
    const transactions = new Transactions(recorder, gate, shipper.shared, journal.epoch);
    journal.txOf = transactions.current;
    if (settings.mode !== 'async') {
      const commit = new CommitWait(shipper.shared, settings.mode, settings.syncTimeoutMs, settings.onTimeout, () => transactions.inside());
      recorder.commit = commit;
      if (settings.mode === 'strong') transactions.awaitEnd = (seq) => commit.waitAsync(seq, 'the end of a transaction');
    }
    install(recorder);
    // Configuration and jobs share the file changes' journal, and so their order.
    setObjectJournal(new ObjectJournal(recorder, journal.epoch));
    // A worker's process.env is a copy of its own (unless SHARE_ENV): the process's configuration is the main thread's.
    if (isMainThread) installEnv();
    installRequireHooks();
    // After the wrappers: what they cannot see is said, not silently missing on the standby (issue 16).
    watchUnseenStores(settings.watch);
    const agent: RunningAgent = { settings, journal, shipper, transactions };
    (globalThis as Holder)[KEY] = agent;
    installEndings({ name: settings.name, exitTimeoutMs: settings.exitTimeoutMs, journal, shipper, beforeFlush: () => transactions.endAll() });
    if (entry !== undefined) process.on('exit', () => entry.release());
    if (isMainThread) {
      if (settings.watch) startWatcher(settings, journal, gate);
      const adopter = new Adopter(settings, given.name);
      adopter.start();
      followThreads(threads, settings.spoolDir, (name) => adopter.adopt(name));
      // After the endings' flush: this process's own journal goes first; then its threads', then what it adopted.
      onExitLast(() => flushThreads(threads, settings.exitTimeoutMs));
      process.on('exit', () => adopter.stop(settings.exitTimeoutMs));
    } else {
      // The next thread to start takes a terminated one's journal; the main thread ships what is left at the end.
      followThreads(threads, settings.spoolDir);
    }
    return agent;
  } catch (err) {
    journal?.close();
    return notStarted(err);
  }
}

/** Says once why the agent did not start; the application runs on. */
function notStarted(err: unknown): undefined {
  warnOnce('start', `agent not started, the application runs without replication: ${(err as Error).message}`);
  return undefined;
}

/**
 * What the in-process watcher leaves out: what is excluded, and the databases this process's
 * better-sqlite3 connections write (captured commit by commit). Reading those here would also
 * be harmful: closing any descriptor of a file drops every POSIX lock the process holds on it,
 * SQLite's own included.
 */
function watchExcluded(excluded: (rel: string) => boolean): (rel: string) => boolean {
  const { sqliteDatabases } = require('./shims/libs/better-sqlite3-patch') as typeof import('./shims/libs/better-sqlite3-patch');
  return (rel) => excluded(rel) || sqliteDatabases.tracks(rel);
}

/**
 * UNDERSTUDY_WATCH=1: what child processes (and anything else) change under the roots is
 * journaled too; what the wrappers journaled is not journaled again. It never keeps the
 * application alive, and a failure only stops the watching, said once.
 */
function startWatcher(settings: AgentSettings, journal: Journal, gate: FreezeGate): void {
  // Loaded only when asked for: chokidar is ~11 ms of every start that does not watch (issue 15).
  const { Watcher, watchStateFile } = require('./watcher') as typeof import('./watcher');
  const { excludeMatcher } = require('../lib/exclude') as typeof import('../lib/exclude');
  // What it journals waits at the freeze gate too: a checkpoint's position must stay free.
  const sink: JournalSink = {
    record(change) {
      gate.enterSync();
      try {
        return journal.record(change);
      } finally {
        gate.leaveSync();
      }
    },
  };
  const watcher = new Watcher(settings.roots, sink, {
    persistent: false,
    stateFile: watchStateFile(journal.dir),
    excluded: watchExcluded(excludeMatcher(settings.exclude)),
    onError: (err) => warnOnce('watch', `watching the roots failed (${err.message}); changes by other processes are not journaled`),
    onLimit: (message) => warnOnce('watch-limit', message),
    keepLocks: true,
    onLocked: (root, rel) => warnOnce('watch-locked', `the watcher leaves ${root}/${rel} unread while this process holds a lock on it (a database or a store's lock file, opened by code the agent does not capture), and looks again later: closing any descriptor of the file would drop the application's lock. The same holds for any other file so locked; "understudy watch" run as its own process reads them`),
  });
  journal.onRecord = (root, rel, op) => watcher.journaled(root, rel, op);
  watcher.start().catch((err: Error) => warnOnce('watch', `cannot watch the roots (${err.message}); changes by other processes are not journaled`));
}
