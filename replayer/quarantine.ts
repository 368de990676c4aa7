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

  /** How many entries are kept here, and the last `n` of them (stream order) with why; for the status page. */
  async list(n: number): Promise<QuarantineList> {
    const names = await fs.promises.readdir(this.dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    // Names are zero-padded stream sequences: sorted as text, they are in stream order.
    const kept = names.filter((f) => f.endsWith('.json')).sort();
    const last = await Promise.all(kept.slice(-n).reverse().map(async (f) => {
      const file = path.join(this.dir, f.replace(/\.json$/, '.entry'));
      try {
        const v = JSON.parse(await fs.promises.readFile(path.join(this.dir, f), 'utf8')) as Record<string, unknown>;
        return { file, reason: typeof v.reason === 'string' ? v.reason : '(no reason recorded)', at: typeof v.quarantinedAt === 'string' ? v.quarantinedAt : undefined };
      } catch (err) {
        return { file, reason: `(its record cannot be read: ${(err as Error).message})` };
      }
    }));
    return { count: kept.length, last };
  }
}

/** What the quarantine holds: the whole count, and the newest few, newest first. */
export interface QuarantineList {
  count: number;
  last: { file: string; reason: string; at?: string }[];
}
