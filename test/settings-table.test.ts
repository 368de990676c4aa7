import test from 'ava';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { agentDisabled, agentSettings, natsSettings, standbyName, watchPace } from '../lib/settings';
import { common } from '../lib/cli-options';
import { SettingsError } from '../lib/errors';

/**
 * Every UNDERSTUDY_* variable the agent and the commands read, as one table: an environment,
 * and either the settings it gives or the one error it is refused with, word for word.
 * No nats-server: settings are read before anything connects.
 */

type Env = Record<string, string | undefined>;

// Real directories, for the spool/roots overlap rows (symlinks are followed on both sides).
const BASE = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'understudy-settings-table-')));
const SPOOL = path.join(BASE, 'spool');
const DATA = path.join(BASE, 'data');
fs.mkdirSync(path.join(SPOOL, 'app'), { recursive: true });
fs.mkdirSync(path.join(DATA, 'hidden'), { recursive: true });
const SPOOL_LINK = path.join(BASE, 'spool-link');
fs.symlinkSync(path.join(DATA, 'hidden'), SPOOL_LINK);
const DATA_LINK = path.join(BASE, 'data-link');
fs.symlinkSync(path.join(SPOOL, 'app'), DATA_LINK);
test.after.always(() => fs.rmSync(BASE, { recursive: true, force: true }));

/** What reads the environment: the agent at start, its parts, and the commands' shared flags. */
const READERS = {
  agent: (env: Env, main?: string) => {
    const s = agentSettings(env, main);
    return { ...s, roots: s.roots.map((r) => `${r.name}=${r.dir}`) };
  },
  nats: (env: Env) => ({ ...natsSettings(env) }),
  watch: (env: Env) => watchPace(env),
  standby: (env: Env) => ({ name: standbyName(env) }),
  disable: (env: Env) => ({ disabled: agentDisabled(env) }),
  command: (env: Env) => {
    const o = common({}, env, true);
    return { ...o, roots: o.roots.map((r) => `${r.name}=${r.dir}`) };
  },
} as const;

interface Row {
  reads: keyof typeof READERS;
  what: string;
  env: Env;
  /** The main script, for the journal name's default. */
  main?: string;
  /** Settings it gives: each key listed is compared whole. */
  gives?: Record<string, unknown>;
  /** Or the error it is refused with. */
  error?: string;
}

/** The agent's environment: one root and a spool beside it, and `extra`. */
const agent = (extra: Env): Env => ({ UNDERSTUDY_ROOTS: `data=${DATA}`, UNDERSTUDY_SPOOL_DIR: SPOOL, ...extra });

const notPositive = (key: string, v: string) => `${key}: "${v}" is not a positive whole number`;
const MAX_TIMER = 'at most 2147483647 (the longest timer Node keeps, about 24.8 days)';

const ALL_DEFAULTS = {
  nats: { url: 'nats://127.0.0.1:4222', replicas: 1, creds: undefined, nkey: undefined, ca: undefined, token: undefined, user: undefined, pass: undefined },
  roots: [`data=${DATA}`],
  name: 'server',
  mode: 'async',
  syncTimeoutMs: 5000,
  onTimeout: 'fail',
  spoolDir: SPOOL,
  stream: 'UNDERSTUDY',
  exclude: [],
  exitTimeoutMs: 5000,
  signingKey: undefined,
  spoolMaxBytes: 2 * 1024 ** 3,
  spoolSegmentBytes: 64 * 1024 ** 2,
  spoolFsync: 1000,
  watch: false,
};

const ROWS: Row[] = [
  // Defaults: every value the agent runs with when only the roots are given.
  { reads: 'agent', what: 'only roots and spool: every default', env: agent({}), main: '/srv/app/server.js', gives: ALL_DEFAULTS },
  { reads: 'agent', what: 'no UNDERSTUDY_SPOOL_DIR: the spool under the home directory', env: { UNDERSTUDY_ROOTS: `data=${DATA}` }, gives: { spoolDir: path.join(os.homedir(), '.understudy', 'spool') } },
  { reads: 'agent', what: 'empty variables mean unset', env: agent({ UNDERSTUDY_MODE: '', UNDERSTUDY_SYNC_TIMEOUT_MS: ' ', UNDERSTUDY_STREAM: '', UNDERSTUDY_SPOOL_FSYNC: '', UNDERSTUDY_WATCH: '', UNDERSTUDY_NATS_URL: '' }), main: 'server.js',
    gives: { mode: 'async', syncTimeoutMs: 5000, stream: 'UNDERSTUDY', spoolFsync: 1000, watch: false, nats: ALL_DEFAULTS.nats } },

  // UNDERSTUDY_ROOTS
  { reads: 'agent', what: 'ROOTS unset', env: { UNDERSTUDY_SPOOL_DIR: SPOOL }, error: 'UNDERSTUDY_ROOTS is not set: name=/abs/dir[,name=/abs/dir…]' },
  { reads: 'agent', what: 'ROOTS empty', env: agent({ UNDERSTUDY_ROOTS: '  ' }), error: 'UNDERSTUDY_ROOTS is not set: name=/abs/dir[,name=/abs/dir…]' },
  { reads: 'agent', what: 'ROOTS only commas', env: agent({ UNDERSTUDY_ROOTS: ', ,' }), error: 'UNDERSTUDY_ROOTS names no root' },
  { reads: 'agent', what: 'ROOTS without a name', env: agent({ UNDERSTUDY_ROOTS: '/srv/data' }), error: 'UNDERSTUDY_ROOTS: "/srv/data" is not name=/absolute/dir' },
  { reads: 'agent', what: 'ROOTS with an empty name', env: agent({ UNDERSTUDY_ROOTS: '=/srv/data' }), error: 'UNDERSTUDY_ROOTS: "=/srv/data" is not name=/absolute/dir' },
  { reads: 'agent', what: 'ROOTS with a bad name', env: agent({ UNDERSTUDY_ROOTS: 'my data=/srv/data' }), error: 'UNDERSTUDY_ROOTS: root name "my data" must be 1-64 of A-Z a-z 0-9 _ -' },
  { reads: 'agent', what: 'ROOTS with a 65-character name', env: agent({ UNDERSTUDY_ROOTS: `${'r'.repeat(65)}=/srv/data` }), error: `UNDERSTUDY_ROOTS: root name "${'r'.repeat(65)}" must be 1-64 of A-Z a-z 0-9 _ -` },
  { reads: 'agent', what: 'ROOTS with a relative directory', env: agent({ UNDERSTUDY_ROOTS: 'data=srv/data' }), error: 'UNDERSTUDY_ROOTS: root "data" dir "srv/data" is not absolute' },
  { reads: 'agent', what: 'ROOTS naming one root twice', env: agent({ UNDERSTUDY_ROOTS: 'a=/srv/a,a=/srv/b' }), error: 'UNDERSTUDY_ROOTS: root name "a" given twice' },
  { reads: 'agent', what: 'ROOTS nested', env: agent({ UNDERSTUDY_ROOTS: 'a=/srv/a,b=/srv/a/b' }), error: 'UNDERSTUDY_ROOTS: root "b" (/srv/a/b) lies inside root "a" (/srv/a); roots must not nest' },
  { reads: 'agent', what: 'ROOTS: one directory under two names', env: agent({ UNDERSTUDY_ROOTS: 'a=/srv/a,b=/srv/a' }), error: 'UNDERSTUDY_ROOTS: root "a" (/srv/a) lies inside root "b" (/srv/a); roots must not nest' },
  { reads: 'agent', what: 'ROOTS: spaces, a trailing comma and .. are tidied', env: agent({ UNDERSTUDY_ROOTS: ' a=/srv/x/../a , b=/srv/b/ ,' }), gives: { roots: ['a=/srv/a', 'b=/srv/b'] } },
  { reads: 'agent', what: 'ROOTS: prefixes are not nesting', env: agent({ UNDERSTUDY_ROOTS: 'a=/srv/a,b=/srv/ab' }), gives: { roots: ['a=/srv/a', 'b=/srv/ab'] } },

  // UNDERSTUDY_SPOOL_DIR and the roots: never overlapping, through symlinks too.
  { reads: 'agent', what: 'SPOOL_DIR relative', env: agent({ UNDERSTUDY_SPOOL_DIR: 'spool' }), error: 'UNDERSTUDY_SPOOL_DIR: "spool" is not an absolute path' },
  { reads: 'agent', what: 'SPOOL_DIR with a trailing slash', env: agent({ UNDERSTUDY_SPOOL_DIR: `${SPOOL}/` }), gives: { spoolDir: SPOOL } },
  { reads: 'agent', what: 'a root inside the spool directory', env: agent({ UNDERSTUDY_ROOTS: `data=${path.join(SPOOL, 'uploads')}` }),
    error: `UNDERSTUDY_ROOTS: root "data" (${path.join(SPOOL, 'uploads')}) lies inside UNDERSTUDY_SPOOL_DIR (${SPOOL}), the agent's own files; give the spool a directory of its own` },
  { reads: 'agent', what: "a root equal to a journal's own spool", env: agent({ UNDERSTUDY_ROOTS: `data=${path.join(SPOOL, 'app')}` }),
    error: `UNDERSTUDY_ROOTS: root "data" (${path.join(SPOOL, 'app')}) lies inside UNDERSTUDY_SPOOL_DIR (${SPOOL}), the agent's own files; give the spool a directory of its own` },
  { reads: 'agent', what: 'a root equal to the spool directory', env: agent({ UNDERSTUDY_ROOTS: `data=${SPOOL}` }),
    error: `UNDERSTUDY_SPOOL_DIR (${SPOOL}) lies inside root "data" (${SPOOL}); the spool must never be replicated` },
  { reads: 'agent', what: 'a root containing the spool directory', env: agent({ UNDERSTUDY_ROOTS: `data=${BASE}` }),
    error: `UNDERSTUDY_SPOOL_DIR (${SPOOL}) lies inside root "data" (${BASE}); the spool must never be replicated` },
  { reads: 'agent', what: 'a spool directory that is a symlink into a root', env: agent({ UNDERSTUDY_SPOOL_DIR: SPOOL_LINK }),
    error: `UNDERSTUDY_SPOOL_DIR (${SPOOL_LINK}) lies inside root "data" (${DATA}); the spool must never be replicated` },
  { reads: 'agent', what: 'a spool not made yet, below a symlink into a root', env: agent({ UNDERSTUDY_SPOOL_DIR: path.join(SPOOL_LINK, 'not-yet', 'spool') }),
    error: `UNDERSTUDY_SPOOL_DIR (${path.join(SPOOL_LINK, 'not-yet', 'spool')}) lies inside root "data" (${DATA}); the spool must never be replicated` },
  { reads: 'agent', what: 'a root that is a symlink into the spool', env: agent({ UNDERSTUDY_ROOTS: `data=${DATA_LINK}` }),
    error: `UNDERSTUDY_ROOTS: root "data" (${DATA_LINK}) lies inside UNDERSTUDY_SPOOL_DIR (${SPOOL}), the agent's own files; give the spool a directory of its own` },
  { reads: 'agent', what: 'a spool beside the roots', env: agent({ UNDERSTUDY_ROOTS: `data=${DATA},other=${path.join(BASE, 'spool-other')}` }),
    gives: { spoolDir: SPOOL, roots: [`data=${DATA}`, `other=${path.join(BASE, 'spool-other')}`] } },

  // UNDERSTUDY_NAME, and the main script's base name when it is unset.
  { reads: 'agent', what: 'NAME given', env: agent({ UNDERSTUDY_NAME: ' web_1-a ' }), main: '/srv/server.js', gives: { name: 'web_1-a' } },
  { reads: 'agent', what: 'NAME with a space', env: agent({ UNDERSTUDY_NAME: 'my app' }), error: 'UNDERSTUDY_NAME: "my app" must be 1-128 of A-Z a-z 0-9 _ -' },
  { reads: 'agent', what: 'NAME with a dot', env: agent({ UNDERSTUDY_NAME: 'app.v2' }), error: 'UNDERSTUDY_NAME: "app.v2" must be 1-128 of A-Z a-z 0-9 _ -' },
  { reads: 'agent', what: 'NAME of 129 characters', env: agent({ UNDERSTUDY_NAME: 'n'.repeat(129) }), error: `UNDERSTUDY_NAME: "${'n'.repeat(129)}" must be 1-128 of A-Z a-z 0-9 _ -` },
  { reads: 'agent', what: 'NAME of 128 characters', env: agent({ UNDERSTUDY_NAME: 'n'.repeat(128) }), gives: { name: 'n'.repeat(128) } },
  { reads: 'agent', what: 'no NAME: the main script, .mjs cut', env: agent({}), main: '/srv/worker.mjs', gives: { name: 'worker' } },
  { reads: 'agent', what: 'no NAME: the main script made a key token', env: agent({}), main: '/srv/my app.v2.cjs', gives: { name: 'my_app_v2' } },
  { reads: 'agent', what: 'no NAME and no main script (node -e)', env: agent({}), gives: { name: 'node' } },
  { reads: 'agent', what: 'no NAME and a main script that is only an extension', env: agent({}), main: '/srv/.js', gives: { name: 'node' } },

  // UNDERSTUDY_MODE, UNDERSTUDY_ON_TIMEOUT, UNDERSTUDY_SYNC_TIMEOUT_MS, UNDERSTUDY_EXIT_TIMEOUT_MS
  { reads: 'agent', what: 'MODE sync', env: agent({ UNDERSTUDY_MODE: 'sync' }), gives: { mode: 'sync' } },
  { reads: 'agent', what: 'MODE strong', env: agent({ UNDERSTUDY_MODE: 'strong' }), gives: { mode: 'strong' } },
  { reads: 'agent', what: 'MODE unknown', env: agent({ UNDERSTUDY_MODE: 'fast' }), error: 'UNDERSTUDY_MODE: "fast" is not one of async, sync, strong' },
  { reads: 'agent', what: 'MODE in capitals', env: agent({ UNDERSTUDY_MODE: 'ASYNC' }), error: 'UNDERSTUDY_MODE: "ASYNC" is not one of async, sync, strong' },
  { reads: 'agent', what: 'ON_TIMEOUT degrade', env: agent({ UNDERSTUDY_ON_TIMEOUT: 'degrade' }), gives: { onTimeout: 'degrade' } },
  { reads: 'agent', what: 'ON_TIMEOUT unknown', env: agent({ UNDERSTUDY_ON_TIMEOUT: 'retry' }), error: 'UNDERSTUDY_ON_TIMEOUT: "retry" is not one of fail, degrade' },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS given', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '250' }), gives: { syncTimeoutMs: 250 } },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS zero', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '0' }), error: notPositive('UNDERSTUDY_SYNC_TIMEOUT_MS', '0') },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS negative', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '-5' }), error: notPositive('UNDERSTUDY_SYNC_TIMEOUT_MS', '-5') },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS a fraction', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '1.5' }), error: notPositive('UNDERSTUDY_SYNC_TIMEOUT_MS', '1.5') },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS with a unit', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '5s' }), error: notPositive('UNDERSTUDY_SYNC_TIMEOUT_MS', '5s') },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS in hexadecimal', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '0x10' }), error: notPositive('UNDERSTUDY_SYNC_TIMEOUT_MS', '0x10') },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS in exponent form', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '1e3' }), error: notPositive('UNDERSTUDY_SYNC_TIMEOUT_MS', '1e3') },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS longer than a timer', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '2147483648' }), error: `UNDERSTUDY_SYNC_TIMEOUT_MS: "2147483648" is out of range: ${MAX_TIMER}` },
  { reads: 'agent', what: 'SYNC_TIMEOUT_MS the longest timer', env: agent({ UNDERSTUDY_SYNC_TIMEOUT_MS: '2147483647' }), gives: { syncTimeoutMs: 2147483647 } },
  { reads: 'agent', what: 'EXIT_TIMEOUT_MS given', env: agent({ UNDERSTUDY_EXIT_TIMEOUT_MS: '300' }), gives: { exitTimeoutMs: 300 } },
  { reads: 'agent', what: 'EXIT_TIMEOUT_MS not a number', env: agent({ UNDERSTUDY_EXIT_TIMEOUT_MS: 'soon' }), error: notPositive('UNDERSTUDY_EXIT_TIMEOUT_MS', 'soon') },
  { reads: 'agent', what: 'EXIT_TIMEOUT_MS longer than a timer', env: agent({ UNDERSTUDY_EXIT_TIMEOUT_MS: '9999999999' }), error: `UNDERSTUDY_EXIT_TIMEOUT_MS: "9999999999" is out of range: ${MAX_TIMER}` },

  // The spool: UNDERSTUDY_SPOOL_MAX_BYTES, UNDERSTUDY_SPOOL_SEGMENT_BYTES, UNDERSTUDY_SPOOL_FSYNC
  { reads: 'agent', what: 'SPOOL_MAX_BYTES given', env: agent({ UNDERSTUDY_SPOOL_MAX_BYTES: '20000' }), gives: { spoolMaxBytes: 20000 } },
  { reads: 'agent', what: 'SPOOL_MAX_BYTES with a unit', env: agent({ UNDERSTUDY_SPOOL_MAX_BYTES: '10MB' }), error: notPositive('UNDERSTUDY_SPOOL_MAX_BYTES', '10MB') },
  { reads: 'agent', what: 'SPOOL_MAX_BYTES past what JavaScript counts exactly', env: agent({ UNDERSTUDY_SPOOL_MAX_BYTES: '9007199254740993' }),
    error: 'UNDERSTUDY_SPOOL_MAX_BYTES: "9007199254740993" is out of range: at most 9007199254740991 (the largest whole number JavaScript holds exactly)' },
  { reads: 'agent', what: 'SPOOL_SEGMENT_BYTES given', env: agent({ UNDERSTUDY_SPOOL_SEGMENT_BYTES: '2048' }), gives: { spoolSegmentBytes: 2048 } },
  { reads: 'agent', what: 'SPOOL_SEGMENT_BYTES negative', env: agent({ UNDERSTUDY_SPOOL_SEGMENT_BYTES: '-2048' }), error: notPositive('UNDERSTUDY_SPOOL_SEGMENT_BYTES', '-2048') },
  { reads: 'agent', what: 'SPOOL_FSYNC always', env: agent({ UNDERSTUDY_SPOOL_FSYNC: 'always' }), gives: { spoolFsync: 'always' } },
  { reads: 'agent', what: 'SPOOL_FSYNC never', env: agent({ UNDERSTUDY_SPOOL_FSYNC: 'never' }), gives: { spoolFsync: 'never' } },
  { reads: 'agent', what: 'SPOOL_FSYNC an interval', env: agent({ UNDERSTUDY_SPOOL_FSYNC: '250' }), gives: { spoolFsync: 250 } },
  { reads: 'agent', what: 'SPOOL_FSYNC unknown', env: agent({ UNDERSTUDY_SPOOL_FSYNC: 'sometimes' }), error: 'UNDERSTUDY_SPOOL_FSYNC: "sometimes" is not always, never or an interval in ms' },
  { reads: 'agent', what: 'SPOOL_FSYNC zero', env: agent({ UNDERSTUDY_SPOOL_FSYNC: '0' }), error: 'UNDERSTUDY_SPOOL_FSYNC: "0" is not always, never or an interval in ms' },
  { reads: 'agent', what: 'SPOOL_FSYNC a fraction', env: agent({ UNDERSTUDY_SPOOL_FSYNC: '0.5' }), error: 'UNDERSTUDY_SPOOL_FSYNC: "0.5" is not always, never or an interval in ms' },
  { reads: 'agent', what: 'SPOOL_FSYNC longer than a timer', env: agent({ UNDERSTUDY_SPOOL_FSYNC: '3000000000' }), error: `UNDERSTUDY_SPOOL_FSYNC: "3000000000" is out of range: ${MAX_TIMER}` },

  // UNDERSTUDY_STREAM, UNDERSTUDY_EXCLUDE, UNDERSTUDY_SIGNING_KEY, UNDERSTUDY_WATCH
  { reads: 'agent', what: 'STREAM given', env: agent({ UNDERSTUDY_STREAM: 'PROD_1' }), gives: { stream: 'PROD_1' } },
  { reads: 'agent', what: 'STREAM with a dot (a subject separator)', env: agent({ UNDERSTUDY_STREAM: 'prod.1' }), error: 'UNDERSTUDY_STREAM: "prod.1" must be 1-64 of A-Z a-z 0-9 _ -' },
  { reads: 'agent', what: 'STREAM of 65 characters', env: agent({ UNDERSTUDY_STREAM: 'S'.repeat(65) }), error: `UNDERSTUDY_STREAM: "${'S'.repeat(65)}" must be 1-64 of A-Z a-z 0-9 _ -` },
  { reads: 'agent', what: 'EXCLUDE: a list, spaces and empty items dropped', env: agent({ UNDERSTUDY_EXCLUDE: ' *.tmp , cache/** ,,' }), gives: { exclude: ['*.tmp', 'cache/**'] } },
  { reads: 'agent', what: 'SIGNING_KEY absolute', env: agent({ UNDERSTUDY_SIGNING_KEY: '/etc/understudy/../understudy/key.pem' }), gives: { signingKey: '/etc/understudy/key.pem' } },
  { reads: 'agent', what: 'SIGNING_KEY relative', env: agent({ UNDERSTUDY_SIGNING_KEY: 'key.pem' }), error: 'UNDERSTUDY_SIGNING_KEY: "key.pem" is not an absolute path' },
  { reads: 'agent', what: 'WATCH 1', env: agent({ UNDERSTUDY_WATCH: '1' }), gives: { watch: true } },
  { reads: 'agent', what: 'WATCH 0', env: agent({ UNDERSTUDY_WATCH: '0' }), gives: { watch: false } },
  { reads: 'agent', what: 'WATCH yes', env: agent({ UNDERSTUDY_WATCH: 'yes' }), error: 'UNDERSTUDY_WATCH: "yes" is not one of 0, 1' },

  // NATS: UNDERSTUDY_NATS_URL and the credentials, UNDERSTUDY_STREAM_REPLICAS
  { reads: 'nats', what: 'URL nats://', env: { UNDERSTUDY_NATS_URL: 'nats://nats.internal:4222' }, gives: { url: 'nats://nats.internal:4222' } },
  { reads: 'nats', what: 'URL host:port', env: { UNDERSTUDY_NATS_URL: 'nats.internal:4222' }, gives: { url: 'nats.internal:4222' } },
  { reads: 'nats', what: 'URL a cluster, tls and ws, with user and a path', env: { UNDERSTUDY_NATS_URL: 'tls://a:4222, ws://u:p@b:8080/nats,wss://[::1]:443' },
    gives: { url: 'tls://a:4222, ws://u:p@b:8080/nats,wss://[::1]:443' } },
  { reads: 'nats', what: 'URL without a port', env: { UNDERSTUDY_NATS_URL: 'nats://nats.internal' }, gives: { url: 'nats://nats.internal' } },
  { reads: 'nats', what: 'URL http', env: { UNDERSTUDY_NATS_URL: 'http://nats.internal:4222' }, error: 'UNDERSTUDY_NATS_URL: "http://nats.internal:4222" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL a bare host', env: { UNDERSTUDY_NATS_URL: 'nats.internal' }, error: 'UNDERSTUDY_NATS_URL: "nats.internal" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL a port out of range', env: { UNDERSTUDY_NATS_URL: 'nats://nats.internal:99999' }, error: 'UNDERSTUDY_NATS_URL: "nats://nats.internal:99999" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL host:port out of range', env: { UNDERSTUDY_NATS_URL: 'nats.internal:70000' }, error: 'UNDERSTUDY_NATS_URL: "nats.internal:70000" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL a port that is not a number', env: { UNDERSTUDY_NATS_URL: 'nats://nats.internal:port' }, error: 'UNDERSTUDY_NATS_URL: "nats://nats.internal:port" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL without a host', env: { UNDERSTUDY_NATS_URL: 'nats://:4222' }, error: 'UNDERSTUDY_NATS_URL: "nats://:4222" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL with a space inside', env: { UNDERSTUDY_NATS_URL: 'nats://a b:4222' }, error: 'UNDERSTUDY_NATS_URL: "nats://a b:4222" is not a nats://host:port URL' },
  { reads: 'nats', what: 'URL list with an empty item', env: { UNDERSTUDY_NATS_URL: 'nats://a:4222,' }, error: 'UNDERSTUDY_NATS_URL: "" is not a nats://host:port URL' },
  { reads: 'nats', what: 'user and pass', env: { UNDERSTUDY_NATS_USER: 'app', UNDERSTUDY_NATS_PASS: 's3cret' }, gives: { user: 'app', pass: 's3cret' } },
  { reads: 'nats', what: 'user without pass', env: { UNDERSTUDY_NATS_USER: 'app' }, error: 'UNDERSTUDY_NATS_USER and UNDERSTUDY_NATS_PASS must be set together' },
  { reads: 'nats', what: 'pass without user', env: { UNDERSTUDY_NATS_PASS: 's3cret', UNDERSTUDY_NATS_USER: ' ' }, error: 'UNDERSTUDY_NATS_USER and UNDERSTUDY_NATS_PASS must be set together' },
  { reads: 'nats', what: 'a token', env: { UNDERSTUDY_NATS_TOKEN: ' t0ken ' }, gives: { token: 't0ken' } },
  { reads: 'nats', what: 'creds, nkey and CA files', env: { UNDERSTUDY_NATS_CREDS: '/etc/n/app.creds', UNDERSTUDY_NATS_NKEY: '/etc/n/seed', UNDERSTUDY_NATS_CA: '/etc/n/ca.pem' },
    gives: { creds: '/etc/n/app.creds', nkey: '/etc/n/seed', ca: '/etc/n/ca.pem' } },
  { reads: 'nats', what: 'creds file relative', env: { UNDERSTUDY_NATS_CREDS: 'app.creds' }, error: 'UNDERSTUDY_NATS_CREDS: "app.creds" is not an absolute path' },
  { reads: 'nats', what: 'nkey file relative', env: { UNDERSTUDY_NATS_NKEY: './seed' }, error: 'UNDERSTUDY_NATS_NKEY: "./seed" is not an absolute path' },
  { reads: 'nats', what: 'CA file relative', env: { UNDERSTUDY_NATS_CA: 'ca.pem' }, error: 'UNDERSTUDY_NATS_CA: "ca.pem" is not an absolute path' },
  { reads: 'nats', what: 'STREAM_REPLICAS 3', env: { UNDERSTUDY_STREAM_REPLICAS: '3' }, gives: { replicas: 3 } },
  { reads: 'nats', what: 'STREAM_REPLICAS zero', env: { UNDERSTUDY_STREAM_REPLICAS: '0' }, error: notPositive('UNDERSTUDY_STREAM_REPLICAS', '0') },
  { reads: 'nats', what: 'STREAM_REPLICAS in words', env: { UNDERSTUDY_STREAM_REPLICAS: 'three' }, error: notPositive('UNDERSTUDY_STREAM_REPLICAS', 'three') },
  { reads: 'nats', what: 'STREAM_REPLICAS more than JetStream keeps', env: { UNDERSTUDY_STREAM_REPLICAS: '7' }, error: 'UNDERSTUDY_STREAM_REPLICAS: "7" is out of range: at most 5 (the most replicas JetStream keeps)' },
  { reads: 'agent', what: 'the agent refuses what NATS settings refuse', env: agent({ UNDERSTUDY_NATS_URL: 'localhost' }), error: 'UNDERSTUDY_NATS_URL: "localhost" is not a nats://host:port URL' },

  // The watcher's pace: UNDERSTUDY_WATCH_SETTLE_MS, _FULL_PASS_MS, _RATE, _POLL_MS
  { reads: 'watch', what: 'pace defaults', env: {}, gives: { settleMs: 200, fullPassEveryMs: 30_000, objectsPerSecond: 5000, pollMs: 1000 } },
  { reads: 'watch', what: 'pace given', env: { UNDERSTUDY_WATCH_SETTLE_MS: '50', UNDERSTUDY_WATCH_FULL_PASS_MS: '5000', UNDERSTUDY_WATCH_RATE: '100', UNDERSTUDY_WATCH_POLL_MS: '250' },
    gives: { settleMs: 50, fullPassEveryMs: 5000, objectsPerSecond: 100, pollMs: 250 } },
  { reads: 'watch', what: 'SETTLE_MS zero', env: { UNDERSTUDY_WATCH_SETTLE_MS: '0' }, error: notPositive('UNDERSTUDY_WATCH_SETTLE_MS', '0') },
  { reads: 'watch', what: 'FULL_PASS_MS with a unit', env: { UNDERSTUDY_WATCH_FULL_PASS_MS: '30s' }, error: notPositive('UNDERSTUDY_WATCH_FULL_PASS_MS', '30s') },
  { reads: 'watch', what: 'FULL_PASS_MS longer than a timer', env: { UNDERSTUDY_WATCH_FULL_PASS_MS: '2592000000' }, error: `UNDERSTUDY_WATCH_FULL_PASS_MS: "2592000000" is out of range: ${MAX_TIMER}` },
  { reads: 'watch', what: 'RATE negative', env: { UNDERSTUDY_WATCH_RATE: '-1' }, error: notPositive('UNDERSTUDY_WATCH_RATE', '-1') },
  { reads: 'watch', what: 'POLL_MS a fraction', env: { UNDERSTUDY_WATCH_POLL_MS: '0.5' }, error: notPositive('UNDERSTUDY_WATCH_POLL_MS', '0.5') },

  // UNDERSTUDY_STANDBY
  { reads: 'standby', what: 'STANDBY given', env: { UNDERSTUDY_STANDBY: 'dr-site_2' }, gives: { name: 'dr-site_2' } },
  { reads: 'standby', what: 'STANDBY with a dot', env: { UNDERSTUDY_STANDBY: 'dr.site' }, error: 'UNDERSTUDY_STANDBY "dr.site" must be 1-64 letters, digits, \'-\' or \'_\'' },
  { reads: 'standby', what: 'STANDBY of 65 characters', env: { UNDERSTUDY_STANDBY: 'b'.repeat(65) }, error: `UNDERSTUDY_STANDBY "${'b'.repeat(65)}" must be 1-64 letters, digits, '-' or '_'` },

  // UNDERSTUDY_DISABLE
  { reads: 'disable', what: 'DISABLE unset', env: {}, gives: { disabled: false } },
  { reads: 'disable', what: 'DISABLE 1', env: { UNDERSTUDY_DISABLE: '1' }, gives: { disabled: true } },
  { reads: 'disable', what: 'DISABLE 0', env: { UNDERSTUDY_DISABLE: '0' }, gives: { disabled: false } },
  { reads: 'disable', what: 'DISABLE true (refused, not taken as "run")', env: { UNDERSTUDY_DISABLE: 'true' }, error: 'UNDERSTUDY_DISABLE: "true" is not one of 0, 1' },

  // The commands' shared settings: --root or UNDERSTUDY_ROOTS, UNDERSTUDY_STATE_DIR, UNDERSTUDY_NAME, UNDERSTUDY_STREAM
  { reads: 'command', what: 'roots, state, name and stream from the environment',
    env: { UNDERSTUDY_ROOTS: 'data=/srv/data', UNDERSTUDY_STATE_DIR: '/var/lib/understudy', UNDERSTUDY_NAME: 'web', UNDERSTUDY_STREAM: 'PROD' },
    gives: { roots: ['data=/srv/data'], stateDir: '/var/lib/understudy', name: 'web', stream: 'PROD' } },
  { reads: 'command', what: 'defaults', env: { UNDERSTUDY_ROOTS: 'data=/srv/data' },
    gives: { stateDir: path.join(os.homedir(), '.understudy', 'state'), name: undefined, stream: 'UNDERSTUDY', nats: ALL_DEFAULTS.nats } },
  { reads: 'command', what: 'no root', env: {}, error: 'no root given: --root name=/abs/dir (or UNDERSTUDY_ROOTS)' },
  { reads: 'command', what: 'STATE_DIR relative', env: { UNDERSTUDY_ROOTS: 'data=/srv/data', UNDERSTUDY_STATE_DIR: 'state' }, error: '--state state is not an absolute path' },
  { reads: 'command', what: 'NAME refused as for the agent', env: { UNDERSTUDY_ROOTS: 'data=/srv/data', UNDERSTUDY_NAME: 'a/b' }, error: 'UNDERSTUDY_NAME: "a/b" must be 1-128 of A-Z a-z 0-9 _ -' },
  { reads: 'command', what: 'bad roots refused as for the agent', env: { UNDERSTUDY_ROOTS: 'data=srv' }, error: 'UNDERSTUDY_ROOTS: root "data" dir "srv" is not absolute' },
];

for (const row of ROWS) {
  test(`${row.reads}: ${row.what}`, (t) => {
    const read = (): Record<string, unknown> => READERS[row.reads](row.env, row.main);
    if (row.error !== undefined) {
      t.throws(read, { instanceOf: SettingsError, message: row.error });
      return;
    }
    const got = read();
    // Each listed key whole: a partial match would let a wrong default slip through.
    for (const [key, want] of Object.entries(row.gives ?? {})) t.deepEqual(got[key], want, key);
  });
}

test('every row says what it gives or how it is refused, and every variable the settings read has a row', (t) => {
  for (const row of ROWS) t.not(row.gives === undefined, row.error === undefined, row.what);
  const named = new Set(ROWS.flatMap((r) => Object.keys(r.env)));
  // The variables as the parsers name them; a name followed by _ or * is a family in a comment.
  const source = ['settings.js', 'cli-options.js'].map((f) => fs.readFileSync(path.join(__dirname, '..', 'lib', f), 'utf8')).join('\n');
  const read = new Set([...source.matchAll(/UNDERSTUDY_[A-Z_]*[A-Z](?![A-Z_*])/g)].map((m) => m[0]));
  t.true(read.size >= 25, [...read].join(' '));
  t.deepEqual([...read].filter((v) => !named.has(v)), []);
});
