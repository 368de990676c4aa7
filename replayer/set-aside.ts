import * as fs from 'node:fs';
import * as path from 'node:path';
import { replaceFile } from '../lib/durable-file';
import type { UnfinishedTransaction } from './replayer';

/** A transaction set aside by a promotion: where its entries are kept, and how many. */
export interface SetAside { journal: string; ids: string[]; entries: number; file: string }

/**
 * Keeps the entries of each unfinished transaction in `<state>/set-aside/<journal>.<id>.jsonl`,
 * one entry a line (its header, and its bytes in base64), for whoever decides what to do with
 * them: a promotion applies none of them, and loses none.
 */
export function setAside(stateDir: string, unfinished: UnfinishedTransaction[]): SetAside[] {
  if (unfinished.length === 0) return [];
  const dir = path.join(stateDir, 'set-aside');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return unfinished.map((u) => {
    const file = path.join(dir, `${u.journal}.${u.ids[0]}.jsonl`);
    const lines = u.entries.map((e) => JSON.stringify({ header: e.header, data: e.data.toString('base64') }) + '\n');
    replaceFile(file, Buffer.from(lines.join('')));
    return { journal: u.journal, ids: u.ids, entries: u.entries.length, file };
  });
}
