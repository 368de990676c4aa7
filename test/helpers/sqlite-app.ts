import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { REPO } from './pair';
import { tableRows } from './sqlite-model';

/** better-sqlite3 as an application under the agent requires it (by path: test apps live in temp dirs). */
export const SQLITE_MODULE = JSON.stringify(path.join(REPO, 'node_modules', 'better-sqlite3'));

/** What a standby (or primary) database holds, read as a second, read-only connection: integrity and every table's rows. */
export interface DbRead {
  integrity: string;
  rows: Record<string, unknown[]>;
}

/** Reads `file` read-only; undefined when there is no such file. */
export function readDb(file: string): DbRead | undefined {
  return fs.existsSync(file) ? read(new Database(file, { readonly: true, fileMustExist: true })) : undefined;
}

/** Reads the primary's database after its processes ended (a writable connection: it recovers a WAL a kill left). */
export function readPrimary(file: string): DbRead {
  return read(new Database(file));
}

function read(db: Database.Database): DbRead {
  try {
    return { integrity: String(db.pragma('integrity_check', { simple: true })), rows: tableRows(db) };
  } finally {
    db.close();
  }
}
