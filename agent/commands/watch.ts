import * as fs from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { excludeMatcher } from '../../lib/exclude';
import { common, parse } from '../../lib/cli-options';
import { openSession, openState } from '../session';
import { writeState, type WatchStatus } from '../../lib/state-bucket';
import { describeUnsure } from '../../lib/state/watch';
import { Watcher, watchStateFile } from '../watcher';
import { DEFAULTS } from '../../lib/settings';
import type { Root } from '../../lib/roots';
import { baselineStarts } from '../baseline-starts';

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
  // What changes from now on is this watch's to journal, however long it takes to begin.
  const began = Date.now();
  const session = openSession({ nats: o.nats, stream: o.stream, roots: o.roots, name }, env);
  let count = 0;
  let failed: Error | undefined;
  // What it has done goes to the state bucket for `understudy status`; watching never waits for it.
  const state = openState(o.nats, o.stream, `understudy-watch:${name}`).catch(() => undefined);
  const stateFile = watchStateFile(session.journal.dir);
  // Without what a previous run knew, the standby has the roots as their last baseline read them.
  const changedSince = fs.existsSync(stateFile) ? undefined : await baselinesOf(state, o.stream, o.roots, began);
  const watcher = new Watcher(o.roots, session.journal, {
    persistent: true,
    stateFile,
    changedSince,
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
  let unsure: WatchStatus['unsure'];
  const report = async (): Promise<void> => {
    const s = await state;
    const r = watcher.report();
    const value: WatchStatus = { name, journaled: r.journaled, polled: r.polled, lastPass: r.lastPass, mendedTotal: r.mendedTotal, unsure, time: Date.now() };
    if (s !== undefined) await writeState(s.kv, 'watch', name, value).catch(() => undefined);
  };
  const reporting = setInterval(() => void report(), DEFAULTS.watchCommand.reportEveryMs);
  try {
    const look = await watcher.start();
    if (look.unsure.length > 0) {
      const since = Math.min(...o.roots.map((r) => changedSince?.get(r.name) ?? Date.now()));
      unsure = { dirs: look.unsure.length, examples: look.unsure.slice(0, 5), since, at: Date.now() };
      console.error(`understudy watch: ${describeUnsure(unsure)}; "understudy verify --repair" finds and mends it`);
    }
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

/**
 * When each root's last baseline began, for a first look without a saved state; roots without
 * one are said, and so is a bucket that cannot be read: for those, what changed since the watch
 * `began`.
 */
async function baselinesOf(state: Promise<Awaited<ReturnType<typeof openState>> | undefined>, stream: string, roots: readonly Root[], began: number): Promise<Map<string, number>> {
  const names = roots.map((r) => r.name);
  const wait = new Promise<undefined>((r) => setTimeout(() => r(undefined), DEFAULTS.watchCommand.baselineLookupMs).unref());
  const s = await Promise.race([state, wait]);
  let found: Awaited<ReturnType<typeof baselineStarts>> | undefined;
  if (s !== undefined) found = await baselineStarts(s.kv, await jetstreamManager(s.nc), stream, names).catch(() => undefined);
  if (found === undefined) {
    console.error(`understudy watch: no saved state, and the baselines in the state bucket cannot be read: the first look journals only what changed since this watch began, and takes the rest to be on the standby already`);
    return new Map(roots.map((r) => [r.name, began]));
  }
  const out = new Map<string, number>();
  for (const root of roots) {
    const b = found.get(root.name);
    if (b === undefined) {
      console.error(`understudy watch: no saved state and no baseline of root ${root.name}: what is under ${root.dir} now is taken to be on the standby already; "understudy baseline --root ${root.name}=${root.dir}" sends it`);
      out.set(root.name, began);
      continue;
    }
    out.set(root.name, b.started);
    console.error(`understudy watch: no saved state: the first look journals what changed under ${root.name} since its baseline "${b.name}" began (${new Date(b.started).toISOString()}${b.state === 'done' ? '' : `, ${b.state}`})`);
  }
  return out;
}
