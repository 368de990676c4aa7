import * as fs from 'node:fs';
import * as path from 'node:path';
import { BadEntryError, ConfinementError } from '../../lib/errors';
import { DEFAULTS } from '../../lib/settings';
import { writeAll, type WriteFn } from '../write';
import { kindOf } from './fs-stat';

/** Copying bytes into the standby's files, through the replayer's write(2), never through a symlink at the source. */

const { O_WRONLY, O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** Copies the staged file `file` into `fd` at `at`. */
export function copyInto(write: WriteFn, file: string, fd: number, at: number): void {
  const src = fs.openSync(file, O_RDONLY);
  try {
    copyFd(write, src, fd, at);
  } finally {
    fs.closeSync(src);
  }
}

function copyFd(write: WriteFn, src: number, fd: number, at: number): void {
  const buf = Buffer.allocUnsafe(DEFAULTS.apply.copyBufferBytes);
  for (let off = 0; ;) {
    const n = fs.readSync(src, buf, 0, buf.length, off);
    if (n === 0) break;
    writeAll(write, fd, buf.subarray(0, n), at + off);
    off += n;
  }
}

/**
 * Copies the regular file at `from` to the new file `tmp`, with its mode, fsynced. The
 * source is opened O_NOFOLLOW and O_NONBLOCK (a FIFO swapped in does not block us) and
 * must be a regular file once open: whatever is at the path, only a file inside the root is read.
 */
export function copyFile(write: WriteFn, from: string, tmp: string): void {
  let src: number;
  try {
    src = fs.openSync(from, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new ConfinementError(`link source ${path.basename(from)} became a symlink on the standby; refusing to read through it`);
    throw err;
  }
  try {
    const st = fs.fstatSync(src);
    if (!st.isFile()) throw new BadEntryError(`link source ${path.basename(from)} is ${kindOf(st)} on the standby, not a file`);
    const fd = fs.openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    try {
      copyFd(write, src, fd, 0);
      fs.fchmodSync(fd, st.mode & 0o7777);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } finally {
    fs.closeSync(src);
  }
}
