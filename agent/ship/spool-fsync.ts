/**
 * UNDERSTUDY_SPOOL_FSYNC=<ms>: the newest segment is fdatasynced here, off the application's
 * thread, whenever something was appended since the last time.
 */
import * as fs from 'node:fs';
import { listSegments } from '../../lib/spool';
import { warnOnce } from '../log';
import type { ShippingJournal } from './shipping-journal';

/** Fdatasyncs `j`'s newest spool segment every `everyMs` while entries come; the timer never keeps the thread alive. */
export function syncSpoolPeriodically(j: ShippingJournal, everyMs: number): NodeJS.Timeout {
  let synced = j.appended();
  return setInterval(() => {
    const appended = j.appended();
    if (appended === synced) return;
    const newest = listSegments(j.dir).at(-1);
    if (newest === undefined) return;
    try {
      const fd = fs.openSync(newest.file, 'r');
      try {
        fs.fdatasyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      synced = appended;
    } catch (err) {
      warnOnce('spool-fsync', `journal "${j.name}" cannot fsync its spool: ${(err as Error).message}`);
    }
  }, everyMs).unref();
}
