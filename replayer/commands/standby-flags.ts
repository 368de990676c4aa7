import { SettingsError } from '../../lib/errors';

/**
 * The state directory a command that writes there (replay, promote) was given; never a
 * default. A default under the home directory made a replayer started by another user, or
 * by a unit file without the flag, begin from nothing and apply the whole stream again
 * beside the real state.
 */
export function requireState(flag: string | undefined, env: NodeJS.ProcessEnv, command: string): void {
  if (flag === undefined && (env.UNDERSTUDY_STATE_DIR ?? '') === '') {
    throw new SettingsError(`${command} needs --state DIR (or UNDERSTUDY_STATE_DIR): where this standby keeps its positions`);
  }
}

/**
 * The journal filter: only --name. UNDERSTUDY_NAME names the agent's journal; a replayer
 * that inherited it from a shared environment file would apply one journal and leave the
 * others behind without a word.
 */
export function journalFilter(flag: string | undefined, parsed: string | undefined, env: NodeJS.ProcessEnv, log: (line: string) => void): string | undefined {
  if (flag === undefined && (env.UNDERSTUDY_NAME ?? '') !== '') {
    log(`UNDERSTUDY_NAME=${env.UNDERSTUDY_NAME} in the environment is not a filter here: every journal is applied (--name applies one)`);
  }
  return flag === undefined ? undefined : parsed;
}
