import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EntryHeader } from '../lib/entry';
import { BadEntryError } from '../lib/errors';
import { writeAll, writeSync, type WriteFn } from './write';

/**
 * Chunks of a large entry, collected in a file under the state directory
 * until the last one arrives. Each chunk is written at its own offset, so a
 * chunk delivered twice (after a crash) changes nothing.
 */
export class Staging {
  constructor(private readonly dir: string, private readonly write: WriteFn = writeSync) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  /** Stores one chunk; returns the staged file once the entry is complete, else undefined. */
  add(h: EntryHeader, data: Buffer): string | undefined {
    const c = h.c;
    if (c === undefined) throw new BadEntryError('not a chunk');
    const file = path.join(this.dir, `${h.j}.${h.e}.${c.first}.part`);
    if (c.off + data.length > c.total) throw new BadEntryError(`chunk ${c.i}/${c.n} of ${h.j}.${h.e}.${c.first} runs past its total of ${c.total} bytes`);
    if (c.i > 0 && !fs.existsSync(file)) throw new BadEntryError(`chunk ${c.i}/${c.n} of ${h.j}.${h.e}.${c.first} arrived without the chunks before it`);
    const fd = fs.openSync(file, c.i === 0 ? 'w' : 'r+', 0o600);
    try {
      writeAll(this.write, fd, data, c.off);
      if (c.i === c.n - 1) {
        if (fs.fstatSync(fd).size !== c.total) throw new BadEntryError(`chunks of ${h.j}.${h.e}.${c.first} add up to ${fs.fstatSync(fd).size} bytes, not ${c.total}`);
        fs.fsyncSync(fd);
      }
    } finally {
      fs.closeSync(fd);
    }
    return c.i === c.n - 1 ? file : undefined;
  }

  /** Removes everything staged (after the entries were applied, or to start afresh). */
  clear(): void {
    for (const f of fs.readdirSync(this.dir)) fs.rmSync(path.join(this.dir, f), { force: true });
  }
}
