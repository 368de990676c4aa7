import { isMainThread } from 'node:worker_threads';
import { agentSettings, type AgentSettings } from '../lib/settings';
import { Journal } from './journal';
import { Locator } from './locate';
import { Recorder } from './recorder';
import { CommitWait } from './commit-wait';
import { Shipper } from './shipper';
import { install } from './shims/install';
import { installEnv } from './shims/env';
import { installRequireHooks } from './shims/hooks';
import { ObjectJournal, setObjectJournal } from './objects';
import { warnOnce } from './log';
import { DROPPED, publishPosition } from './shared-state';
import { loadSigner } from '../lib/signing';
import { excludeMatcher } from '../lib/exclude';
import { Watcher } from './watcher';
import { installEndings } from './endings';

/** A running agent: one journal, its shipper, and the wrappers that feed it. */
export interface RunningAgent {
  settings: AgentSettings;
  journal: Journal;
  shipper: Shipper;
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
  if (env.UNDERSTUDY_DISABLE === '1') return undefined;
  // The application's own worker threads would need the same journal; they are not journaled (README).
  if (!isMainThread) return undefined;
  const existing = runningAgent();
  if (existing !== undefined) return existing;
  let journal: Journal | undefined;
  try {
    const settings = agentSettings(env, process.argv[1]);
    // A key that cannot be used stops the agent here: entries must never go out unsigned when signing was asked for.
    if (settings.signingKey !== undefined) loadSigner(settings.signingKey);
    journal = new Journal(settings.spoolDir, settings.name, {
      maxBytes: settings.spoolMaxBytes, segmentBytes: settings.spoolSegmentBytes, fsyncAlways: settings.spoolFsync === 'always',
    });
    const opened = journal.open();
    if (opened.tornBytes > 0) {
      warnOnce('torn', `journal "${settings.name}": cut a torn spool tail of ${opened.tornBytes} bytes left by a crash (${opened.tornWhy})`);
    }
    const shipper = new Shipper(settings, journal.dir, journal.epoch);
    shipper.start(opened.lastSeq);
    shipper.attach(journal);
    const j = journal;
    journal.onDrop = (bytes) => {
      publishPosition(shipper.shared, DROPPED, j.dropped);
      warnOnce('spool-full', `journal "${settings.name}": the spool holds ${bytes} bytes the standby has not applied (UNDERSTUDY_SPOOL_MAX_BYTES=${settings.spoolMaxBytes}); changes are NOT replicated until it drains, and the standby will differ: verify and repair it then (understudy status shows the count)`);
    };
    const recorder = new Recorder(journal, new Locator(settings.roots, settings.exclude));
    if (settings.mode !== 'async') recorder.commit = new CommitWait(shipper.shared, settings.mode, settings.syncTimeoutMs, settings.onTimeout);
    install(recorder);
    // Configuration and jobs share the file changes' journal, and so their order.
    setObjectJournal(new ObjectJournal(recorder, journal.epoch));
    installEnv();
    installRequireHooks();
    const agent: RunningAgent = { settings, journal, shipper };
    (globalThis as Holder)[KEY] = agent;
    installEndings({ name: settings.name, exitTimeoutMs: settings.exitTimeoutMs, journal, shipper });
    if (settings.watch) startWatcher(settings, journal);
    return agent;
  } catch (err) {
    journal?.close();
    warnOnce('start', `agent not started, the application runs without replication: ${(err as Error).message}`);
    return undefined;
  }
}

/**
 * UNDERSTUDY_WATCH=1: what child processes (and anything else) change under the roots is
 * journaled too; what the wrappers journaled is not journaled again. It never keeps the
 * application alive, and a failure only stops the watching, said once.
 */
function startWatcher(settings: AgentSettings, journal: Journal): void {
  const watcher = new Watcher(settings.roots, journal, {
    persistent: false,
    excluded: excludeMatcher(settings.exclude),
    onError: (err) => warnOnce('watch', `watching the roots failed (${err.message}); changes by other processes are not journaled`),
    onLimit: (message) => warnOnce('watch-limit', message),
  });
  journal.onRecord = (root, rel, op) => watcher.journaled(root, rel, op);
  watcher.start().catch((err: Error) => warnOnce('watch', `cannot watch the roots (${err.message}); changes by other processes are not journaled`));
}
