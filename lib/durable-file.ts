import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Every small file the agent and the replayer keep (positions, fences, version marks, replicas,
 * watch state) is replaced here and nowhere else: written beside the old one, fsynced, renamed
 * over it, and its directory fsynced, so after a crash or a power loss the file is either the
 * old one or the new one, and a rename that follows it (a trim, a commit) never reaches the
 * disk before it.
 */

/** The positional write(2) files go through; returns the bytes written (a test injects a full disk here). */
export type WriteFn = (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => number;

/** The real write(2). */
export const writeSync: WriteFn = (fd, buf, off, len, pos) => fs.writeSync(fd, buf, off, len, pos);

/** Writes all of `buf` at `at`, however many calls it takes. */
export function writeAll(write: WriteFn, fd: number, buf: Uint8Array, at: number): number {
  for (let off = 0; off < buf.length;) off += write(fd, buf, off, buf.length - off, at + off);
  return at + buf.length;
}

export interface ReplaceOptions {
  /** Mode of a new file (0o600: what the agent and replayer keep is theirs alone). */
  mode?: number;
  write?: WriteFn;
  /**
   * False only where losing the newest version in a power loss costs nothing but repeated
   * work (the spool's acked position between trims): then neither file nor directory is
   * fsynced. Default true.
   */
  durable?: boolean;
  /**
   * Whether to fsync the directory now (default: when durable). A caller replacing many files
   * in few directories passes false and calls syncDir once per directory afterwards.
   */
  syncDir?: boolean;
}

/** Replaces `file` with `data` atomically (and durably, unless told otherwise); the content may come in pieces. */
export function replaceFile(file: string, data: string | Uint8Array | Iterable<string | Uint8Array>, opts: ReplaceOptions = {}): void {
  const durable = opts.durable ?? true;
  const write = opts.write ?? writeSync;
  const tmp = tempFileOf(file);
  const fd = fs.openSync(tmp, 'w', opts.mode ?? 0o600);
  try {
    const pieces = typeof data === 'string' || data instanceof Uint8Array ? [data] : data;
    let at = 0;
    for (const piece of pieces) at = writeAll(write, fd, typeof piece === 'string' ? Buffer.from(piece) : piece, at);
    if (durable) fs.fsyncSync(fd);
  } catch (err) {
    fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw err;
  }
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  if (opts.syncDir ?? durable) syncDir(path.dirname(file));
}

/**
 * The temporary file replaceFile writes `file` through in this process: hidden (a directory
 * listing of replicas passes over it), and named after the pid so that two processes replacing
 * one file (two agents of one journal in turn) never write each other's.
 */
export function tempFileOf(file: string, pid = process.pid): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${pid}.tmp`);
}

/** Replaces `file` with `value` as JSON (see replaceFile). */
export function replaceJson(file: string, value: unknown, opts: ReplaceOptions = {}): void {
  replaceFile(file, JSON.stringify(value), opts);
}

/** fsyncs a directory, so the renames and removals in it are on disk. */
export function syncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** The content of `file`, or undefined when there is none. */
export function readIfExists(file: string): Buffer | undefined {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The JSON in `file`, or undefined when there is none; a file that is not JSON is an error naming it. */
export function readJsonIfExists<T>(file: string): T | undefined {
  const b = readIfExists(file);
  if (b === undefined) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch (err) {
    throw new Error(`${file} is not JSON (${(err as Error).message})`, { cause: err });
  }
}

/** The names in directory `dir`, or none when it does not exist. */
export function namesIn(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/**
 * The JSON lines of an append-only log (none when there is no file); a line that does not
 * parse is left out: only the last can be torn (a kill mid-write), and what it announced was
 * never done.
 */
export function readJsonLines<T>(file: string): T[] {
  const text = readIfExists(file)?.toString('utf8') ?? '';
  const out: T[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    try {
      out.push(JSON.parse(line) as T);
    } catch {
      // torn
    }
  }
  return out;
}
