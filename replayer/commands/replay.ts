import { Replayer } from '../replayer';
import { SettingsError } from '../../lib/errors';
import { loadVerifier } from '../../lib/signing';
import { common, parse } from '../../lib/cli-options';
import { journalFilter, requireState } from './standby-flags';
import { DEFAULTS, standbyName } from '../../lib/settings';
import { parseDuration, parseSize } from '../../lib/units';

export const usage = `understudy replay --root name=/abs/dir … --state DIR [--nats URL] [--name NAME] [--stream S] [--drain] [--standby NAME]
                  [--max-standby-lag SIZE|AGE …] [--keep-stream SIZE] [--keep-checkpoints N]
                  [--verify-key FILE …] [--on-bad-entry halt|skip] [--metrics-port N [--metrics-host H]]
                  [--http-port N [--http-host H]]
                  [--creds FILE | --nkey FILE | --token T | --user U --password P] [--tls-ca FILE]

Applies journal entries from the stream to the standby's roots, in order, exactly once.
--state (or UNDERSTUDY_STATE_DIR) is required: where the positions live; one replayer
at a time per state directory. --name applies one journal only (UNDERSTUDY_NAME does not).
--drain applies everything the stream holds now and exits 0 (non-zero on any error);
without it, runs until SIGINT or SIGTERM and stops cleanly.
--standby names this standby in the state bucket and in status (UNDERSTUDY_STANDBY, else
the host's name); after each commit it leaves its committed position there.
Standbys are replication slots: the stream and the agents' spools are trimmed below what every
standby committed. --max-standby-lag (a size like 2GiB, an age like 6h, or both, each given
once) bounds what this standby may hold back: past either, it is marked lost, the stream and
spools move on without it, and when it runs it asks the primary for a baseline and a verify
(defaults: ${DEFAULTS.slots.maxLagBytesPct} % of the stream's max_bytes, and 7d).
--keep-stream keeps the newest SIZE of entries in the stream whatever was committed, for a
standby that joins later (default: ${DEFAULTS.slots.keepBytesPct} % of max_bytes; 0 keeps nothing more).
--keep-checkpoints keeps a point-in-time copy of the roots and replicas at each of the N newest
checkpoints reached (\`understudy checkpoint\` on the primary; default ${DEFAULTS.checkpoints.keep}, 0 keeps none),
under --state/checkpoints, at a cost proportional to what changes after each: see
\`understudy checkpoints\`, \`understudy restore\` and \`understudy promote --at-checkpoint\`.
--verify-key (or UNDERSTUDY_VERIFY_KEYS, comma-separated): accept only entries signed by
one of these keys (Ed25519 public key PEM, or an hmac-sha256:<base64> secret file).
A bad entry is moved to <state>/quarantine with the reason; then the replayer stops
(halt, the default) or passes over it (skip). So is an entry past a fence: after
\`understudy promote\` on this standby or on another (whose fences it reads from the state
bucket, and says so once), the old primary's later entries are split brain.
--metrics-port serves Prometheus metrics on http://H:N/metrics (H: 127.0.0.1 unless given).
--http-port serves the live status page on http://H:N/ and its data on /status.json
(H: 127.0.0.1 unless given; 0 picks a free port, said at start). It has no authentication:
bind it to another address only behind something that has.`;

/** --max-standby-lag's values: each a size or an age, at most one of each. */
function lagLimits(given: string[]): { bytes?: number; ms?: number } | undefined {
  const limits: { bytes?: number; ms?: number } = {};
  for (const v of given) {
    const ms = parseDuration(v);
    const bytes = ms === undefined ? parseSize(v) : undefined;
    if (ms === undefined && bytes === undefined) throw new SettingsError(`--max-standby-lag ${v} is neither a size (e.g. 2GiB) nor an age (e.g. 6h)`);
    const which = ms !== undefined ? 'ms' : 'bytes';
    if (limits[which] !== undefined) throw new SettingsError(`--max-standby-lag is given two ${which === 'ms' ? 'ages' : 'sizes'}: give one of each at most`);
    limits[which] = ms ?? bytes;
  }
  return given.length === 0 ? undefined : limits;
}

/** `understudy replay`. */
export async function replay(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, {
    drain: { type: 'boolean' }, 'verify-key': { type: 'string', multiple: true }, 'on-bad-entry': { type: 'string' },
    'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' }, standby: { type: 'string' },
    'max-standby-lag': { type: 'string', multiple: true }, 'keep-stream': { type: 'string' },
    'http-port': { type: 'string' }, 'http-host': { type: 'string' }, 'keep-checkpoints': { type: 'string' },
  });
  if (values.help === true) {
    console.log(usage);
    return 0;
  }
  requireState(values.state, env, 'replay');
  const parsed = common(values, env, true);
  const log = (line: string): void => console.error(`understudy replay: ${line}`);
  const o = { ...parsed, name: journalFilter(values.name, parsed.name, env, log) };
  const keyFiles = values['verify-key'] ?? (env.UNDERSTUDY_VERIFY_KEYS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const onBadEntry = values['on-bad-entry'] ?? 'halt';
  if (onBadEntry !== 'halt' && onBadEntry !== 'skip') throw new SettingsError(`--on-bad-entry ${onBadEntry} is not halt or skip`);
  const verifier = keyFiles.length > 0 ? loadVerifier(keyFiles) : undefined;
  const metricsPort = portFlag('--metrics-port', values['metrics-port']);
  const httpPort = portFlag('--http-port', values['http-port']);
  if (values['http-host'] !== undefined && httpPort === undefined) throw new SettingsError('--http-host needs --http-port');
  const standby = standbyName(env, values.standby);
  const maxStandbyLag = lagLimits(values['max-standby-lag'] ?? []);
  const keep = values['keep-stream'];
  const keepStream = keep === undefined ? undefined : keep.trim() === '0' ? 0 : parseSize(keep);
  if (keepStream === undefined && keep !== undefined) throw new SettingsError(`--keep-stream ${keep} is not a size (e.g. 0, 512MiB, 2GiB)`);
  const keepCheckpoints = countFlag('--keep-checkpoints', values['keep-checkpoints']);
  const replayer = new Replayer({ ...o, drain: values.drain === true, log, verifier, onBadEntry, metricsPort, metricsHost: values['metrics-host'], httpPort, httpHost: values['http-host'], standby, maxStandbyLag, keepStream, keepCheckpoints });
  // Before "following …" is said: a --state in use is refused first, as it always was.
  replayer.open();
  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    if (values.drain !== true) log(`following stream ${o.stream}${o.name ? ` (journal ${o.name})` : ''} into ${o.roots.map((r) => `${r.name}=${r.dir}`).join(', ')}`);
    const s = await replayer.run(ac.signal);
    log(`applied ${s.applied} entries (${s.duplicates} duplicates skipped${s.skipped > 0 ? `, ${s.skipped} bad entries quarantined and passed over` : ''}), stream position ${s.streamSeq}`);
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

/** A port flag's value: a whole number 0-65535 (0: any free port), or undefined when not given. */
function portFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (value.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) throw new SettingsError(`${flag} ${value} is not a port number (0-65535)`);
  return port;
}

/** A count flag's value: a whole number >= 0, or undefined when not given. */
function countFlag(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0) throw new SettingsError(`${flag} ${value} is not a whole number (0 or more)`);
  return n;
}
