import type { KV } from '@nats-io/kv';
import type { JetStreamManager } from '@nats-io/jetstream';
import { stateKeys } from '../lib/nats';
import { parseStateKey, readState, type BaselineReport } from '../lib/state-bucket';

/** The last baseline that covered a root: what the standby has of it, as of `started`. */
export interface BaselineStart {
  name: string;
  started: number;
  state: BaselineReport['state'];
}

/**
 * For each root name, the baseline record in the state bucket that began last and covered it:
 * a watcher starting without a saved state journals what changed after that, since the standby
 * has the root only as the baseline read it.
 */
export async function baselineStarts(kv: KV, jsm: JetStreamManager, stream: string, roots: readonly string[]): Promise<Map<string, BaselineStart>> {
  const out = new Map<string, BaselineStart>();
  for (const k of await stateKeys(jsm, stream)) {
    const key = parseStateKey(k);
    if (key?.kind !== 'baseline') continue;
    const b = await readState(kv, 'baseline', key.name);
    if (b === undefined) continue;
    for (const root of b.roots) {
      if (!roots.includes(root)) continue;
      const was = out.get(root);
      if (was === undefined || b.started > was.started) out.set(root, { name: key.name, started: b.started, state: b.state });
    }
  }
  return out;
}
