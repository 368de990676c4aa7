import { excludeMatcher } from '../../lib/exclude';
import { common, parse } from '../../lib/cli-options';
import { openSession, openState } from '../session';
import { writeState, type WatchStatus } from '../../lib/state-bucket';
import { Watcher, watchStateFile } from '../watcher';
import { DEFAULTS } from '../../lib/settings';

export const usage = `understudy watch --root name=/abs/dir … [--nats URL] [--name NAME] [--stream S] [--verbose]

Journals what processes without the agent change under the roots (a shell, cron, another
tool): created, changed and removed files, directories and links, each once it holds still.
Runs until SIGINT or SIGTERM. --name names its journal (default "watch"). Inside an
application, UNDERSTUDY_WATCH=1 runs the same watcher. What it cannot see (README): changes
that cancel out within the settling time, and trees past the inotify watch limit;
"understudy verify" finds those.`;

/** `understudy watch`. */
export async function watchCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { verbose: { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const o = common(values, env, true);
  const name = o.name ?? 'watch';
  const session = openSession({ nats: o.nats, stream: o.stream, roots: o.roots, name }, env);
  let count = 0;
  let failed: Error | undefined;
  const watcher = new Watcher(o.roots, session.journal, {
    persistent: true,
    stateFile: watchStateFile(session.journal.dir),
    excluded: excludeMatcher(session.settings.exclude),
    onJournaled: (root, rel, kind) => {
      count++;
      if (values.verbose === true) console.log(`${kind} ${root}/${rel}`);
    },
    onError: (err) => {
      console.error(`understudy watch: ${err.message}`);
      failed ??= err;
    },
    onLimit: (message) => console.error(`understudy watch: ${message}`),
  });
  // What it has done goes to the state bucket for `understudy status`; watching never waits for it.
  const state = openState(o.nats, o.stream, `understudy-watch:${name}`).catch(() => undefined);
  const report = async (): Promise<void> => {
    const s = await state;
    const r = watcher.report();
    const value: WatchStatus = { name, journaled: r.journaled, polled: r.polled, lastPass: r.lastPass, mendedTotal: r.mendedTotal, time: Date.now() };
    if (s !== undefined) await writeState(s.kv, 'watch', name, value).catch(() => undefined);
  };
  const reporting = setInterval(() => void report(), DEFAULTS.watchCommand.reportEveryMs);
  try {
    await watcher.start();
    console.error(`understudy watch: watching ${o.roots.map((r) => `${r.name}=${r.dir}`).join(', ')} as journal "${name}"`);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await watcher.close();
    clearInterval(reporting);
    await report();
    await (await state)?.nc.close();
    const shipped = await session.shipped(DEFAULTS.watchCommand.stopShipMs);
    console.error(`understudy watch: stopped; ${count} change(s) journaled${shipped ? ', all in the stream' : `; some are not yet in the stream and stay spooled in ${session.journal.dir}`}`);
    return failed === undefined && shipped ? 0 : 1;
  } finally {
    session.close();
  }
}
