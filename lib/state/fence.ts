import { define, numbers, strings } from './record';

/**
 * A journal closed by a promotion, under `fence.<journal>`: its old primary sees it and says
 * it was fenced, and every other standby refuses that primary's entries past it.
 */
export interface FenceRecord {
  e: number;
  s: number;
  at: string;
  /** The promoted standby's host. */
  by: string;
  /** The promoted standby's name (promote --standby); absent in records of older versions. */
  standby?: string;
}

/** A position every standby compares entries with: whole and not negative, or a hostile record could fence nothing or everything by accident of arithmetic. */
const position = (v: Record<string, unknown>): boolean => ['e', 's'].every((k) => Number.isSafeInteger(v[k]) && (v[k] as number) >= 0);

/** Words every standby prints in its log and status prints: no control characters (a forged record could otherwise write lines of its own into them). */
const printable = (v: Record<string, unknown>, ...keys: string[]): boolean => keys.every((k) => typeof v[k] !== 'string' || /^[^\x00-\x1f\x7f]{1,255}$/.test(v[k]));

export const fence = define<FenceRecord>((v) =>
  numbers(v, 'e', 's') && position(v) && strings(v, 'at', 'by') && printable(v, 'at', 'by') &&
  (v.standby === undefined || (typeof v.standby === 'string' && /^[A-Za-z0-9_-]{1,64}$/.test(v.standby))));

/** Who made a fence, in words: the promoted standby's name and host (the host alone in a record of an older version). */
export function promotedBy(f: FenceRecord): string {
  return f.standby === undefined ? f.by : `standby ${f.standby} (on ${f.by})`;
}
