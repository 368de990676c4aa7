/**
 * SQLite's rollback journal and database header, in SQLite's own formats
 * (https://www.sqlite.org/fileformat2.html), as far as the standby's page writer needs them:
 * a journal it writes is one that any SQLite opener recognises as hot and rolls back.
 */

/** The 8 bytes a journal header begins with once it is complete. */
export const JOURNAL_MAGIC = Buffer.from('d9d505f920a163d7', 'hex');

/**
 * The journal's sector size: what SQLite's unix VFS uses under its default powersafe-overwrite
 * assumption (checked against a journal SQLite 3.53 wrote). The header takes one sector.
 */
export const JOURNAL_SECTOR = 512;

/** The byte SQLite locks with; the page holding it is never used and never journaled. */
const PENDING_BYTE = 0x40000000;

/** The page number that holds the pending byte at `pageSize` (SQLite's PAGER_SJ_PGNO). */
export function lockPage(pageSize: number): number {
  return Math.floor(PENDING_BYTE / pageSize) + 1;
}

/**
 * The journal header sector, still incomplete: magic and record count are zero, so that no
 * opener takes the journal as hot before its records are on disk (SQLite's synchronous=FULL
 * order); `completeHeader` supplies them afterwards.
 */
export function journalHeader(nonce: number, origPages: number, pageSize: number): Buffer {
  const h = Buffer.alloc(JOURNAL_SECTOR);
  h.writeUInt32BE(nonce >>> 0, 12);
  h.writeUInt32BE(origPages, 16);
  h.writeUInt32BE(JOURNAL_SECTOR, 20);
  h.writeUInt32BE(pageSize, 24);
  return h;
}

/** The 12 bytes (magic, record count) that make a synced journal hot, to be written at offset 0. */
export function completeHeader(records: number): Buffer {
  const b = Buffer.alloc(12);
  JOURNAL_MAGIC.copy(b, 0);
  b.writeUInt32BE(records, 8);
  return b;
}

/** SQLite's record checksum (pager_cksum): the nonce plus every 200th byte, counted from the end. */
export function pageChecksum(nonce: number, page: Buffer): number {
  let sum = nonce >>> 0;
  for (let i = page.length - 200; i > 0; i -= 200) sum = (sum + page[i]) >>> 0;
  return sum;
}

/** One journal record: page number, the page's original bytes, checksum. */
export function journalRecord(nonce: number, pgno: number, page: Buffer): Buffer {
  const r = Buffer.alloc(page.length + 8);
  r.writeUInt32BE(pgno, 0);
  page.copy(r, 4);
  r.writeUInt32BE(pageChecksum(nonce, page), page.length + 4);
  return r;
}

/**
 * Page 1 as the standby must hold it: rollback-journal format (bytes 18, 19 = 1, even from a
 * primary in WAL mode), change counter and version-valid-for = `counter` (so that every other
 * connection drops its page cache), in-header size = `size`. Returns a copy.
 */
export function patchPage1(page1: Buffer, counter: number, size: number): Buffer {
  const p = Buffer.from(page1);
  p[18] = 1;
  p[19] = 1;
  p.writeUInt32BE(counter >>> 0, 24);
  p.writeUInt32BE(size, 28);
  p.writeUInt32BE(counter >>> 0, 92);
  return p;
}
