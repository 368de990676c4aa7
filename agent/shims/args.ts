import * as fs from 'node:fs';

/**
 * Argument shapes of Node's fs functions, normalised the way Node 20 itself
 * reads them (lib/fs.js, lib/internal/fs/promises.js), so that what we journal
 * is what the call wrote.
 */

const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL, O_SYNC } = fs.constants;

/** Node's string flags as numbers (internal/fs/utils stringToFlags). */
const FLAGS: Record<string, number> = {
  r: O_RDONLY, rs: O_RDONLY | O_SYNC, sr: O_RDONLY | O_SYNC,
  'r+': O_RDWR, 'rs+': O_RDWR | O_SYNC, 'sr+': O_RDWR | O_SYNC,
  w: O_TRUNC | O_CREAT | O_WRONLY, wx: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL, xw: O_TRUNC | O_CREAT | O_WRONLY | O_EXCL,
  'w+': O_TRUNC | O_CREAT | O_RDWR, 'wx+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL, 'xw+': O_TRUNC | O_CREAT | O_RDWR | O_EXCL,
  a: O_APPEND | O_CREAT | O_WRONLY, ax: O_APPEND | O_CREAT | O_WRONLY | O_EXCL, xa: O_APPEND | O_CREAT | O_WRONLY | O_EXCL,
  as: O_APPEND | O_CREAT | O_WRONLY | O_SYNC, sa: O_APPEND | O_CREAT | O_WRONLY | O_SYNC,
  'a+': O_APPEND | O_CREAT | O_RDWR, 'ax+': O_APPEND | O_CREAT | O_RDWR | O_EXCL, 'xa+': O_APPEND | O_CREAT | O_RDWR | O_EXCL,
  'as+': O_APPEND | O_CREAT | O_RDWR | O_SYNC, 'sa+': O_APPEND | O_CREAT | O_RDWR | O_SYNC,
};

/** open()'s flags argument as a number ('r' when absent). */
export function openFlags(flags: unknown): number {
  if (typeof flags === 'number') return flags;
  if (typeof flags === 'string') return FLAGS[flags] ?? O_RDONLY;
  return O_RDONLY;
}

/** The `flag` of a writeFile/appendFile options argument. */
export function flagOption(options: unknown, dflt: string): string {
  if (options !== null && typeof options === 'object' && 'flag' in options) {
    const f = (options as { flag?: unknown }).flag;
    if (typeof f === 'string') return f;
    if (typeof f === 'number') return (f & O_APPEND) !== 0 ? 'a' : 'w';
  }
  return dflt;
}

/** The bytes a writeFile-style `data` argument stands for, or undefined when it is a stream or iterable. */
export function dataBytes(data: unknown, options: unknown): Buffer | undefined {
  if (typeof data === 'string') {
    const enc = typeof options === 'string' ? options : (options as { encoding?: unknown } | null | undefined)?.encoding;
    return Buffer.from(data, typeof enc === 'string' && Buffer.isEncoding(enc) ? enc : 'utf8');
  }
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return undefined;
}

/** What a write(fd | handle, …) call writes: (buffer, offset, length, position) or (string, position, encoding) or (buffer, options). */
export function writeArgs(buffer: unknown, a: unknown, b: unknown, c: unknown): { data: Buffer; position: number | null } {
  if (ArrayBuffer.isView(buffer)) {
    let offset = a;
    let length = b;
    let position = c;
    if (a !== null && typeof a === 'object') {
      const o = a as { offset?: number; length?: number; position?: number | null };
      offset = o.offset ?? 0;
      length = o.length ?? buffer.byteLength - (o.offset ?? 0);
      position = o.position ?? null;
    }
    const off = typeof offset === 'number' ? offset : 0;
    const len = typeof length === 'number' ? length : buffer.byteLength - off;
    return {
      data: Buffer.from(buffer.buffer, buffer.byteOffset + off, len),
      position: typeof position === 'number' ? position : null,
    };
  }
  const text = String(buffer);
  return {
    data: Buffer.from(text, typeof b === 'string' && Buffer.isEncoding(b) ? b : 'utf8'),
    position: typeof a === 'number' ? a : null,
  };
}

/** The bytes of a writev call's buffers, cut to what was written. */
export function vectorBytes(buffers: unknown, written: number): Buffer {
  const list = Array.isArray(buffers) ? (buffers as ArrayBufferView[]) : [];
  return Buffer.concat(list.map((v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength))).subarray(0, written);
}

/** Whether a read call names its own position (and so leaves the file position alone). */
export function readIsPositioned(args: readonly unknown[], positionIndex: number): boolean {
  for (const v of args) {
    if (v !== null && typeof v === 'object' && !ArrayBuffer.isView(v) && 'position' in v) {
      return isPosition((v as { position?: unknown }).position);
    }
  }
  return isPosition(args[positionIndex]);
}

function isPosition(p: unknown): boolean {
  return (typeof p === 'number' && p >= 0) || typeof p === 'bigint';
}

/** truncate's length as Node applies it: absent is 0, negative is 0. */
export function truncateLength(len: unknown): number {
  return typeof len === 'number' && len > 0 ? Math.floor(len) : 0;
}
