import * as path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SettingsError } from './errors';
import { parseRoots, type Root } from './roots';
import { DEFAULTS, journalName, natsSettings, streamName, type NatsSettings } from './settings';

/** Flags every command shares, each also read from its UNDERSTUDY_* variable. */
export const COMMON_FLAGS = {
  root: { type: 'string', multiple: true },
  nats: { type: 'string' },
  name: { type: 'string' },
  stream: { type: 'string' },
  state: { type: 'string' },
  creds: { type: 'string' },
  nkey: { type: 'string' },
  token: { type: 'string' },
  user: { type: 'string' },
  password: { type: 'string' },
  'tls-ca': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** The NATS flags, as the UNDERSTUDY_NATS_* variables they stand for. */
const NATS_FLAG_VARS = {
  creds: 'UNDERSTUDY_NATS_CREDS', nkey: 'UNDERSTUDY_NATS_NKEY', token: 'UNDERSTUDY_NATS_TOKEN',
  user: 'UNDERSTUDY_NATS_USER', password: 'UNDERSTUDY_NATS_PASS', 'tls-ca': 'UNDERSTUDY_NATS_CA',
} as const;

export interface CommonOptions {
  nats: NatsSettings;
  stream: string;
  roots: Root[];
  name?: string;
  stateDir: string;
}

type Values = { root?: string[]; nats?: string; name?: string; stream?: string; state?: string } & { [K in keyof typeof NATS_FLAG_VARS]?: string };

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: typeof COMMON_FLAGS & O; allowPositionals: true; strict: true }>>;

/** Parses a command's flags; unknown flags are an error that names them. */
export function parse<O extends Options>(argv: string[], options: O): Parsed<O> {
  try {
    return parseArgs({ args: argv, options: { ...COMMON_FLAGS, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw new SettingsError((err as Error).message);
  }
}

/** Resolves the shared settings from flags first, then the environment, then defaults. */
export function common(values: Values, env: NodeJS.ProcessEnv, needRoots: boolean): CommonOptions {
  const rootSpecs = values.root ?? (env.UNDERSTUDY_ROOTS ? [env.UNDERSTUDY_ROOTS] : []);
  const roots = parseRoots(rootSpecs, values.root ? '--root' : 'UNDERSTUDY_ROOTS');
  if (needRoots && roots.length === 0) throw new SettingsError('no root given: --root name=/abs/dir (or UNDERSTUDY_ROOTS)');
  const givenName = values.name ?? env.UNDERSTUDY_NAME;
  const state = values.state ?? env.UNDERSTUDY_STATE_DIR;
  if (state !== undefined && !path.isAbsolute(state)) throw new SettingsError(`--state ${state} is not an absolute path`);
  const natsEnv: NodeJS.ProcessEnv = { ...env };
  for (const [flag, variable] of Object.entries(NATS_FLAG_VARS)) {
    const v = values[flag as keyof typeof NATS_FLAG_VARS];
    if (v !== undefined) natsEnv[variable] = v;
  }
  return {
    nats: natsSettings(natsEnv, values.nats),
    stream: streamName(values.stream ?? env.UNDERSTUDY_STREAM),
    roots,
    name: givenName === undefined || givenName === '' ? undefined : journalName(givenName, undefined),
    stateDir: state ?? DEFAULTS.stateDir,
  };
}
