import { DecodeError } from './errors';

/**
 * The bytes of a `sqlite` entry: the committed transactions it carries, in commit order, each
 * as the pages it changed. Layout, all big-endian u32: per transaction [end][size][count], then
 * `count` times [pgno][page of `pageSize` bytes]. `end` is the transaction's position in the
 * entry's generation (a WAL frame, or the change counter), `size` the database's pages after it.
 */
export interface PageSet {
  end: number;
  size: number;
  pages: ReadonlyMap<number, Buffer>;
}

/** Largest page SQLite has. */
export const MAX_PAGE_SIZE = 65536;

/** Whether `n` is a SQLite page size: a power of two from 512 to 65536. */
export function isPageSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 512 && n <= MAX_PAGE_SIZE && (n & (n - 1)) === 0;
}

/** Bytes `encodePages` makes of `txns`. */
export function encodedSize(pageSize: number, txns: readonly PageSet[]): number {
  return txns.reduce((n, t) => n + 12 + t.pages.size * (4 + pageSize), 0);
}

/** Encodes transactions into one buffer (pages in ascending order within each). */
export function encodePages(pageSize: number, txns: readonly PageSet[]): Buffer {
  const out = Buffer.allocUnsafe(encodedSize(pageSize, txns));
  let at = 0;
  for (const t of txns) {
    at = out.writeUInt32BE(t.end, at);
    at = out.writeUInt32BE(t.size, at);
    at = out.writeUInt32BE(t.pages.size, at);
    for (const pgno of [...t.pages.keys()].sort((a, b) => a - b)) {
      const page = t.pages.get(pgno)!;
      if (page.length !== pageSize) throw new RangeError(`page ${pgno} is ${page.length} bytes, not ${pageSize}`);
      at = out.writeUInt32BE(pgno, at);
      at += page.copy(out, at);
    }
  }
  return out;
}

/**
 * Decodes and checks the bytes of a `sqlite` entry: whole records, pages 1.. within the size
 * after their transaction, ends that grow. Pages are views into `buf`. DecodeError says what is wrong.
 */
export function decodePages(buf: Buffer, pageSize: number): PageSet[] {
  if (!isPageSize(pageSize)) throw new DecodeError(`sqlite entry: page size ${pageSize} is not a power of two from 512 to ${MAX_PAGE_SIZE}`);
  const txns: PageSet[] = [];
  let at = 0;
  let lastEnd = -1;
  while (at < buf.length) {
    if (buf.length - at < 12) throw new DecodeError(`sqlite entry: ${buf.length - at} bytes at ${at} are not a transaction header`);
    const end = buf.readUInt32BE(at);
    const size = buf.readUInt32BE(at + 4);
    const count = buf.readUInt32BE(at + 8);
    at += 12;
    if (end <= lastEnd) throw new DecodeError(`sqlite entry: transaction ending at ${end} follows one ending at ${lastEnd}`);
    lastEnd = end;
    if (count * (4 + pageSize) > buf.length - at) throw new DecodeError(`sqlite entry: transaction ending at ${end} claims ${count} pages but ${buf.length - at} bytes remain`);
    const pages = new Map<number, Buffer>();
    for (let i = 0; i < count; i++) {
      const pgno = buf.readUInt32BE(at);
      if (pgno === 0 || pgno > size) throw new DecodeError(`sqlite entry: page ${pgno} is outside the ${size} pages of the transaction ending at ${end}`);
      if (pages.has(pgno)) throw new DecodeError(`sqlite entry: page ${pgno} twice in the transaction ending at ${end}`);
      pages.set(pgno, buf.subarray(at + 4, at + 4 + pageSize));
      at += 4 + pageSize;
    }
    txns.push({ end, size, pages });
  }
  return txns;
}
