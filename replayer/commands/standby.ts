import { jetstreamManager } from '@nats-io/jetstream';
import { SettingsError, UnderstudyError } from '../../lib/errors';
import { connectNats, openStateKv, stateKeys } from '../../lib/nats';
import { parseStateKey, readState, type StateKind } from '../../lib/state-bucket';
import { common, parse } from '../../lib/cli-options';
import { DEFAULTS } from '../../lib/settings';

export const usage = `understudy standby drop NAME [--nats URL] [--stream S] [--force]

Removes standby NAME for good (PostgreSQL's pg_drop_replication_slot): its committed
position, its lost mark and its rebase request. The stream and the agents' spools stop
keeping anything for it at the next trim. A standby that is running is refused (stop its
replayer first) unless --force; if it runs again, it registers anew from its own --state.`;

/** What belongs to a standby in the state bucket, besides its record. */
const ITS: StateKind[] = ['standby', 'lost', 'rebase', 'doubts'];

/** `understudy standby drop`. */
export async function standby(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(argv, { force: { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const [sub, name, ...extra] = positionals;
  if (sub !== 'drop') throw new SettingsError(`standby: unknown subcommand ${sub === undefined ? '(none)' : `"${sub}"`}; try "understudy standby drop NAME"`);
  if (name === undefined) throw new SettingsError('standby drop: say which standby (understudy standby drop NAME; understudy status lists them)');
  if (extra.length > 0) throw new SettingsError(`standby drop: unexpected arguments ${extra.join(' ')}`);
  const o = common(values, env, false);
  const nc = await connectNats(o.nats, 'understudy-standby');
  try {
    const kv = await openStateKv(nc, o.stream);
    const keys = (await stateKeys(await jetstreamManager(nc), o.stream)).map(parseStateKey).filter((k) => k !== undefined);
    const records = keys.filter((k) => k.kind === 'standby');
    // A standby's keys are its name, and name.journal for each replayer of one journal it runs.
    const mine = (n: string): boolean => n === name || n.startsWith(`${name}.`);
    const its = records.filter((k) => mine(k.name));
    if (its.length === 0) {
      const known = [...new Set(records.map((k) => k.name))].sort();
      throw new UnderstudyError(`no standby "${name}" is registered in stream ${o.stream}${known.length > 0 ? ` (registered: ${known.join(', ')})` : ' (none is)'}`);
    }
    for (const k of its) {
      const r = await readState(kv, 'standby', k.name);
      const age = r === undefined ? Infinity : Date.now() - r.time;
      if (r?.stoppedAt === undefined && age < DEFAULTS.slots.stoppedAfterMs && values.force !== true) {
        throw new UnderstudyError(`standby ${k.name} is running (on ${r?.host ?? '?'}, pid ${r?.pid ?? '?'}, heard from ${Math.round(age / 100) / 10} s ago): stop its replayer first, or give --force`);
      }
    }
    const doomed = keys.filter((k) => ITS.includes(k.kind) && mine(k.name));
    for (const k of doomed) await kv.delete(`${k.kind}.${k.name}`);
    console.log(`dropped standby ${name} (${its.map((k) => k.name).join(', ')}): the stream and the agents' spools keep nothing for it from the next trim on`);
    return 0;
  } finally {
    await nc.close();
  }
}
