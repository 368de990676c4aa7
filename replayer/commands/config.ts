import { SettingsError } from '../../lib/errors';
import { CONFIG_DIR, listReplicas, loadConfig } from '../replicas';
import { common, parse } from '../../lib/cli-options';

export const usage = `understudy config show [STORE] [--state DIR] [--json]

Prints the standby's replica of a configuration store (env, nconf, convict, conf) as
the replayer last committed it; without STORE, every store it has. Reads --state
(or UNDERSTUDY_STATE_DIR) only: no NATS connection is made.`;

/** `understudy config show`. */
export async function config(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  const [sub, store, ...extra] = positionals;
  if (sub !== 'show') throw new SettingsError(`config: unknown subcommand ${sub === undefined ? '(none)' : `"${sub}"`}; try "understudy config show [STORE]"`);
  if (extra.length > 0) throw new SettingsError(`config show: unexpected arguments ${extra.join(' ')}`);
  const { stateDir } = common(values, env, false);
  const stores = store === undefined ? listReplicas(stateDir, CONFIG_DIR) : [store];
  const out: Record<string, unknown> = {};
  for (const s of stores) out[s] = loadConfig(stateDir, s);
  if (values.json === true) {
    console.log(JSON.stringify(store === undefined ? out : out[store], null, 2));
  } else if (stores.length === 0) {
    console.log(`no configuration replicated yet under ${stateDir}`);
  } else {
    for (const s of stores) {
      console.log(`[${s}]`);
      for (const [k, v] of flatten(out[s], [])) console.log(`${k} = ${JSON.stringify(v)}`);
    }
  }
  return 0;
}

/** `a.b = value` lines, one per leaf; arrays are leaves. */
function flatten(v: unknown, at: string[]): [string, unknown][] {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return at.length === 0 && v !== undefined ? [['(whole store)', v]] : [[at.join('.'), v]];
  const out: [string, unknown][] = [];
  for (const k of Object.keys(v).sort()) out.push(...flatten((v as Record<string, unknown>)[k], [...at, k]));
  return out;
}
