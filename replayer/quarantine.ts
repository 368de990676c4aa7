import * as fs from 'node:fs';
import * as path from 'node:path';
import { DEFAULTS } from '../lib/settings';

const MAX_KEPT = DEFAULTS.standby.quarantineKept;

/**
 * Where refused entries go: the raw message and why, under --state/quarantine,
 * for an operator to look at. Never inside a root, never applied.
 */
export class Quarantine {
  constructor(readonly dir: string) {}

  /**
   * Keeps the raw entry and the reason; returns where (or why not). `part` is the entry's
   * index when it is one entry of a batched message (then only that entry is kept).
   */
  put(streamSeq: number, subject: string, raw: Uint8Array, reason: string, part?: number): string {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    if (fs.readdirSync(this.dir).length >= MAX_KEPT * 2) return `(quarantine full: ${MAX_KEPT} entries kept in ${this.dir})`;
    const base = path.join(this.dir, `${String(streamSeq).padStart(12, '0')}${part === undefined ? '' : `.${part}`}`);
    fs.writeFileSync(`${base}.entry`, raw, { mode: 0o600 });
    fs.writeFileSync(`${base}.json`, JSON.stringify({ streamSeq, part, subject, reason, quarantinedAt: new Date().toISOString() }, null, 2) + '\n', { mode: 0o600 });
    return `${base}.entry`;
  }
}
