import * as fs from 'node:fs';

/**
 * The fs functions as they were before the agent wrapped anything. The
 * recorder reads the primary's state through these, so its own I/O is never
 * journaled and costs no wrapper.
 */
export const realFs = {
  readFileSync: fs.readFileSync,
  statSync: fs.statSync,
  lstatSync: fs.lstatSync,
  fstatSync: fs.fstatSync,
  readlinkSync: fs.readlinkSync,
  readdirSync: fs.readdirSync,
  realpathNative: fs.realpathSync.native,
  openSync: fs.openSync,
  readSync: fs.readSync,
  closeSync: fs.closeSync,
};
