import { SettingsError } from '../../lib/errors';
import { excludeMatcher } from '../../lib/exclude';
import { writeState, type BaselineReport } from '../../lib/state-bucket';
import { walk } from '../../lib/walk';
import { common, parse } from '../../lib/cli-options';
import { openSession, openState } from '../session';
import { Snapshotter, under } from '../snapshot';
import { Progress, type Counts } from './progress';
import { DEFAULTS } from '../../lib/settings';

export const usage = `understudy baseline --root name=/abs/dir … [--nats URL] [--name NAME] [--stream S] [--timeout-s N]

Journals the current state of the roots (directories, files with their bytes and permission
bits, symlinks as links) so that an empty standby becomes complete. Run it on the primary,
while the application runs or not: each object carries the time it was read, and the standby
never puts it on top of a newer change. Exits 0 once all of it is in the stream.
--name names its journal (default "baseline"); UNDERSTUDY_EXCLUDE and UNDERSTUDY_SPOOL_DIR apply.
--timeout-s: give up (exit 1, entries stay spooled) when JetStream takes nothing for this long (${DEFAULTS.baseline.timeoutS}).`;

const MAX_UNSHIPPED = DEFAULTS.baseline.maxUnshipped;

/** `understudy baseline`. */
export async function baseline(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { 'timeout-s': { type: 'string' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const o = common(values, env, true);
  const timeoutS = Number(values['timeout-s'] ?? DEFAULTS.baseline.timeoutS);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new SettingsError(`--timeout-s ${values['timeout-s']} is not a positive number of seconds`);
  const name = o.name ?? 'baseline';
  const session = openSession({ nats: o.nats, stream: o.stream, roots: o.roots, name }, env);
  const excluded = excludeMatcher(session.settings.exclude);
  // Reporting is for `status`; a baseline taken while NATS is away still spools (and waits to ship).
  const state = await openState(o.nats, o.stream, `understudy-baseline:${name}`).catch((err: Error) => {
    console.error(`understudy baseline: cannot report to the state bucket (${err.message}); journaling anyway`);
    return undefined;
  });
  const report: BaselineReport = { state: 'running', started: Date.now(), roots: o.roots.map((r) => r.name), objects: 0, bytes: 0 };
  const save = async (): Promise<unknown> => (state === undefined ? undefined : writeState(state.kv, 'baseline', name, report).catch(() => undefined));
  try {
    await save();
    // A first walk, stat only, gives the totals the progress line needs.
    const total: Counts = { objects: 0, bytes: 0 };
    for (const r of o.roots) {
      for await (const obj of walk(r.dir, (rel) => excluded(rel))) {
        total.objects++;
        total.bytes += obj.size;
      }
    }
    const progress = new Progress('baseline', total);
    const done: Counts = { objects: 0, bytes: 0 };
    const snap = new Snapshotter(session.journal, { databases: true });
    let others = 0;
    let stalled = false;
    walking: for (const r of o.roots) {
      for await (const obj of walk(r.dir, (rel) => excluded(rel))) {
        const s = snap.snapshot(r.name, obj.rel, under(r.dir, obj.rel));
        if (s.kind === 'other') others++;
        done.objects++;
        done.bytes += s.bytes ?? 0;
        progress.update(done);
        if (unshipped(session) > MAX_UNSHIPPED && !(await shippingMoves(session, timeoutS * 1000))) {
          stalled = true;
          break walking;
        }
      }
    }
    const ok = !stalled && (await session.shipped(timeoutS * 1000, () => progress.update(done)));
    report.objects = done.objects;
    report.bytes = done.bytes;
    report.finished = Date.now();
    if (!ok) {
      report.state = 'failed';
      report.error = `${unshipped(session)} entries not in JetStream after ${timeoutS} s${done.objects < total.objects ? ` (walk stopped at ${done.objects} of ${total.objects} objects)` : ''}`;
      await save();
      progress.finish(done, `; ${report.error}: they stay spooled in ${session.journal.dir}, and the next "understudy baseline --name ${name}" ships them first`);
      return 1;
    }
    report.state = 'done';
    await save();
    progress.finish(done, `; all in the stream (journal "${name}", last entry ${session.journal.lastSeq})${others > 0 ? `; ${others} sockets, FIFOs or devices left out` : ''}`);
    return 0;
  } catch (err) {
    report.state = 'failed';
    report.error = (err as Error).message;
    await save();
    throw err;
  } finally {
    session.close();
    await state?.nc.close();
  }
}

/** Waits until the unshipped backlog is below the limit; false when nothing shipped for `stallMs`. */
async function shippingMoves(session: ReturnType<typeof openSession>, stallMs: number): Promise<boolean> {
  let acked = session.shipper.positions().acked;
  let movedAt = Date.now();
  while (unshipped(session) > MAX_UNSHIPPED) {
    if (Date.now() - movedAt > stallMs) return false;
    await new Promise((res) => setTimeout(res, DEFAULTS.baseline.pollMs));
    const now = session.shipper.positions().acked;
    if (now !== acked) [acked, movedAt] = [now, Date.now()];
  }
  return true;
}

function unshipped(session: ReturnType<typeof openSession>): number {
  const { appended, acked } = session.shipper.positions();
  return appended - acked;
}
