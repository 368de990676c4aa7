import * as fs from 'node:fs';

/**
 * The positional write(2) the replayer's files (applied objects, staged chunks, positions)
 * go through; returns the bytes written. One function so a test can put a full disk
 * under the replayer where no small filesystem can be mounted.
 */
export type WriteFn = (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => number;

export const writeSync: WriteFn = (fd, buf, off, len, pos) => fs.writeSync(fd, buf, off, len, pos);

/** Writes all of `buf` at `at`, however many calls it takes. */
export function writeAll(write: WriteFn, fd: number, buf: Uint8Array, at: number): void {
  for (let off = 0; off < buf.length;) off += write(fd, buf, off, buf.length - off, at + off);
}
