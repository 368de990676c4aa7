import { Replayer } from '../replayer';
import { SettingsError } from '../../lib/errors';
import { loadVerifier } from '../../lib/signing';
import { common, parse } from '../../lib/cli-options';
import { journalFilter, requireState } from './standby-flags';
import { standbyName } from '../../lib/settings';

export const usage = `understudy replay --root name=/abs/dir … --state DIR [--nats URL] [--name NAME] [--stream S] [--drain] [--standby NAME]
                  [--verify-key FILE …] [--on-bad-entry halt|skip] [--metrics-port N [--metrics-host H]]
                  [--creds FILE | --nkey FILE | --token T | --user U --password P] [--tls-ca FILE]

Applies journal entries from the stream to the standby's roots, in order, exactly once.
--state (or UNDERSTUDY_STATE_DIR) is required: where the positions live; one replayer
at a time per state directory. --name applies one journal only (UNDERSTUDY_NAME does not).
--drain applies everything the stream holds now and exits 0 (non-zero on any error);
without it, runs until SIGINT or SIGTERM and stops cleanly.
--standby names this standby in the state bucket and in status (UNDERSTUDY_STANDBY, else
the host's name); after each commit it leaves its committed position there.
--verify-key (or UNDERSTUDY_VERIFY_KEYS, comma-separated): accept only entries signed by
one of these keys (Ed25519 public key PEM, or an hmac-sha256:<base64> secret file).
A bad entry is moved to <state>/quarantine with the reason; then the replayer stops
(halt, the default) or passes over it (skip). So is an entry past a fence: after
\`understudy promote\` on this standby or on another (whose fences it reads from the state
bucket, and says so once), the old primary's later entries are split brain.
--metrics-port serves Prometheus metrics on http://H:N/metrics (H: 127.0.0.1 unless given).`;

/** `understudy replay`. */
export async function replay(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, {
    drain: { type: 'boolean' }, 'verify-key': { type: 'string', multiple: true }, 'on-bad-entry': { type: 'string' },
    'metrics-port': { type: 'string' }, 'metrics-host': { type: 'string' }, standby: { type: 'string' },
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
  const metricsPort = values['metrics-port'] === undefined ? undefined : Number(values['metrics-port']);
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535)) {
    throw new SettingsError(`--metrics-port ${values['metrics-port']} is not a port number`);
  }
  const standby = standbyName(env, values.standby);
  const replayer = new Replayer({ ...o, drain: values.drain === true, log, verifier, onBadEntry, metricsPort, metricsHost: values['metrics-host'], standby });
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
