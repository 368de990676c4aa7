import type { KV } from '@nats-io/kv';
import { comparePosition, positionLabel } from '../../lib/entry';
import { parseStateKey, readState, type FenceRecord, type StandbyRecord } from '../../lib/state-bucket';

/** Where a standby, or one of its journals, stands against a fence. */
export type Stands = 'behind' | 'at the fence' | 'ahead';

/** A standby that was promoted, as its fences say. */
export interface PromotedStandby {
  /** Its standby name (the host, for fences of an older version). */
  standby: string;
  host: string;
  /** When it fenced its first journal. */
  at: string;
  journals: { journal: string; fence: string }[];
}

/** Another standby, against the fences: it follows a fenced primary. */
export interface FencedStandby {
  /** Its key in the state bucket (name, or name.journal). */
  standby: string;
  host: string;
  /** Ahead when any journal is past its fence: it holds changes the new primary lacks. */
  stands: Stands;
  /** `past`: how many entries past the fence, when numbering went on across epochs (it begins again when a spool was lost). */
  journals: { journal: string; applied?: string; fence: string; stands: Stands; past?: number }[];
}

/** Who was promoted, when, at which positions, and where every other standby stands. */
export interface PromotionStatus {
  promoted: PromotedStandby[];
  standbys: FencedStandby[];
}

/** Reads the fences and the standbys' committed positions among `keys` (the state bucket's); undefined when nothing was ever promoted. */
export async function collectPromotion(kv: KV, keys: string[]): Promise<PromotionStatus | undefined> {
  const fences: [string, FenceRecord][] = [];
  const standbys: [string, StandbyRecord][] = [];
  for (const k of keys) {
    const key = parseStateKey(k);
    if (key?.kind === 'fence') {
      const f = await readState(kv, 'fence', key.name);
      if (f !== undefined) fences.push([key.name, f]);
    } else if (key?.kind === 'standby') {
      const s = await readState(kv, 'standby', key.name);
      if (s !== undefined) standbys.push([key.name, s]);
    }
  }
  if (fences.length === 0) return undefined;
  const promoted = new Map<string, PromotedStandby>();
  for (const [journal, f] of fences.sort(([a], [b]) => a.localeCompare(b))) {
    const name = f.standby ?? f.by;
    const p = promoted.get(name) ?? { standby: name, host: f.by, at: f.at, journals: [] };
    if (f.at < p.at) p.at = f.at;
    p.journals.push({ journal, fence: positionLabel(f) });
    promoted.set(name, p);
  }
  const others: FencedStandby[] = [];
  for (const [key, s] of standbys.sort(([a], [b]) => a.localeCompare(b))) {
    if (promoted.has(s.name)) continue;
    const journals = fences.filter(([j]) => s.journal === undefined || j === s.journal).map(([journal, f]) => {
      const pos = s.journals[journal];
      const c = pos === undefined ? -1 : comparePosition(pos, f);
      const stands: Stands = c < 0 ? 'behind' : c === 0 ? 'at the fence' : 'ahead';
      return { journal, applied: pos === undefined ? undefined : positionLabel(pos), fence: positionLabel(f), stands, ...(c > 0 && pos.s > f.s ? { past: pos.s - f.s } : {}) };
    });
    if (journals.length === 0) continue;
    const stands: Stands = journals.some((j) => j.stands === 'ahead') ? 'ahead' : journals.some((j) => j.stands === 'behind') ? 'behind' : 'at the fence';
    others.push({ standby: key, host: s.host, stands, journals });
  }
  return { promoted: [...promoted.values()].sort((a, b) => a.at.localeCompare(b.at)), standbys: others };
}

/** What status prints of a promotion, a line each. */
export function describePromotion(p: PromotionStatus): string[] {
  const lines = p.promoted.map((s) => `standby ${s.standby} was promoted to primary at ${s.at} on ${s.host} ` +
    `(fenced ${s.journals.map((j) => `${j.journal} at ${j.fence}`).join(', ')}); the old primary's later entries are refused by every standby`);
  if (p.promoted.length > 1) {
    lines.push(`MORE THAN ONE STANDBY WAS PROMOTED (${p.promoted.map((s) => s.standby).join(', ')}): each fenced journals of the old primary; keep one primary and point the other standbys at it`);
  }
  for (const s of p.standbys) {
    const which = (st: Stands): string => s.journals.filter((j) => j.stands === st).map((j) => `${j.journal} ${j.applied ?? 'nothing'} of ${j.fence}`).join(', ');
    if (s.stands === 'ahead') {
      const past = s.journals.filter((j) => j.stands === 'ahead').map((j) => `${j.journal} applied to ${j.applied}, ${j.past === undefined ? 'a later epoch' : `${j.past} entries`} past the fence at ${j.fence}`).join('; ');
      lines.push(`standby ${s.standby} HOLDS CHANGES THE NEW PRIMARY LACKS: ${past}; they were not rolled back: copy what the new primary needs from it, then point it at the new primary`);
    } else if (s.stands === 'behind') {
      lines.push(`standby ${s.standby} follows the fenced primary, behind the fence (${which('behind')}): it applies up to the fence and no further; point it at the new primary`);
    } else {
      lines.push(`standby ${s.standby} follows the fenced primary and stopped at the fence (${s.journals.map((j) => `${j.journal} ${j.fence}`).join(', ')}): point it at the new primary`);
    }
  }
  return lines;
}
