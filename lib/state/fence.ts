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

export const fence = define<FenceRecord>((v) =>
  numbers(v, 'e', 's') && position(v) && strings(v, 'at', 'by') && (v.standby === undefined || typeof v.standby === 'string'));

/** Who made a fence, in words: the promoted standby's name and host (the host alone in a record of an older version). */
export function promotedBy(f: FenceRecord): string {
  return f.standby === undefined ? f.by : `standby ${f.standby} (on ${f.by})`;
}
