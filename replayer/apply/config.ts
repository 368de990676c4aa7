import type { EntryHeader } from '../../lib/entry';
import { checkConfigKey } from '../../lib/objects';
import { BadEntryError } from '../../lib/errors';
import { CONFIG_DIR, emptyConfig, type ConfigReplica } from '../replicas';
import type { ReplicaKind } from './object-store';

/** Configuration stores: a `config` entry sets or removes one key of `config/<store>.json` under --state. */
export const CONFIG_REPLICAS: ReplicaKind<ConfigReplica, ConfigReplica> = {
  name: 'config',
  op: 'config',
  dir: CONFIG_DIR,
  load: (store, stored) => stored ?? emptyConfig(store),
  through: (r) => r.through,
  apply(r, h, data) {
    if (h.op !== 'config') throw new BadEntryError(`${h.op} entry is not a configuration entry`);
    applyConfig(r, checkConfigKey(h.key), h.del === true ? undefined : parseJson(data, h));
  },
  stored: (r) => r,
};

function parseJson(data: Buffer, h: EntryHeader): unknown {
  try {
    return JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new BadEntryError(`config value of ${h.p} is not JSON: ${(err as Error).message}`);
  }
}

/** Sets (or, for undefined, removes) the value at `key`; intermediate levels that are not objects become objects. */
function applyConfig(r: ConfigReplica, key: string[], value: unknown): void {
  if (key.length === 0) {
    r.values = value === undefined ? {} : value;
    return;
  }
  if (!isRecord(r.values)) r.values = {};
  let node = r.values as Record<string, unknown>;
  for (const seg of key.slice(0, -1)) {
    const next = Object.hasOwn(node, seg) ? node[seg] : undefined;
    if (!isRecord(next)) {
      if (value === undefined) return; // nothing there to remove
      node[seg] = {};
    }
    node = node[seg] as Record<string, unknown>;
  }
  const last = key[key.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
