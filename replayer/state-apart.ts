import * as fs from 'node:fs';
import * as path from 'node:path';
import { SettingsError } from '../lib/errors';
import { isInside, type Root } from '../lib/roots';

/**
 * Refuses a --state inside a root (it would be replicated over) and a root inside --state
 * (the replayer's own files would be in the standby's tree, and entries could overwrite them).
 */
export function checkStateApart(stateDir: string, roots: Root[]): void {
  const state = path.resolve(stateDir);
  let real = state;
  try {
    real = fs.realpathSync.native(state);
  } catch {
    // not made yet: its path is all there is
  }
  for (const r of roots) {
    if (isInside(state, r.realDir) || isInside(state, r.dir) || isInside(real, r.realDir)) {
      throw new SettingsError(`--state ${stateDir} lies inside root "${r.name}" (${r.dir}); the replayer's state must never be replicated over`);
    }
    if (isInside(r.realDir, real) || isInside(r.dir, state)) {
      throw new SettingsError(`root "${r.name}" (${r.dir}) lies inside --state ${stateDir}; the standby's tree and the replayer's state must be apart`);
    }
  }
}
