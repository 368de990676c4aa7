import { jetstreamManager } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { SettingsError, UnderstudyError } from '../../lib/errors';
import { stateKeys } from '../../lib/nats';
import { parseStateKey, readState } from '../../lib/state-bucket';
import { validStandbyKey } from '../../lib/subjects';

/**
 * The standby a primary-side command means: `given` (--standby), or the one standby that has a
 * record in the state bucket. Several registered and none named is refused, with their names:
 * comparing against whichever answers first is how one standby's damage went unseen.
 */
export async function whichStandby(nc: NatsConnection, kv: KV, stream: string, given: string | undefined): Promise<string> {
  if (given !== undefined) {
    if (!validStandbyKey(given)) throw new SettingsError(`--standby "${given}" is not a standby's name (letters, digits, '-' and '_'; NAME.JOURNAL for a replayer of one journal)`);
    return given;
  }
  const names: string[] = [];
  for (const k of await stateKeys(await jetstreamManager(nc), stream)) {
    const key = parseStateKey(k);
    if (key?.kind === 'standby' && (await readState(kv, 'standby', key.name)) !== undefined) names.push(key.name);
  }
  if (names.length === 1) return names[0];
  if (names.length === 0) throw new UnderstudyError(`no standby is registered in stream ${stream}'s state bucket (a running "understudy replay" registers itself at its first commit); start one, or name it with --standby NAME`);
  throw new SettingsError(`${names.length} standbys are registered (${names.join(', ')}): say which to compare with, --standby NAME`);
}
